"""``msphub clients suggest`` and ``check`` against the Datto RMM sandbox: the right links
proposed, no wrong one above the threshold, nothing linked until an admin accepts, and
drift (renamed, deleted, moved) reported."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.datto_rmm.sandbox import SandboxServer
from hub.cli.app import context
from hub.core.linking.proposals import THRESHOLD
from hub.store.db import transaction
from tests.cli.conftest import Cli, one_line
from tests.services.linking_scenario import (
    CLIENTS_YAML,
    LINKED_SITE,
    PROVISIONAL_SITE,
    SITES,
    seed_sites,
)


@pytest.fixture
def rmm() -> Iterator[SandboxServer]:
    """The Datto RMM sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def msp(cli: Cli, rmm: SandboxServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The scenario's directory in the hub, its sites in Datto (a `datto` source), Hooli's
    site linked and Stark's site linked to a provisional client; returns name → site uid."""
    uids = seed_sites(rmm.sandbox.store)
    config = tmp_path / "config"
    config.mkdir()
    (config / "clients.yaml").write_text(CLIENTS_YAML, encoding="utf-8")
    sources = {"sources": {"datto": {"vendor": "datto-rmm", "poll": {"enabled": False},
                                     "config": rmm.connector_config()}}}
    (config / "connectors.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    monkeypatch.setenv("MSPHUB_CONFIG_DIR", str(config))
    linked = cli("clients", "link", "hooli", "datto", "site", uids[LINKED_SITE],
                 "--name", LINKED_SITE)
    assert linked.exit_code == 0, linked.output
    ctx = context(migrate=True)
    with transaction(ctx.sessions) as session:
        ctx.clients.ensure(session, "datto-site-stark", "Stark Industries Inc",
                           provisional=True)
        ctx.clients.link(session, "datto-site-stark", "datto", "site", uids[PROVISIONAL_SITE],
                         by="provisional")
    ctx.engine.dispose()
    return uids


def suggest_json(cli: Cli, *args: str) -> dict[str, Any]:
    """`msphub clients suggest --json` parsed (asserting exit 0)."""
    result = cli("clients", "suggest", "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_suggest_proposes_the_right_links_and_no_wrong_one_above_the_threshold(
        cli: Cli, msp: dict[str, str]) -> None:
    """Every site gets one proposal with the expected verdict; each suggestion names the
    right client; the linked site is left out; nothing is linked by suggesting."""
    report = suggest_json(cli)
    by_uid = {p["vendor_id"]: p for p in report["proposals"]}
    assert report["threshold"] == THRESHOLD and report["errors"] == []
    assert report["already_linked"] == 1 and msp[LINKED_SITE] not in by_uid
    assert len(by_uid) == len(SITES)
    for site in SITES:
        got = by_uid[msp[site.name]]
        assert got["verdict"] == site.verdict, (site.name, got)
        if got["verdict"] == "suggested":
            assert got["client"] == site.expect, (site.name, got)
            assert got["confidence"] >= THRESHOLD
            assert got["link_command"] == shlex.join(
                ["msphub", "clients", "link", site.expect, "datto", "site",
                 msp[site.name], "--name", site.name])
        else:
            assert got["confidence"] < THRESHOLD or got["verdict"] == "ambiguous"
    ambiguous = by_uid[msp["Acme"]]
    assert {ambiguous["client"], ambiguous["alternatives"][0]["client"]} == {
        "acme", "acme-logistics"}
    hinted = by_uid[msp["IT Dept"]]
    assert any("autotask company 29683003 is linked to this client" in r
               for r in hinted["reasons"])
    assert by_uid[msp[PROVISIONAL_SITE]]["provisional_client"] == "datto-site-stark"
    # suggesting linked nothing
    assert "datto" not in cli("clients", "show", "acme").stdout


def test_the_table_shows_confidence_and_the_command_that_accepts_it(
        cli: Cli, msp: dict[str, str]) -> None:
    """The readable table, then `msphub clients link …` lines; running one links the site,
    and the next suggestion run leaves that site out."""
    result = cli("clients", "suggest")
    assert result.exit_code == 0, result.output
    text = one_line(result.stdout)
    assert "Globex Corp." in text and "globex 0.90" in text and "suggested" in text
    assert "ambiguous" in text and "or acme-logistics" in text
    assert "Wayne Enterprises" not in text and "2 match no client (--all lists them)" in text
    assert "Wayne Enterprises" in one_line(cli("clients", "suggest", "--all").stdout)
    lines = [x.strip() for x in result.stdout.splitlines()
             if x.strip().startswith("msphub clients link")]
    assert len(lines) == sum(s.verdict == "suggested" for s in SITES)
    globex = next(x for x in lines if msp["Globex Corp."] in x)
    accepted = cli(*shlex.split(globex)[1:])
    assert accepted.exit_code == 0, accepted.output
    assert f"datto │ site │ {msp['Globex Corp.']} │ Globex Corp." in one_line(
        cli("clients", "show", "globex").stdout)
    again = suggest_json(cli)
    assert msp["Globex Corp."] not in {p["vendor_id"] for p in again["proposals"]}
    assert again["already_linked"] == 2


def test_a_stricter_threshold_and_one_source(cli: Cli, msp: dict[str, str]) -> None:
    """--min-confidence 0.95 keeps only the hinted sites; --kind psa lists no source here;
    an unknown --source or kind is refused."""
    strict = suggest_json(cli, "--min-confidence", "0.95", "--source", "datto")
    suggested = {p["vendor_name"] for p in strict["proposals"] if p["verdict"] == "suggested"}
    assert suggested == {"Acme Manufacturing - HQ", "IT Dept"}
    assert "no configured PSA source can list its records" in cli(
        "clients", "suggest", "--kind", "psa").stdout
    assert suggest_json(cli, "--kind", "rmm")["sources"] == ["datto"]
    assert cli("clients", "suggest", "--kind", "crm").exit_code == 1
    unknown = cli("clients", "suggest", "--source", "nowhere")
    assert unknown.exit_code == 1 and "no configured source is named 'nowhere'" in unknown.output


def test_a_source_that_cannot_be_read_is_reported_and_fails_the_command(
        cli: Cli, msp: dict[str, str], rmm: SandboxServer) -> None:
    """Datto refusing the request: a warning naming the source, exit 1, no proposals."""
    rmm.fail_next(20, status=403)
    result = cli("clients", "suggest", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["proposals"] == [] and data["errors"][0]["source"] == "datto"


def test_check_reports_renamed_deleted_and_moved_links(
        cli: Cli, msp: dict[str, str], rmm: SandboxServer) -> None:
    """Clean after linking; then Datto renames one site, deletes one, and maps one to
    Initech's Autotask company: three drifts, exit 1; nothing is changed."""
    for client, name in (("acme", "Acme Manufacturing - HQ"),
                         ("acme", "Acme Manufacturing (Leeds)"), ("globex", "Globex Corp.")):
        assert cli("clients", "link", client, "datto", "site", msp[name],
                   "--name", name).exit_code == 0
    clean = cli("clients", "check")
    assert clean.exit_code == 0, clean.output
    assert "4 link(s) checked: no drift" in clean.stdout
    assert "not checked" in clean.stdout and "at-prod" in clean.stdout
    store = rmm.sandbox.store
    with store.lock:
        store.sites[msp["Globex Corp."]]["name"] = "Globex Holdings EMEA"
        del store.sites[msp["Acme Manufacturing (Leeds)"]]
        store.sites[msp["Acme Manufacturing - HQ"]]["autotaskCompanyId"] = "29683003"
    result = cli("clients", "check", "--json")
    assert result.exit_code == 1, result.output
    found = {(d["kind"], d["client"], d["vendor_id"]): d
             for d in json.loads(result.stdout)["drift"]}
    assert set(found) == {("renamed", "globex", msp["Globex Corp."]),
                          ("deleted", "acme", msp["Acme Manufacturing (Leeds)"]),
                          ("moved", "acme", msp["Acme Manufacturing - HQ"])}
    moved = found[("moved", "acme", msp["Acme Manufacturing - HQ"])]
    assert moved["now_client"] == "initech"
    renamed = found[("renamed", "globex", msp["Globex Corp."])]
    assert (renamed["linked_name"], renamed["now_name"]) == ("Globex Corp.",
                                                             "Globex Holdings EMEA")
    table = one_line(cli("clients", "check").stdout)
    assert "renamed" in table and "deleted" in table and "moved" in table
    assert "which is linked to client 'initech'" in table
    assert msp["Globex Corp."] in cli("clients", "show", "globex").stdout  # still linked

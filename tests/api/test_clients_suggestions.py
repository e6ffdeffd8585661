"""GET /api/clients/suggestions and /api/clients/drift: the CLI's reports over HTTP
(manager or admin: they read the vendors now), against the Datto RMM sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import build_connector
from connectors.datto_rmm.sandbox import SandboxServer
from hub.config.clients import load_clients
from hub.core.linking.proposals import THRESHOLD
from hub.services.sources import Source, SourceSpec
from hub.services.tokens import Role
from hub.store.db import transaction
from tests.api.conftest import Api
from tests.services.linking_scenario import CLIENTS_YAML, SITES, seed_sites


@pytest.fixture
def rmm() -> Iterator[SandboxServer]:
    """The Datto RMM sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def uids(api: Api, rmm: SandboxServer, tmp_path: Path) -> dict[str, str]:
    """The scenario's directory in the hub and its sites behind a `datto` source."""
    found = seed_sites(rmm.sandbox.store)
    file = tmp_path / "clients.yaml"
    file.write_text(CLIENTS_YAML, encoding="utf-8")
    with transaction(api.ctx.sessions) as session:
        api.ctx.clients.apply(session, load_clients(file), file=str(file))
    connector = build_connector("datto-rmm", "datto", rmm.connector_config())
    api.rt.sources.items["datto"] = Source("datto", SourceSpec(vendor="datto-rmm"), connector)
    return found


def test_managers_get_the_proposals_viewers_are_refused(api: Api, uids: dict[str, str]) -> None:
    """The same verdicts as the CLI; a suggestion is only a proposal (nothing linked)."""
    answer = api.get("/api/clients/suggestions", Role.MANAGER)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["threshold"] == THRESHOLD and body["sources"] == ["datto"]
    verdicts = {p["vendor_name"]: (p["verdict"], p["client"]) for p in body["proposals"]}
    for site in SITES:
        verdict, client = verdicts[site.name]
        assert verdict == site.verdict, site.name
        if verdict == "suggested":
            assert client == site.expect
    assert all(x["source"] != "datto" for x in api.get("/api/clients/acme").json()["links"])
    assert api.get("/api/clients/suggestions", Role.VIEWER).status_code == 403
    strict = api.get("/api/clients/suggestions", Role.MANAGER,
                     params={"min_confidence": 0.95}).json()
    assert {p["vendor_name"] for p in strict["proposals"] if p["verdict"] == "suggested"} == {
        "Acme Manufacturing - HQ", "IT Dept"}
    missing = api.get("/api/clients/suggestions", Role.MANAGER, params={"source": "nowhere"})
    assert missing.status_code == 404


def test_drift_over_http(api: Api, uids: dict[str, str], rmm: SandboxServer) -> None:
    """A linked site Datto then deletes is reported as deleted."""
    link = {"source": "datto", "type": "site", "vendor_id": uids["Globex Corp."],
            "vendor_name": "Globex Corp."}
    assert api.post("/api/clients/globex/links", Role.MANAGER, json=link).status_code == 201
    clean = api.get("/api/clients/drift", Role.MANAGER).json()
    assert clean["drift"] == [] and clean["checked"] == 1
    with rmm.sandbox.store.lock:
        del rmm.sandbox.store.sites[uids["Globex Corp."]]
    report = api.get("/api/clients/drift", Role.MANAGER).json()
    assert [(d["kind"], d["client"], d["vendor_id"]) for d in report["drift"]] == [
        ("deleted", "globex", uids["Globex Corp."])]

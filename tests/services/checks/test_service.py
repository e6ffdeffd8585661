"""RMM verification checks against the Datto RMM sandbox: an open step with a check is
judged on one device listing per client, reports what is missing, and is ticked with the
evidence once the check holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.base import build_connector
from connectors.datto_rmm.sandbox import SandboxServer
from connectors.datto_rmm.sandbox_store import millis
from hub.cli.app import app
from hub.core.checklists.engine import TicketRef
from hub.runtime.periodic import listing_gate
from hub.runtime.process import Runtime
from hub.services.checks import latest_status, run_checks
from hub.services.sources import Source, SourceSpec
from hub.settings import Settings, get_settings
from hub.store.db import transaction
from hub.store.models import AuditEntry, OutboxNote

BEFORE = ("kickoff-meeting", "collect-contacts-sites", "previous-provider-handover",
          "provision-msp-access")
STEP = "deploy-rmm-agent"


@pytest.fixture
def rmm() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def onboarding(rt: Runtime, ticket: str) -> int:
    """ACME's client onboarding with the agent step open."""
    with transaction(rt.ctx.sessions) as s:
        run_id = rt.ctx.runs.launch(s, "client-onboarding", client="ACME", by="user:test",
                                    inputs={"go_live_date": "2026-12-01"},
                                    ticket=TicketRef("psa", ticket)).id
        for step_id in BEFORE:
            rt.ctx.runs.complete(s, run_id, step_id, by="user:alice", evidence="done")
    return run_id


def link_site(rt: Runtime, rmm: SandboxServer) -> tuple[str, dict[str, str]]:
    """A Datto source and site linked to ACME with an online server and an offline PC."""
    store = rmm.sandbox.store
    site = store.create_site("Acme HQ")
    fs = store.create_device(site["uid"], "ACME-FS01")
    old = millis(rt.ctx.clock() - timedelta(days=3))
    pc = store.create_device(site["uid"], "ACME-PC02", online=False, lastSeen=old)
    connector = build_connector("datto-rmm", "datto", rmm.connector_config())
    rt.sources.items["datto"] = Source("datto", SourceSpec(vendor="datto-rmm"), connector)
    with transaction(rt.ctx.sessions) as s:
        rt.ctx.clients.link(s, "ACME", "datto", "site", site["uid"], by="user:admin")
    return site["uid"], {"fs": fs["uid"], "pc": pc["uid"]}


def state(rt: Runtime, run_id: int) -> object:
    with rt.ctx.sessions() as s:
        return rt.ctx.runs.get(s, run_id).step(STEP)


def facts(rt: Runtime, run_id: int, action: str) -> list[AuditEntry]:
    with rt.ctx.sessions() as s:
        return list(s.execute(select(AuditEntry).where(
            AuditEntry.run_id == run_id, AuditEntry.action == action)).scalars())


def test_missing_then_ticked_with_the_evidence_snapshot(runtime: Runtime,
                                                        rmm: SandboxServer) -> None:
    """An offline PC is reported missing (once, while nothing changes); when its agent is
    online the step is ticked by check:agents_online with every device as evidence."""
    # Given ACME's onboarding with the agent step open and a Datto site with one PC offline
    run_id = onboarding(runtime, "T-1")
    site, devices = link_site(runtime, rmm)
    path = f"/api/v2/site/{site}/devices"
    # When the check runs twice with nothing changed
    first = run_checks(runtime.ctx, runtime.sources)
    second = run_checks(runtime.ctx, runtime.sources)
    # Then what is missing is recorded once, and the step stays open
    assert [(o.run_id, o.result) for o in first] == [(run_id, "missing")]
    assert first[0].missing == ["agents_online: ACME-PC02: agent offline (last seen "
                                f"{runtime.ctx.clock() - timedelta(days=3):%Y-%m-%d %H:%M} UTC)"]
    assert [o.result for o in second] == ["unchanged"]
    assert len(facts(runtime, run_id, "check_missing")) == 1
    assert rmm.sandbox.request_count("GET", path) == 2  # one listing per pass
    with runtime.ctx.sessions() as s:
        shown = latest_status(s, run_id)[STEP]
    assert shown["action"] == "check_missing" and "ACME-PC02" in shown["missing"][0]
    assert state(runtime, run_id).status.value == "open"  # type: ignore[attr-defined]
    # When the PC's agent comes online and the check runs again
    with rmm.sandbox.store.lock:
        rmm.sandbox.store.devices[devices["pc"]]["online"] = True
    third = run_checks(runtime.ctx, runtime.sources)
    # Then the step is done by the check, with both devices in the evidence and snapshot
    assert [o.result for o in third] == ["ticked"]
    done = state(runtime, run_id)
    assert done.status.value == "done"  # type: ignore[attr-defined]
    assert done.done_by == "check:agents_online"  # type: ignore[attr-defined]
    assert "ACME-FS01 (online), ACME-PC02 (online)" in done.evidence  # type: ignore[attr-defined]
    [passed] = facts(runtime, run_id, "check_passed")
    snapshot = passed.data["snapshot"]
    assert {d["id"] for d in snapshot["checks"][0]["devices"]} == set(devices.values())
    assert passed.actor == "check:agents_online"
    # and the run's ticket gets the step's note with that evidence (the outbox)
    with runtime.ctx.sessions() as s:
        [note] = s.execute(select(OutboxNote).where(
            OutboxNote.run_id == run_id, OutboxNote.step_id == STEP)).scalars().all()
    assert (note.source, note.ticket_id, note.kind) == ("psa", "T-1", "step_done")
    assert "done by check:agents_online" in note.text and "ACME-PC02 (online)" in note.text
    # and a finished step is not checked again
    assert run_checks(runtime.ctx, runtime.sources) == []


def test_runs_show_prints_what_the_check_still_misses(runtime: Runtime, rmm: SandboxServer,
                                                      hub_settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`msphub runs show` lists the newest missing reasons under the step's table."""
    # Given a check that found the PC offline
    run_id = onboarding(runtime, "T-1")
    link_site(runtime, rmm)
    run_checks(runtime.ctx, runtime.sources)
    # When an admin shows the run
    monkeypatch.setenv("MSPHUB_DATABASE_URL", hub_settings.database_url)
    monkeypatch.setenv("MSPHUB_PLAYBOOKS_DIR", str(hub_settings.playbooks_dir))
    monkeypatch.setenv("MSPHUB_CONFIG_DIR", str(hub_settings.config_dir))
    monkeypatch.setenv("MSPHUB_MAPPINGS_DIR", str(hub_settings.mappings_dir))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["runs", "show", str(run_id)])
    get_settings.cache_clear()
    # Then the step's missing list is printed, naming the offline PC
    assert result.exit_code == 0, result.output
    assert f"RMM check of 'Deploy the RMM agent on all endpoints' ({STEP})" in result.output
    assert "• agents_online: ACME-PC02: agent offline" in result.output


def test_one_listing_per_client_and_per_interval(runtime: Runtime, rmm: SandboxServer) -> None:
    """Two runs of one client share one device listing; the runtime's gate lets a
    (source, client) be listed once per the source's poll interval, across passes."""
    # Given two onboarding runs of ACME with the agent step open
    runs = {onboarding(runtime, "T-1"), onboarding(runtime, "T-2")}
    site, _ = link_site(runtime, rmm)
    path = f"/api/v2/site/{site}/devices"
    gate = listing_gate(runtime)
    # When the job runs twice within the interval
    first = run_checks(runtime.ctx, runtime.sources, gate=gate)
    again = run_checks(runtime.ctx, runtime.sources, gate=gate)
    # Then both runs were judged on one listing, and the second pass listed nothing
    assert {o.run_id for o in first} == runs and {o.result for o in first} == {"missing"}
    assert again == []
    assert rmm.sandbox.request_count("GET", path) == 1


def test_a_client_without_rmm_links_is_not_listed(runtime: Runtime) -> None:
    """No linked RMM source: nothing is judged (and nothing ticked)."""
    run_id = onboarding(runtime, "T-1")
    assert run_checks(runtime.ctx, runtime.sources) == []
    assert state(runtime, run_id).status.value == "open"  # type: ignore[attr-defined]


def test_a_transient_outage_defers_and_a_refusal_is_missing(runtime: Runtime,
                                                           rmm: SandboxServer) -> None:
    """A 429 asking for minutes of silence gives no verdict (nothing recorded, the next
    interval retries); refused credentials are recorded as missing — never as proof."""
    # Given the agent step open and Datto asking the hub to wait two minutes
    run_id = onboarding(runtime, "T-1")
    link_site(runtime, rmm)
    rmm.sandbox.fail_next(1, status=429, retry_after=120)
    # When the check runs, then nothing is judged or recorded
    assert run_checks(runtime.ctx, runtime.sources) == []
    assert facts(runtime, run_id, "check_missing") == []
    # When the source's credentials are refused instead
    bad = build_connector("datto-rmm", "datto", rmm.connector_config(valid_credentials=False))
    runtime.sources.items["datto"] = Source("datto", SourceSpec(vendor="datto-rmm"), bad)
    [outcome] = run_checks(runtime.ctx, runtime.sources)
    # Then the step stays open and the refusal is what is missing
    assert outcome.result == "missing"
    assert outcome.missing[0].startswith("datto: devices could not be listed")
    assert state(runtime, run_id).status.value == "open"  # type: ignore[attr-defined]

"""Clients across tools on the in-process runtime: an RMM site's alert ticks the run a PSA
ticket launched, unlinked records fail visibly until linked, provisional clients on opt-in,
and the CLI writes the same ticket notes as the API."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.base import build_connector
from connectors.webhook.connector import signature
from hub.api.app import create_app
from hub.cli.app import app as cli_app
from hub.core.checklists.engine import TicketRef
from hub.core.states import InboxStatus
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime, sync_clients
from hub.services.intake import receive
from hub.services.sources import Source, SourceSpec
from hub.services.tokens import Role, create_token
from hub.settings import Settings, get_settings
from hub.store.db import transaction
from hub.store.migrate import upgrade
from hub.store.models import InboxEvent, OutboxNote, Run
from tests.pipeline.conftest import Clock, drain
from tests.pipeline.fakes import FakePSA, sources_with

SECRET = "rmm-secret-0123456789abcdef0123"
SITE = "5f6e7d8c-1b2a-4c3d-9e8f-0a1b2c3d4e5f"  # a Datto-RMM-shaped site UID


def with_rmm(rt: Runtime) -> TestClient:
    """The API, with a generic signed webhook source ``datto`` standing in for Datto RMM."""
    rmm = build_connector("webhook", "datto", {"secret": SECRET})
    rt.sources.items["datto"] = Source("datto", SourceSpec(vendor="webhook"), rmm)
    return TestClient(create_app(rt))


def backup_alert(alert_id: str, site: str = SITE) -> bytes:
    """A resolved backup alert on an RMM site, as the RMM connector will normalise it."""
    return json.dumps({
        "kind": "alert.resolved", "dedupe_key": f"alert:{alert_id}:resolved",
        "occurred_at": "2026-11-20T10:30:00Z",
        "client": {"id": site, "name": "Acme HQ", "type": "site"},
        "subject": {"type": "alert", "id": alert_id},
        "data": {"alert": {"id": alert_id, "category": "backup",
                           "message": "Backup job completed"}},
    }).encode()


def post(http: TestClient, body: bytes) -> Any:
    stamp = str(int(time.time()))
    return http.post("/webhooks/datto", content=body, headers={
        "X-Msphub-Timestamp": stamp, "X-Msphub-Signature": signature(SECRET, stamp, body),
        "Content-Type": "application/json"})


def launch_maintenance(rt: Runtime, ticket: str = "T-500") -> int:
    """Monthly maintenance for hub client ACME, launched from a PSA ticket."""
    with transaction(rt.ctx.sessions) as s:
        return rt.ctx.runs.launch(s, "monthly-maintenance", client="ACME", by="rule:test",
                                  ticket=TicketRef("psa", ticket)).id


def step(rt: Runtime, run_id: int, step_id: str) -> Any:
    with rt.ctx.sessions() as s:
        return rt.ctx.runs.get(s, run_id).step(step_id)


def test_an_rmm_site_alert_ticks_the_run_a_psa_ticket_launched(
        runtime: Runtime, worker: Worker, psa: FakePSA) -> None:
    """The site UID and the PSA company are one hub client: the alert ticks that run."""
    http = with_rmm(runtime)
    # Given ACME's PSA company launched monthly maintenance from a ticket, and ACME's
    # RMM site is linked to the same hub client
    run_id = launch_maintenance(runtime)
    with transaction(runtime.ctx.sessions) as s:
        runtime.ctx.clients.link(s, "ACME", "datto", "site", SITE, by="user:admin")
    drain(runtime, worker)
    # When the RMM reports a successful backup on that site
    assert post(http, backup_alert("A-77")).status_code == 202
    drain(runtime, worker)
    # Then the run's step is done with the alert as evidence, and the PSA ticket says so
    done = step(runtime, run_id, "verify-backups")
    assert done.status.value == "done"
    assert done.done_by == "rule:backup-verifies"
    assert done.evidence == "datto alert A-77: Backup job completed"
    with runtime.ctx.sessions() as s:
        event = s.execute(select(InboxEvent)).scalar_one()
        assert (event.status, event.client_key, event.client_type, event.hub_client) == (
            "done", SITE, "site", "ACME")
    assert any("datto alert A-77" in n["text"] for n in psa.notes["T-500"])


def test_an_unlinked_site_fails_visibly_until_an_admin_links_it(
        runtime: Runtime, worker: Worker) -> None:
    """Nothing is dropped or guessed: the event fails naming the record, then replays."""
    http = with_rmm(runtime)
    run_id = launch_maintenance(runtime)
    other = "0a0a0a0a-0000-4000-8000-00000000beef"
    # When an alert arrives from a site no client is linked to
    assert post(http, backup_alert("A-1", site=other)).status_code == 202
    drain(runtime, worker)
    # Then the event failed with a message that says what to do, and the site is listed
    with runtime.ctx.sessions() as s:
        event = s.execute(select(InboxEvent)).scalar_one()
        assert event.status == InboxStatus.FAILED and event.hub_client is None
        [error] = event.result["errors"]
        assert f"datto site {other} (Acme HQ) is not linked to a hub client" in error["error"]
        [unlinked] = runtime.ctx.clients.unlinked(s)
        assert (unlinked.source, unlinked.type, unlinked.id) == ("datto", "site", other)
    assert step(runtime, run_id, "verify-backups").status.value == "open"
    headers = admin(runtime)
    events = http.get("/api/events", params={"status": "failed"}, headers=headers)
    assert [e["id"] for e in events.json()] == [event.id]
    # When an admin links the site to ACME and replays the event
    linked = http.post("/api/clients/ACME/links", headers=headers,
                       json={"source": "datto", "type": "site", "vendor_id": other})
    assert linked.status_code == 201, linked.text
    assert http.post(f"/api/events/{event.id}/replay", headers=headers).status_code == 202
    drain(runtime, worker)
    # Then it ticks the step exactly once, and nothing is unlinked any more
    assert step(runtime, run_id, "verify-backups").status.value == "done"
    with runtime.ctx.sessions() as s:
        assert s.get(InboxEvent, event.id).hub_client == "ACME"
        assert runtime.ctx.clients.unlinked(s) == []


def test_provisional_clients_take_unlinked_events_when_opted_in(
        hub_settings: Settings, psa: FakePSA, clock: Clock) -> None:
    """With MSPHUB_PROVISIONAL_CLIENTS a leaver ticket of an unknown company still launches,
    for a flagged provisional client an admin can later claim."""
    settings = hub_settings.model_copy(update={"provisional_clients": True})
    rt = build_runtime(settings, clock=clock, sources=sources_with(psa))
    upgrade(rt.ctx.engine)
    sync_clients(rt.ctx)
    worker = Worker(rt.broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        with transaction(rt.ctx.sessions) as s:
            rt.ctx.clients.link(s, "ACME", "datto", "site", SITE, by="user:admin")
        body = {"source": "psa", "vendor": "fakepsa", "kind": "ticket.created",
                "dedupe_key": "ticket:T-1:1", "occurred_at": "2026-11-20T09:59:00Z",
                "client": {"id": "GLOBEX", "name": "Globex"},
                "subject": {"type": "ticket", "id": "T-1"},
                "data": {"ticket": {"type": "Leaver", "contact": {"name": "Jo Bloggs"}}}}
        got = receive(rt.ctx, rt.sources, "psa", headers={}, body=json.dumps(body).encode(),
                      query={}, path_secret=None, max_body=65536)
        rt.dispatch.events(got.new_ids)
        drain(rt, worker)
        with rt.ctx.sessions() as s:
            run = s.execute(select(Run)).unique().scalar_one()
            assert run.client.key == "psa-company-globex"
            assert run.client.provisional and run.client.name == "Globex"
            keys = [c.key for c in rt.ctx.clients.all(s, include_provisional=False)]
            assert keys == ["ACME"]
    finally:
        worker.stop()
        rt.stop()


def admin(rt: Runtime, name: str = "admin") -> dict[str, str]:
    """A bearer header for a new admin token called ``name`` (the actor ``user:<name>``)."""
    with transaction(rt.ctx.sessions) as s:
        token = create_token(s, name=name, role=Role.ADMIN, now=rt.ctx.clock())
    return {"Authorization": f"Bearer {token}"}


# ---- the CLI and the API write the same notes ------------------------------------------


@pytest.fixture
def cli_env(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MSPHUB_* variables so `msphub` commands work on the runtime fixture's hub."""
    for name, value in {
        "MSPHUB_DATABASE_URL": hub_settings.database_url,
        "MSPHUB_CONFIG_DIR": str(hub_settings.config_dir),
        "MSPHUB_PLAYBOOKS_DIR": str(hub_settings.playbooks_dir),
        "MSPHUB_MAPPINGS_DIR": str(hub_settings.mappings_dir),
        "MSPHUB_DATA_DIR": str(hub_settings.data_dir),
        "MSPHUB_PUBLIC_URL": hub_settings.public_url,
        "MSPHUB_LOG_FORMAT": "json",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def notes_of(rt: Runtime, run_id: int) -> list[tuple[str, str]]:
    """(kind, text) of a run's outbox notes, with ids, tickets and times made comparable."""
    with rt.ctx.sessions() as s:
        rows = s.execute(select(OutboxNote).where(OutboxNote.run_id == run_id)
                         .order_by(OutboxNote.id)).scalars().all()
        out = []
        for row in rows:
            text = re.sub(r"run #\d+|/runs/\d+|run-\d+|run \d+", "run #N", row.text)
            text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<time>", text)
            text = re.sub(r"entry #\d+, sha256 [0-9a-f]+", "entry #N", text)
            out.append((row.kind, text))
        return out


def test_the_cli_and_the_api_write_the_same_notes(runtime: Runtime, cli_env: None) -> None:
    """`msphub runs launch/complete/cancel` queue the same ticket notes as the API does."""
    http = TestClient(create_app(runtime))
    headers = admin(runtime)
    # Given the same run launched and worked once through the API ...
    launched = http.post("/api/runs", headers=headers, json={
        "playbook": "user-offboarding", "client": "ACME",
        "inputs": {"leaver_name": "Sam Lee"}, "ticket": {"source": "psa", "id": "T-API"}})
    assert launched.status_code == 201, launched.text
    api_run = launched.json()["id"]
    first = next(s["step_id"] for s in launched.json()["steps"] if s["status"] == "open")
    assert http.post(f"/api/runs/{api_run}/steps/{first}/complete", headers=headers,
                     json={"evidence": "done in the portal"}).status_code == 200
    assert http.post(f"/api/runs/{api_run}/cancel", headers=headers,
                     json={"reason": "withdrawn"}).status_code == 200
    # ... and once through the CLI
    runner = CliRunner()
    out = runner.invoke(cli_app, ["runs", "launch", "user-offboarding", "--client", "ACME",
                                  "-i", "leaver_name=Sam Lee", "--ticket", "psa:T-CLI",
                                  "--actor", "user:admin"])
    assert out.exit_code == 0, out.output
    cli_run = int(re.search(r"launched run (\d+)", out.output)[1])
    for args in (["runs", "complete", str(cli_run), first, "--evidence", "done in the portal",
                  "--actor", "user:admin"],
                 ["runs", "cancel", str(cli_run), "--reason", "withdrawn",
                  "--actor", "user:admin"]):
        get_settings.cache_clear()
        done = runner.invoke(cli_app, args)
        assert done.exit_code == 0, done.output
    # Then both runs owe their tickets the same notes
    api_notes, cli_notes = notes_of(runtime, api_run), notes_of(runtime, cli_run)
    assert [k for k, _ in api_notes] == ["launched", "step_done", "cancelled"]
    assert cli_notes == api_notes

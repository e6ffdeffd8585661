"""The webhook endpoint over HTTP (generic signed connector), the events API, overdue and
digest notes, and dead letters — on the in-process runtime."""

from __future__ import annotations

import importlib
import json
import time

import pytest
from dramatiq import Worker
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from connectors.base import build_connector
from connectors.webhook.connector import signature
from hub.api.app import create_app
from hub.runtime.process import Runtime
from hub.services.sources import Source, SourceSpec
from hub.services.tokens import Role, create_token
from hub.store.db import transaction
from hub.store.models import InboxEvent, OutboxNote, Run
from tests.pipeline.conftest import Clock, drain
from tests.pipeline.fakes import FakePSA

SECRET = "tools-secret-0123456789abcdef"


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    """The API with the runtime attached and a generic `tools` webhook source added."""
    tools = build_connector("webhook", "tools", {"secret": SECRET})
    runtime.sources.items["tools"] = Source("tools", SourceSpec(vendor="webhook"), tools)
    return TestClient(create_app(runtime))


def admin_headers(rt: Runtime) -> dict[str, str]:
    with transaction(rt.ctx.sessions) as s:
        token = create_token(s, name="admin-t", role=Role.ADMIN, now=rt.ctx.clock())
    return {"Authorization": f"Bearer {token}"}


def signed(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    return {"X-Msphub-Timestamp": stamp, "X-Msphub-Signature": signature(secret, stamp, body),
            "Content-Type": "application/json"}


def leaver(ticket: str = "T-7") -> bytes:
    return json.dumps({
        "kind": "ticket.created", "dedupe_key": f"ticket:{ticket}:created",
        "occurred_at": "2026-11-20T09:59:00Z", "client": {"id": "ACME", "name": "Acme"},
        "subject": {"type": "ticket", "id": ticket},
        "data": {"ticket": {"id": ticket, "type": "Leaver", "contact": {"name": "Sam Lee"}}},
    }).encode()


@pytest.mark.parametrize(("case", "status", "error"), [
    ("unknown source", 404, "unknown_source"),
    ("bad signature", 401, "unauthorized"),
    ("stale timestamp", 401, "unauthorized"),
    ("malformed body", 400, "malformed"),
    ("too large", 413, "too_large"),
])
def test_webhook_refusals_store_nothing(client: TestClient, runtime: Runtime, case: str,
                                        status: int, error: str) -> None:
    """Every refusal has its status and a clear message; nothing reaches the inbox."""
    body = leaver()
    url, headers = "/webhooks/tools", signed(body)
    if case == "unknown source":
        url = "/webhooks/nope"
    elif case == "bad signature":
        headers = signed(body, secret="another-secret-0123456789")
    elif case == "stale timestamp":
        headers = signed(body, ts=int(time.time()) - 3600)
    elif case == "malformed body":
        body = b'{"kind": "ticket.created"}'
        headers = signed(body)
    elif case == "too large":
        body = b"x" * (runtime.ctx.settings.webhook_max_body + 1)
        headers = signed(body)
    response = client.post(url, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]
    with runtime.ctx.sessions() as s:
        assert s.execute(select(func.count()).select_from(InboxEvent)).scalar_one() == 0


def test_webhook_accepts_then_recognises_a_redelivery(client: TestClient, runtime: Runtime,
                                                      worker: Worker) -> None:
    """202 for a new event, 200 for the same event again; one run either way; the events
    API shows what the rules did, and replay re-runs it without a second launch."""
    body = leaver()
    first = client.post("/webhooks/tools", content=body, headers=signed(body))
    again = client.post("/webhooks/tools", content=body, headers=signed(body))
    assert (first.status_code, first.json()["accepted"]) == (202, 1)
    assert (again.status_code, again.json()["duplicates"]) == (200, 1)
    # (the generic webhook source cannot take notes: the launch note is parked as dead)
    drain(runtime, worker, fail_fast=False)
    headers = admin_headers(runtime)
    events = client.get("/api/events", headers=headers).json()
    assert [(e["kind"], e["status"]) for e in events] == [("ticket.created", "done")]
    detail = client.get(f"/api/events/{events[0]['id']}", headers=headers).json()
    assert detail["result"]["matched"] == ["leaver-starts-offboarding"]
    assert detail["result"]["actions"][0]["effect"] == "launched"
    replay = client.post(f"/api/events/{events[0]['id']}/replay", headers=headers)
    assert replay.status_code == 202
    drain(runtime, worker, fail_fast=False)
    detail = client.get(f"/api/events/{events[0]['id']}", headers=headers).json()
    assert detail["result"]["actions"][0]["effect"] == "already_launched"
    with runtime.ctx.sessions() as s:
        assert s.execute(select(func.count()).select_from(Run)).scalar_one() == 1


def test_events_api_needs_a_token_and_admin_for_replay(client: TestClient,
                                                       runtime: Runtime) -> None:
    """Reading events needs a token; replay needs the admin role."""
    assert client.get("/api/events").status_code == 401
    with transaction(runtime.ctx.sessions) as s:
        viewer = create_token(s, name="v", role=Role.VIEWER, now=runtime.ctx.clock())
    h = {"Authorization": f"Bearer {viewer}"}
    assert client.get("/api/events", headers=h).status_code == 200
    assert client.get("/api/events/999", headers=h).status_code == 404
    assert client.post("/api/events/1/replay", headers=h).status_code == 403


def launch_offboarding(rt: Runtime, *, notes: str = "each") -> int:
    with transaction(rt.ctx.sessions) as s:
        from hub.core.checklists.engine import TicketRef

        run = rt.ctx.runs.launch(s, "user-offboarding", client="ACME",
                                 inputs={"leaver_name": "Sam Lee"}, by="user:manager",
                                 ticket=TicketRef("psa", "T-9"), options={"notes": notes})
        return run.id


def test_overdue_steps_get_one_note_each(runtime: Runtime, worker: Worker, psa: FakePSA,
                                         clock: Clock) -> None:
    """Past the 4-hour deadline, each late step is noted once, and only once."""
    from hub.runtime.periodic import run as run_job

    launch_offboarding(runtime)
    drain(runtime, worker)
    clock.advance(hours=5)
    run_job(runtime, "overdue")
    run_job(runtime, "overdue")  # a second pass adds nothing
    drain(runtime, worker)
    overdue = [n for n in psa.all_notes() if "is overdue" in n]
    assert overdue, psa.all_notes()
    with runtime.ctx.sessions() as s:
        run = s.execute(select(Run)).unique().scalar_one()
        late = [st for st in run.steps
                if st.due_at and st.due_at < clock() and st.status in ("open", "locked")]
        assert len(overdue) == len(late)
        assert all(st.overdue_notified_at is not None for st in late)


def test_digest_mode_folds_step_notes_into_one(runtime: Runtime, worker: Worker,
                                               psa: FakePSA) -> None:
    """With notes: digest, step completions are held and sent as one digest note."""
    from hub.runtime.periodic import run as run_job

    run_id = launch_offboarding(runtime, notes="digest")
    for step_id in ("confirm-leaver", "disable-sign-in", "reset-password"):
        with transaction(runtime.ctx.sessions) as s:
            runtime.ctx.runs.complete(s, run_id, step_id, by="user:alice")
    drain(runtime, worker)
    assert len(psa.notes["T-9"]) == 1  # only the launch note so far
    run_job(runtime, "digests")
    drain(runtime, worker)
    texts = [n["text"] for n in psa.notes["T-9"]]
    assert len(texts) == 2 and "progress digest" in texts[1]
    assert texts[1].count("\n- ") == 3


def test_deadletters_cli_lists_and_retries(runtime: Runtime, worker: Worker, psa: FakePSA,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A parked note shows in `msphub deadletters list`; `retry` revives and re-queues it."""
    from typer.testing import CliRunner

    from hub.cli.app import app

    launch_offboarding(runtime)
    with transaction(runtime.ctx.sessions) as s:
        s.execute(update(OutboxNote).values(status="dead", last_error="TransientError: down"))
    worker_cli = importlib.import_module("hub.cli.worker")
    monkeypatch.setattr(worker_cli, "build_runtime", lambda *a, **k: runtime)
    monkeypatch.setattr(Runtime, "stop", lambda self: None)
    monkeypatch.setattr(worker_cli, "context", lambda migrate=False: runtime.ctx)
    runner = CliRunner()
    listed = runner.invoke(app, ["deadletters", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "note" in listed.output and "TransientError: down" in listed.output
    retried = runner.invoke(app, ["deadletters", "retry", "note", "1"])
    assert retried.exit_code == 0, retried.output
    drain(runtime, worker)
    assert len(psa.notes["T-9"]) == 1
    assert runner.invoke(app, ["deadletters", "retry", "note", "1"]).exit_code == 1



"""The event pipeline end to end on the in-process broker: webhook → inbox → rules → run → notes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from dramatiq import Worker
from sqlalchemy import func, select
from structlog.testing import capture_logs

from connectors.base import TransientError
from hub.runtime.broker import DELIVER_NOTE, POLL_SOURCE
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.intake import WebhookError, receive
from hub.services.pipeline import process_event
from hub.store.db import transaction
from hub.store.models import InboxEvent, OutboxNote, Run
from tests.pipeline.conftest import Clock, drain
from tests.pipeline.fakes import FakePSA


def leaver_event(ticket: str = "T-100", *, kind: str = "ticket.created",
                 marker: str = "2026-11-20T09:59:00Z", **data: Any) -> dict[str, Any]:
    ticket_data = {"id": ticket, "type": "Leaver", "board": "HR",
                   "contact": {"name": "Jo Bloggs"}, **data}
    return {
        "source": "psa", "vendor": "fakepsa", "kind": kind,
        "dedupe_key": f"ticket:{ticket}:{marker}",
        "occurred_at": "2026-11-20T09:59:00Z",
        "client": {"id": "ACME", "name": "Acme Ltd"},
        "subject": {"type": "ticket", "id": ticket},
        "data": {"ticket": ticket_data},
    }


def post(rt: Runtime, body: dict[str, Any] | bytes, source: str = "psa") -> int:
    """Deliver one webhook the way the API does; returns the HTTP status it would answer."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        got = receive(rt.ctx, rt.sources, source, headers={}, body=raw, query={},
                      path_secret=None, max_body=65536)
    except WebhookError as exc:
        return exc.status
    for event_id in got.new_ids:
        rt.dispatch.event(event_id)
    return got.status


def count(rt: Runtime, model: Any) -> int:
    with rt.ctx.sessions() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_same_webhook_three_times_launches_one_run(runtime: Runtime, worker: Worker,
                                                   psa: FakePSA) -> None:
    """A redelivered webhook is recognised: one inbox row, one run, one launch note."""
    # Given a leaver ticket webhook
    body = leaver_event()
    # When it is delivered three times
    statuses = [post(runtime, body) for _ in range(3)]
    drain(runtime, worker)
    # Then the first is accepted (202), the redeliveries answered 200, and it acted once
    assert statuses == [202, 200, 200]
    assert count(runtime, InboxEvent) == 1
    assert count(runtime, Run) == 1
    notes = psa.notes["T-100"]
    assert len(notes) == 1 and "launched" in notes[0]["text"]
    with runtime.ctx.sessions() as s:
        run = s.execute(select(Run)).unique().scalar_one()
        assert (run.playbook_id, run.ticket_id, run.launched_by) == (
            "user-offboarding", "T-100", "rule:leaver-starts-offboarding")
        assert run.inputs["leaver_name"] == "Jo Bloggs"
        event = s.execute(select(InboxEvent)).scalar_one()
        assert event.status == "done"
        assert event.result["matched"] == ["leaver-starts-offboarding"]


def test_same_ticket_changed_again_does_not_relaunch(runtime: Runtime, worker: Worker) -> None:
    """A second ticket.created for the same ticket (new change marker) launches nothing new."""
    post(runtime, leaver_event(marker="a"))
    post(runtime, leaver_event(marker="b"))
    drain(runtime, worker)
    assert count(runtime, InboxEvent) == 2
    assert count(runtime, Run) == 1
    with runtime.ctx.sessions() as s:
        results = [e.result for e in s.execute(select(InboxEvent).order_by(InboxEvent.id))
                   .scalars()]
    # the two may be processed in either order; one launches, the other finds it
    assert sorted(r["actions"][0]["effect"] for r in results) == ["already_launched",
                                                                  "launched"]


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400),
    (b"", 400),
])
def test_malformed_webhook_is_refused_and_stores_nothing(runtime: Runtime, body: bytes,
                                                         status: int) -> None:
    """Bad bodies are refused with 4xx; the inbox stays empty."""
    from connectors.base import MalformedPayload

    def parse(request: Any) -> Any:
        raise MalformedPayload("body is not an event")

    runtime.sources.get("psa").connector.parse = parse  # type: ignore[union-attr, method-assign]
    assert post(runtime, body) == status
    assert post(runtime, leaver_event(), source="nope") == 404
    assert count(runtime, InboxEvent) == 0


def test_completing_the_run_posts_progress_and_the_evidence_record(
        runtime: Runtime, worker: Worker, psa: FakePSA) -> None:
    """Every step done → step notes, then the completion record with the audit hash,
    attached as a document, and the ticket status set."""
    runtime.sources.get("psa").spec.completed_status = "Completed"  # type: ignore[union-attr]
    post(runtime, leaver_event())
    drain(runtime, worker)
    with runtime.ctx.sessions() as s:
        run_id = s.execute(select(Run.id)).scalar_one()
    # When a technician completes every applicable step in order
    from hub.services.pipeline import track_new_notes  # noqa: F401  (notes dispatched below)

    with transaction(runtime.ctx.sessions) as s:
        run = runtime.ctx.runs.load(s, run_id)
        order = [st.step_id for st in run.steps if st.status != "not_applicable"]
    for step_id in order:
        with transaction(runtime.ctx.sessions) as s:
            if step_id == "access-removal-signoff":  # signed off by the other manager
                runtime.ctx.runs.approve(s, run_id, step_id, by="user:max", member="max",
                                         comment=f"done {step_id}")
            else:
                runtime.ctx.runs.complete(s, run_id, step_id, by="user:alice",
                                          evidence=f"done {step_id}")
    with runtime.ctx.sessions() as s:
        pending = s.execute(select(OutboxNote.id).where(OutboxNote.status == "pending")
                            ).scalars().all()
    for note_id in pending:
        runtime.dispatch.notes([note_id])
    drain(runtime, worker)
    # Then the ticket has the launch note, one per step, and the completion record
    texts = [n["text"] for n in psa.notes["T-100"]]
    assert len(texts) == 1 + len(order) + 1
    record = texts[-1]
    assert "COMPLETED" in record and "Audit chain: entry #" in record
    for step_id in order:
        assert f"done {step_id}" in record
    assert psa.attachments and psa.attachments[0]["ticket"] == "T-100"
    assert psa.statuses["T-100"] == "Completed"


def test_psa_500_then_timeout_receives_exactly_one_copy(runtime: Runtime,
                                                        psa: FakePSA) -> None:
    """A note the PSA stored but answered 500 for, then timed out on, is not posted again."""
    post(runtime, leaver_event())  # queued, not processed: no worker in this test
    process_event(runtime.ctx, runtime.live_rules(), 1)  # processed, not delivered
    with runtime.ctx.sessions() as s:
        note_id = s.execute(select(OutboxNote.id)).scalar_one()
    # Given a PSA that stores the note but answers 500, and then times out
    psa.fail_next = ["500", "timeout"]
    # When delivery is attempted until it succeeds
    with pytest.raises(TransientError):
        writeback.deliver(runtime.ctx, runtime.sources, note_id)
    result = writeback.deliver(runtime.ctx, runtime.sources, note_id)
    # Then the second attempt found the first copy by its marker and posted nothing
    assert result.outcome == "found"
    assert len(psa.notes["T-100"]) == 1
    assert psa.post_calls == 1
    # and a third call is a no-op
    assert writeback.deliver(runtime.ctx, runtime.sources, note_id).outcome == "skipped"


def test_psa_down_then_up_retries_through_the_worker(runtime: Runtime, worker: Worker,
                                                     psa: FakePSA) -> None:
    """Transient PSA failures are retried by the actor; the note arrives once."""
    psa.fail_next = ["down", "down"]
    post(runtime, leaver_event())
    drain(runtime, worker)
    assert len(psa.notes["T-100"]) == 1
    assert psa.post_calls == 3
    with runtime.ctx.sessions() as s:
        note = s.execute(select(OutboxNote)).scalar_one()
    assert note.status == "sent" and note.attempts == 3


def alert(alert_id: str, category: str = "backup") -> dict[str, Any]:
    return {
        "source": "rmm", "vendor": "fakermm", "kind": "alert.resolved",
        "dedupe_key": f"alert:{alert_id}",
        "occurred_at": datetime(2026, 11, 20, 11, tzinfo=UTC).isoformat(),
        "client": {"id": "site-acme-1", "type": "site"},
        "subject": {"type": "alert", "id": alert_id},
        "data": {"alert": {"id": alert_id, "category": category, "message": "Backup OK"}},
    }


def test_evidence_for_a_locked_step_ticks_it_when_it_opens(runtime: Runtime, psa: FakePSA,
                                                            clock: Clock) -> None:
    """A backup alert for a still-locked step is kept and ticks it once its blockers finish."""
    from hub.core.events import Event
    from hub.services.inbox import add_events
    from hub.services.pipeline import process_event

    ctx = runtime.ctx
    with transaction(ctx.sessions) as s:
        run = ctx.runs.launch(s, "client-onboarding", client="ACME",
                              inputs={"go_live_date": "2026-12-01"}, by="user:manager")
        run_id = run.id
        blockers = [st.step_id for st in run.steps
                    if st.step_id in ("provision-msp-access", "configure-server-backup",
                                      "configure-m365-backup")]
    # When the backup alert arrives while verify-backups is locked
    with transaction(ctx.sessions) as s:
        [event_id] = add_events(s, [Event.model_validate(alert("A-1"))], via="webhook",
                                now=clock())
    result = process_event(ctx, runtime.live_rules(), event_id)
    assert result.actions[0]["runs"] == [{"run_id": run_id, "outcome": "pending"}]
    # Then finishing its prerequisites (and theirs) ticks it with the alert as evidence
    with transaction(ctx.sessions) as s:
        state = ctx.runs.get(s, run_id)
    from hub.core.checklists.engine import blockers as find_blockers

    playbook = ctx.playbooks().get("client-onboarding")
    for _ in range(40):
        with transaction(ctx.sessions) as s:
            state = ctx.runs.get(s, run_id)
            vb = state.step("verify-backups")
            if vb.status.value != "locked":
                break
            todo = find_blockers(playbook, state, "verify-backups")
            target = todo[0]
            while find_blockers(playbook, state, target):
                target = find_blockers(playbook, state, target)[0]
            ctx.runs.complete(s, run_id, target, by="user:bob")
    assert blockers
    with ctx.sessions() as s:
        vb = ctx.runs.get(s, run_id).step("verify-backups")
    assert vb.status.value == "done"
    assert vb.done_by == "rule:backup-verifies"
    assert vb.evidence == "rmm alert A-1: Backup OK"


def test_comment_and_cancel_actions(runtime: Runtime, worker: Worker, psa: FakePSA) -> None:
    """ticket.closed comments on the client's runs; a withdrawn leaver cancels offboarding."""
    post(runtime, leaver_event())
    drain(runtime, worker)
    post(runtime, leaver_event(kind="ticket.closed", marker="c"))
    post(runtime, leaver_event(kind="ticket.updated", marker="w", status="Withdrawn"))
    drain(runtime, worker)
    with runtime.ctx.sessions() as s:
        run = s.execute(select(Run)).unique().scalar_one()
        assert run.status == "cancelled"
        assert run.cancel_reason == "leaver request withdrawn"
    texts = [n["text"] for n in psa.notes["T-100"]]
    assert any("Ticket T-100 was closed in the PSA" in t for t in texts)
    assert any("cancelled" in t for t in texts)


def test_broken_mapping_dropped_in_keeps_old_rules(runtime: Runtime, worker: Worker,
                                                   psa: FakePSA) -> None:
    """A broken mapping file added while running is rejected with file and line; old rules
    keep working."""
    broken = runtime.rules.directory / "zz-broken.yaml"
    broken.write_text("rules:\n  - id: bad\n    on: ticket.created\n    if: {x: {within: 3}}\n"
                      "    comment: {text: hi}\n")
    runtime._last_check = 0.0
    with capture_logs() as logs:
        rules = runtime.live_rules()
    failures = [e for e in logs if e["event"] == "mapping_reload_failed"]
    assert failures and failures[0]["file"].endswith("zz-broken.yaml")
    assert failures[0]["line"] == 4 and "within" in failures[0]["reason"]
    assert rules.get("leaver-starts-offboarding")
    post(runtime, leaver_event())
    drain(runtime, worker)
    assert len(psa.notes["T-100"]) == 1


def test_dead_letter_after_last_attempt_and_retry(runtime: Runtime, worker: Worker,
                                                  psa: FakePSA) -> None:
    """A note that keeps failing is parked as a dead letter; retry delivers it."""
    from hub.services.deadletters import list_dead, revive

    deliver_outbox_item = runtime.broker.get_actor(DELIVER_NOTE)
    deliver_outbox_item.options["max_retries"] = 2
    try:
        # the worker that processed the event tries the note at once, then hands it to
        # the delivery queue: 1 + 3 attempts (max_retries=2)
        psa.fail_next = ["down"] * 4
        post(runtime, leaver_event())
        drain(runtime, worker, fail_fast=False)
        dead = list_dead(runtime.ctx)
        assert [(d.kind, d.attempts) for d in dead] == [("note", 4)]
        assert "PSA unavailable" in (dead[0].error or "")
        assert revive(runtime.ctx, "note", dead[0].id)
        runtime.dispatch.notes([dead[0].id])
        drain(runtime, worker, fail_fast=False)  # the stub keeps the earlier dead message
        assert list_dead(runtime.ctx) == []
        assert len(psa.notes["T-100"]) == 1
    finally:
        deliver_outbox_item.options["max_retries"] = 20


def test_polls_of_one_stream_never_overlap(runtime: Runtime) -> None:
    """While one poll of (source, stream) holds the lock, a second one is skipped."""
    poll_source = runtime.broker.get_actor(POLL_SOURCE)
    calls: list[str] = []
    runtime.sources.get("psa").connector.poll = (  # type: ignore[union-attr]
        lambda stream, cursor: calls.append(stream) or iter(()))
    with runtime.poll_lock("psa", "tickets").acquire(raise_on_failure=False) as held:
        assert held
        poll_source.fn("psa", "tickets")  # skipped: another poll is running
    assert calls == []
    # Once the lock is free, the poll runs (and releases it again)
    poll_source.fn("psa", "tickets")
    assert calls == ["tickets"]
    with runtime.poll_lock("psa", "tickets").acquire(raise_on_failure=False) as held:
        assert held

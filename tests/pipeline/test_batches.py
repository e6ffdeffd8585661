"""Batches: many inbox events per transaction, one broken event never undoes the others,
order per subject holds across batches, and two workers never process an event twice."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from dramatiq import Worker
from sqlalchemy import func, select
from structlog.testing import capture_logs

from hub.config.mappings import parse_rules
from hub.core.events import Event
from hub.core.mapping.engine import RuleSet
from hub.runtime.process import Runtime
from hub.services import actions
from hub.services.inbox import add_events
from hub.services.pipeline import batch_size, process_batch
from hub.store import audit
from hub.store.db import transaction
from hub.store.models import AuditEntry, InboxEvent, OutboxNote, Run
from tests.pipeline.conftest import Clock, drain


def leaver(n: int, *, marker: str = "1", ticket: str | None = None) -> Event:
    ticket = ticket or f"T-{n}"
    return Event.model_validate({
        "source": "psa", "vendor": "fakepsa", "kind": "ticket.created",
        "dedupe_key": f"ticket:{ticket}:{marker}", "occurred_at": "2026-11-20T09:59:00Z",
        "client": {"id": "ACME", "name": "Acme Ltd"},
        "subject": {"type": "ticket", "id": ticket},
        "data": {"ticket": {"id": ticket, "type": "Leaver", "contact": {"name": f"P {n}"}}},
    })


def store(rt: Runtime, clock: Clock, events: list[Event]) -> list[int]:
    with transaction(rt.ctx.sessions) as s:
        return add_events(s, events, via="webhook", now=clock())


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.ctx.sessions() as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where))
                   .scalar_one())


def test_one_message_processes_a_batch_of_pending_events(runtime: Runtime,
                                                         clock: Clock) -> None:
    """Pending events are taken up to the batch size per transaction, each exactly once."""
    # Given more pending leaver tickets than one batch holds
    size = batch_size(runtime.ctx)
    assert size == (10 if runtime.ctx.engine.dialect.name == "sqlite" else 50)
    ids = store(runtime, clock, [leaver(n) for n in range(size + 7)])
    # When one event's message is processed
    batch = process_batch(runtime.ctx, runtime.live_rules(), [ids[-1]])
    # Then a full batch was done in one go, the named event among them
    assert len(batch.processed) == size
    assert ids[-1] in {p.event_id for p in batch.processed}
    assert count(runtime, Run) == size
    assert count(runtime, OutboxNote) == size and len(set(batch.notes)) == size
    # and the next message takes the rest; the chain verifies
    rest = process_batch(runtime.ctx, runtime.live_rules(), [ids[0]])
    assert len(rest.processed) == 7
    assert count(runtime, InboxEvent, InboxEvent.status == "done") == size + 7
    with runtime.ctx.sessions() as s:
        assert audit.verify(s).ok


def test_a_broken_event_is_rolled_back_alone_and_retried_on_its_own(
        runtime: Runtime, worker: Worker, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in one event leaves the batch's other events done; that event
    is retried alone and ends a dead letter."""
    real = actions.apply_action

    def flaky(ctx: Any, session: Any, rules: Any, event: Event, *a: Any) -> Any:
        if event.subject and event.subject.id == "T-3":
            raise RuntimeError("boom")  # not a HubError: a bug, not a bad event
        return real(ctx, session, rules, event, *a)

    monkeypatch.setattr("hub.services.pipeline.apply_action", flaky)
    runtime.broker.get_actor("process_inbox_item").options["max_retries"] = 1
    ids = store(runtime, clock, [leaver(n) for n in range(6)])
    with capture_logs() as logs:
        runtime.dispatch.events([ids[0]])
        drain(runtime, worker, fail_fast=False)
    with runtime.ctx.sessions() as s:
        status = dict(s.execute(select(InboxEvent.subject_id, InboxEvent.status)).all())
    assert status == {"T-0": "done", "T-1": "done", "T-2": "done", "T-3": "dead",
                      "T-4": "done", "T-5": "done"}
    assert count(runtime, Run) == 5
    assert any(e["event"] == "event_batch_member_failed" and e["event_id"] == ids[3]
               for e in logs)
    with runtime.ctx.sessions() as s:
        assert audit.verify(s).ok


def test_an_event_waits_for_its_predecessor_held_by_another_batch(
        runtime: Runtime, clock: Clock) -> None:
    """A later change of a ticket is not applied before the earlier one."""
    # Given a ticket's creation and its withdrawal, stored in that order
    first, second = store(runtime, clock, [
        leaver(1, ticket="T-9"),
        Event.model_validate({**leaver(1, ticket="T-9").model_dump(mode="json"),
                              "kind": "ticket.updated", "dedupe_key": "ticket:T-9:2",
                              "data": {"ticket": {"id": "T-9", "status": "Withdrawn"}}})])
    # When the second is processed while the first is still pending elsewhere
    with runtime.ctx.sessions() as s:
        assert s.get(InboxEvent, first).status == "pending"
    batch = process_batch(runtime.ctx, runtime.live_rules(), [second])
    # Then both are applied, creation first: the run was launched and then cancelled
    assert [p.event_id for p in batch.processed] == [first, second]
    with runtime.ctx.sessions() as s:
        run = s.execute(select(Run)).unique().scalar_one()
        assert run.status == "cancelled"


def test_two_workers_never_process_an_event_twice(runtime: Runtime, clock: Clock) -> None:
    """Concurrent batches split the pending events between them (PostgreSQL: SKIP LOCKED;
    SQLite: one writer at a time); every event is applied exactly once."""
    ids = store(runtime, clock, [leaver(n) for n in range(120)])
    results: list[Any] = []
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            for i in range(start, len(ids), 2):
                results.append(process_batch(runtime.ctx, runtime.live_rules(), [ids[i]]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    done = [p.event_id for b in results for p in b.processed]
    assert sorted(done) == ids  # each once
    assert count(runtime, Run) == 120
    with runtime.ctx.sessions() as s:
        assert audit.verify(s).ok
        launched = s.execute(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "launched")).scalar_one()
        assert launched == 120


def test_stored_near_misses_are_capped(runtime: Runtime, clock: Clock) -> None:
    """An event near 30 rules (regex tests: not indexable) stores 20 near misses and how
    many more there were."""
    text = "rules:\n" + "".join(
        f"  - id: r{i}\n    on: ticket.created\n    if: {{ticket.type: {{matches: '^x{i}$'}}}}\n"
        f"    comment: {{text: x}}\n" for i in range(30))
    compiled, errors = parse_rules(text, "many.yaml", runtime.ctx.playbooks())
    assert not errors
    rules = RuleSet(compiled, ["many.yaml"])
    [event_id] = store(runtime, clock, [leaver(1)])
    [result] = process_batch(runtime.ctx, rules, [event_id]).processed
    assert len(result.near_misses) == 21
    assert result.near_misses[-1] == {"rule_id": "…", "reason": "and 10 more"}

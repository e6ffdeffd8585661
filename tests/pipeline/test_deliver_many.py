"""Delivering a batch's notes together (``writeback.deliver_many``): three statements in
all plus the PSA calls, with the ordering, lease and exactly-once rules of one delivery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update

from connectors.base import TransientError
from hub.core.states import NoteStatus
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.writeback import Delivery, InFlight
from hub.store.db import transaction
from hub.store.models import OutboxNote
from tests.pipeline.fakes import FakePSA
from tests.pipeline.test_notes_sources import launch_from


def _notes(rt: Runtime) -> dict[str, list[int]]:
    """Pending note ids per ticket, in order."""
    out: dict[str, list[int]] = {}
    with rt.ctx.sessions() as session:
        for note_id, ticket in session.execute(select(OutboxNote.id, OutboxNote.ticket_id)
                                               .order_by(OutboxNote.id)):
            out.setdefault(ticket, []).append(note_id)
    return out


def _complete(rt: Runtime, run_id: int, step: str) -> None:
    with transaction(rt.ctx.sessions) as session:
        rt.ctx.runs.complete(session, run_id, step, by="user:alice")


def _status(rt: Runtime, note_id: int) -> tuple[str, int]:
    with rt.ctx.sessions() as session:
        note = session.get(OutboxNote, note_id)
        assert note is not None
        return note.status, note.attempts


def test_notes_of_many_tickets_go_out_once_in_order_with_few_statements(
        runtime: Runtime, psa: FakePSA) -> None:
    """Ten tickets, two notes each: every note posted once, each ticket's in order,
    in a handful of statements (not ~10 per note)."""
    for n in range(10):
        _complete(runtime, launch_from(runtime, "psa", f"T-{n}"), "confirm-leaver")
    ids = [i for ticket in _notes(runtime).values() for i in ticket]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement.split()[0])

    event.listen(runtime.ctx.engine, "before_cursor_execute", count)
    try:
        out = writeback.deliver_many(runtime.ctx, runtime.sources, ids)
    finally:
        event.remove(runtime.ctx.engine, "before_cursor_execute", count)

    assert {o.outcome for o in out.values() if isinstance(o, Delivery)} == {"sent"}
    assert len(out) == 20 and psa.post_calls == 20
    for n in range(10):
        texts = [note["text"] for note in psa.notes[f"T-{n}"]]
        assert len(texts) == 2 and "launched" in texts[0]
    assert len([s for s in statements if s in ("SELECT", "UPDATE", "INSERT")]) <= 4
    assert all(_status(runtime, i)[0] == NoteStatus.SENT for i in ids)
    # a second call finds nothing to do
    again = writeback.deliver_many(runtime.ctx, runtime.sources, ids)
    assert {o.outcome for o in again.values() if isinstance(o, Delivery)} == {"skipped"}
    assert psa.post_calls == 20


def test_a_failing_note_stops_its_ticket_only(runtime: Runtime, psa: FakePSA) -> None:
    """The PSA is down for ticket A's first note: A's later note waits (released, no
    attempt spent) with the same error; ticket B's notes go out."""
    a = launch_from(runtime, "psa", "T-A")
    _complete(runtime, a, "confirm-leaver")
    b = launch_from(runtime, "psa", "T-B")
    notes = _notes(runtime)
    first_a, second_a = notes["T-A"]
    psa.fail_next = ["down"]

    out = writeback.deliver_many(runtime.ctx, runtime.sources, [second_a, *notes["T-B"]])

    assert isinstance(out[second_a], TransientError)
    assert _status(runtime, first_a) == (NoteStatus.PENDING, 1)  # tried once, failed
    assert _status(runtime, second_a) == (NoteStatus.PENDING, 0)  # never tried
    assert [o.outcome for i, o in out.items() if i != second_a] == ["sent"]  # type: ignore[union-attr]
    assert "T-A" not in psa.notes and len(psa.notes["T-B"]) == 1
    assert b  # (B's run exists)
    # the retry sends both of A's, in order
    retry = writeback.deliver_many(runtime.ctx, runtime.sources, [second_a])
    assert isinstance(retry[second_a], Delivery) and retry[second_a].outcome == "sent"
    assert len(psa.notes["T-A"]) == 2 and "launched" in psa.notes["T-A"][0]["text"]


def test_an_earlier_note_leased_elsewhere_makes_the_ticket_wait(
        runtime: Runtime, psa: FakePSA) -> None:
    """Another worker holds the lease on ticket A's first note: its second note is
    InFlight (for the queue to try later), nothing is posted to A."""
    a = launch_from(runtime, "psa", "T-A")
    _complete(runtime, a, "confirm-leaver")
    first, second = _notes(runtime)["T-A"]
    with transaction(runtime.ctx.sessions) as session:
        session.execute(update(OutboxNote).where(OutboxNote.id == first).values(
            status=NoteStatus.SENDING,
            next_attempt_at=runtime.ctx.clock() + timedelta(minutes=5)))

    out = writeback.deliver_many(runtime.ctx, runtime.sources, [second])

    assert isinstance(out[second], InFlight)
    assert psa.post_calls == 0 and _status(runtime, second) == (NoteStatus.PENDING, 0)

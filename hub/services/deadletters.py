"""Dead letters: inbox events, outbox notes and notifications whose last attempt failed, for
an admin to retry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.states import InboxStatus, NoteStatus
from hub.services.context import HubContext
from hub.store.db import transaction
from hub.store.models import InboxEvent, Notification, OutboxNote


@dataclass(frozen=True)
class DeadLetter:
    """One parked item."""

    kind: str  # event | note | notification
    id: int
    summary: str
    attempts: int
    error: str | None
    at: datetime


def _get(session: Session, kind: str,
         item_id: int) -> InboxEvent | OutboxNote | Notification | None:
    if kind == "event":
        return session.get(InboxEvent, item_id)
    if kind == "notification":
        return session.get(Notification, item_id)
    return session.get(OutboxNote, item_id)


def mark_dead(ctx: HubContext, actor: str, item_id: int, error: str) -> None:
    """Park the item an actor gave up on (called after its last attempt)."""
    kinds = {"process_inbox_item": "event", "deliver_outbox_item": "note"}
    if actor not in kinds:
        return
    with transaction(ctx.sessions) as session:
        row = _get(session, kinds[actor], item_id)
        finished = (InboxStatus.DONE, InboxStatus.IGNORED, NoteStatus.SENT)
        if row is not None and row.status not in finished:
            row.status = InboxStatus.DEAD if kinds[actor] == "event" else NoteStatus.DEAD
            row.last_error = error[:500]


def list_dead(ctx: HubContext) -> list[DeadLetter]:
    """Every parked event and note, oldest first."""
    out: list[DeadLetter] = []
    with ctx.sessions() as session:
        for ev in session.execute(select(InboxEvent).where(InboxEvent.status == InboxStatus.DEAD)
                                  .order_by(InboxEvent.id)).scalars():
            out.append(DeadLetter("event", ev.id, f"{ev.source} {ev.kind} {ev.dedupe_key}",
                                  ev.attempts, ev.last_error, ev.received_at))
        for note in session.execute(select(OutboxNote).where(OutboxNote.status == NoteStatus.DEAD)
                                    .order_by(OutboxNote.id)).scalars():
            out.append(DeadLetter("note", note.id,
                                  f"{note.kind} note → {note.source} ticket {note.ticket_id}",
                                  note.attempts, note.last_error, note.created_at))
        for item in session.execute(
                select(Notification).where(Notification.status == NoteStatus.DEAD)
                .order_by(Notification.id)).scalars():
            out.append(DeadLetter("notification", item.id,
                                  f"{item.kind} {item.channel} → {item.recipient}: "
                                  f"{item.subject}", item.attempts, item.last_error,
                                  item.created_at))
    return out


def revive(ctx: HubContext, kind: str, item_id: int) -> bool:
    """Put a dead item back to pending (the caller enqueues it; a notification is due at
    once, for the next delivery pass); False if not dead."""
    with transaction(ctx.sessions) as session:
        row = _get(session, kind, item_id)
        if row is None or row.status not in (InboxStatus.DEAD, NoteStatus.DEAD):
            return False
        row.status = InboxStatus.PENDING if kind == "event" else NoteStatus.PENDING
        row.last_error = None
        if isinstance(row, Notification):
            row.attempts, row.next_attempt_at = 0, ctx.clock()
    return True

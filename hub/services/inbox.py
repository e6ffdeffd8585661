"""The inbox: every accepted event stored once per (source, dedupe_key), then processed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, select, tuple_, update
from sqlalchemy.orm import Session

from connectors import payload as bounded
from connectors.base import MalformedPayload
from hub.core.events import ClientRef, Event, EventKind, SubjectRef
from hub.core.states import InboxStatus
from hub.errors import HubError, NotFound
from hub.store.db import insert_ignore_stmt
from hub.store.models import InboxEvent

# JSON columns get one level more than a parsed body may have (the event wraps it)
STORED_DEPTH = bounded.MAX_DEPTH + 2


class UnstorableEvent(HubError):
    """An event cannot be stored as it is (a field over its column limit, a NUL, NaN …).

    Both databases refuse or accept the same events because this is checked before the
    insert (PostgreSQL would reject a NUL or a 300-character id; SQLite would store it).

    Attributes:
        field: the inbox column (or ``data``/``raw`` path) at fault.
    """

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


def _column_limit(name: str) -> int | None:
    column_type = InboxEvent.__table__.c[name].type
    return column_type.length if isinstance(column_type, String) else None


def check_storable(event: Event) -> None:
    """Refuse an event the inbox columns cannot hold, the same way on every database.

    Raises:
        UnstorableEvent: naming the field (length over the column limit, NUL or lone
            surrogate, a non-finite number, or JSON nested too deep).
    """
    row = _row(event, "webhook", event.occurred_at)
    for name, value in row.items():
        if not isinstance(value, str):
            continue
        limit = _column_limit(name)
        try:
            bounded.check_string(value, name, max_length=limit or bounded.MAX_STRING)
        except MalformedPayload as exc:
            raise UnstorableEvent(f"field '{name}': {exc}", field=name) from None
    for name in ("data", "raw"):
        try:
            bounded.check_value(row[name], name, max_depth=STORED_DEPTH)
        except MalformedPayload as exc:
            raise UnstorableEvent(str(exc), field=name) from None
    try:
        bounded.in_window(event.occurred_at, "occurred_at")
    except MalformedPayload as exc:
        raise UnstorableEvent(str(exc), field="occurred_at") from None


def _row(event: Event, via: str, now: datetime) -> dict[str, Any]:
    return {
        "source": event.source, "vendor": event.vendor, "kind": str(event.kind),
        "dedupe_key": event.dedupe_key, "occurred_at": event.occurred_at, "received_at": now,
        "via": via,
        "client_key": event.client.id if event.client else None,
        "client_name": event.client.name if event.client else None,
        "client_type": event.client.type if event.client else None,
        "subject_type": event.subject.type if event.subject else None,
        "subject_id": event.subject.id if event.subject else None,
        "data": event.data, "raw": event.raw, "status": InboxStatus.PENDING, "attempts": 0,
    }


def add_events(session: Session, events: Iterable[Event], *, via: str,
               now: datetime) -> list[int]:
    """Insert events, ignoring ones already stored; returns the ids of the new rows.

    Uses ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` so concurrent receivers
    and overlapping polls never fail and never store a duplicate.
    """
    new_ids: list[int] = []
    for event in events:
        stmt = insert_ignore_stmt(session, InboxEvent, _row(event, via, now),
                                  ["source", "dedupe_key"]).returning(InboxEvent.id)
        new_id = session.execute(stmt).scalar_one_or_none()
        if new_id is not None:
            new_ids.append(int(new_id))
    return new_ids


ENRICHED_SUFFIX = "#full"  # the linked row's key when the full record keeps the thin key


@dataclass(frozen=True)
class Enriched:
    """Where the full records fetched for a thin webhook row are stored.

    Attributes:
        new: rows stored now, linked to the thin row (``enriched_from``).
        linked: every row linked to the thin row (stored now or by an earlier attempt).
        elsewhere: rows that already held the same change (a poll got there first).
    """

    new: list[int]
    linked: list[int]
    elsewhere: list[int]


def add_enriched(session: Session, thin: InboxEvent, events: Sequence[Event], *,
                 now: datetime) -> Enriched:
    """Store the full records of a thin webhook as rows of their own, linked to it.

    The thin row keeps what the vendor sent (its ``raw``, kind and key); each full event
    keeps its own key, which says "this change of this record", so a poll of the same
    change collides with it, and a change a poll already stored is not stored again. A
    full event whose key is the thin row's own (the vendor's webhook already named the
    change) is stored under that key plus ``#full``: the thin row then keeps the key.
    """
    keyed = [e if e.dedupe_key != thin.dedupe_key or e.source != thin.source else
             e.model_copy(update={"dedupe_key": (e.dedupe_key[:255 - len(ENRICHED_SUFFIX)]
                                                 + ENRICHED_SUFFIX)})
             for e in events]
    new = add_events(session, keyed, via="enrich", now=now)
    if new:
        session.execute(update(InboxEvent).where(InboxEvent.id.in_(new))
                        .values(enriched_from=thin.id))
    found = session.execute(
        select(InboxEvent.id, InboxEvent.enriched_from).where(
            tuple_(InboxEvent.source, InboxEvent.dedupe_key).in_(
                [(e.source, e.dedupe_key) for e in keyed]))
        .order_by(InboxEvent.id)).all()
    linked = [i for i, origin in found if i in new or origin == thin.id]
    return Enriched(new=new, linked=linked, elsewhere=[i for i, _ in found if i not in linked])


def to_event(row: InboxEvent) -> Event:
    """Rebuild the normalized event from its inbox row."""
    return Event(
        source=row.source, vendor=row.vendor, kind=EventKind(row.kind),
        dedupe_key=row.dedupe_key, occurred_at=row.occurred_at,
        client=ClientRef(id=row.client_key, name=row.client_name,
                         type=row.client_type or "company") if row.client_key else None,
        subject=SubjectRef(type=row.subject_type, id=row.subject_id)
        if row.subject_type and row.subject_id else None,
        data=row.data or {}, raw=row.raw or {},
    )


def unfinished(session: Session, *, older_than: datetime, limit: int = 1000) -> list[int]:
    """Pending items received before ``older_than`` (left behind by a crash or lost message)."""
    return list(session.execute(
        select(InboxEvent.id).where(InboxEvent.status == InboxStatus.PENDING,
                                    InboxEvent.received_at < older_than)
        .order_by(InboxEvent.id).limit(limit)
    ).scalars())


def recent(session: Session, *, status: str | None = None, source: str | None = None,
           kind: str | None = None, client: str | None = None, limit: int = 100,
           offset: int = 0) -> list[InboxEvent]:
    """Inbox events, newest first, optionally of one status, source, kind or hub client."""
    stmt = select(InboxEvent).order_by(InboxEvent.id.desc()).limit(limit).offset(offset)
    if status:
        stmt = stmt.where(InboxEvent.status == status)
    if source:
        stmt = stmt.where(InboxEvent.source == source)
    if kind:
        stmt = stmt.where(InboxEvent.kind == kind)
    if client:
        stmt = stmt.where(InboxEvent.hub_client == client)
    return list(session.execute(stmt).scalars())


def reopen(session: Session, event_id: int) -> InboxEvent:
    """Put a processed event back to pending, to run through the live rules again.

    Effects stay idempotent: a ticket never launches the same playbook twice and a
    finished step is not ticked again, so a replay adds only what is missing.

    Raises:
        NotFound: no such event.
    """
    row = session.get(InboxEvent, event_id)
    if row is None:
        raise NotFound(f"event {event_id} does not exist")
    row.status, row.last_error = InboxStatus.PENDING, None
    return row

"""The inbox: every accepted event stored once per (source, dedupe_key), then processed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.events import ClientRef, Event, EventKind, SubjectRef
from hub.core.states import InboxStatus
from hub.store.db import insert_ignore_stmt
from hub.store.models import InboxEvent


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

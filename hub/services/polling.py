"""Incremental polling: each page's events and its cursor are saved in one transaction."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import AuthFailed, Cursor, Poller
from connectors.base import NotFound as ConnectorNotFound
from hub.core.events import Event
from hub.core.states import SourceState
from hub.services import source_health
from hub.services.context import HubContext
from hub.services.inbox import UnstorableEvent, add_events, check_storable
from hub.services.sources import Sources
from hub.store.db import transaction
from hub.store.models import SourceCursor

log = structlog.get_logger()


def load_cursor(session: Session, source: str, stream: str) -> Cursor | None:
    """The saved position of a stream, or None before the first poll."""
    row = session.get(SourceCursor, (source, stream))
    return Cursor.model_validate(row.value) if row else None


def save_cursor(session: Session, source: str, stream: str, cursor: Cursor,
                now: datetime) -> None:
    """Store a stream's position; a cursor never moves backwards."""
    row = session.execute(
        select(SourceCursor).where(SourceCursor.source == source, SourceCursor.stream == stream)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        session.add(SourceCursor(source=source, stream=stream,
                                 value=cursor.model_dump(mode="json"), updated_at=now))
        return
    old = Cursor.model_validate(row.value)
    if cursor.position >= old.position:
        row.value, row.updated_at = cursor.model_dump(mode="json"), now


def poll_once(ctx: HubContext, sources: Sources, source: str, stream: str) -> list[int]:
    """Fetch new pages of one stream; returns the ids of newly stored events.

    Raises:
        ConnectorNotFound: no such source, or it cannot poll.
    """
    src = sources.get(source)
    if src is None or not isinstance(src.connector, Poller):
        raise ConnectorNotFound(f"source '{source}' is not configured for polling",
                                source=source)
    with ctx.sessions() as session:
        state = source_health.health(session, source, src.fingerprint)
        cursor = load_cursor(session, source, stream)
    if state.holding:
        # the vendor refused our credentials: no call until they change or an admin retries
        log.info("poll_held_auth_failed", source=source, stream=stream)
        return []
    new_ids: list[int] = []
    pages = 0
    try:
        for page in src.connector.poll(stream, cursor):
            pages += 1
            events = [e for e in page.events if _storable(source, e)]
            with transaction(ctx.sessions) as session:
                new_ids += add_events(session, events, via="poll", now=ctx.clock())
                save_cursor(session, source, stream, page.cursor, ctx.clock())
    except AuthFailed as exc:
        source_health.auth_failed(ctx.sessions, source, src.fingerprint, str(exc), ctx.clock())
        raise
    if state.state is not SourceState.HEALTHY:
        source_health.succeeded(ctx.sessions, source)
    log.info("poll_finished", source=source, stream=stream, pages=pages, new=len(new_ids))
    return new_ids


def _storable(source: str, event: Event) -> bool:
    """False (logged at error, with the record's key) for a polled record the inbox columns
    cannot hold; the poll goes on past it instead of failing on it for ever."""
    try:
        check_storable(event)
    except UnstorableEvent as exc:
        log.error("poll_record_unstorable", source=source, dedupe_key=event.dedupe_key[:255],
                  field=exc.field, reason=str(exc)[:200])
        return False
    return True

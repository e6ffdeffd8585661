"""A polled record the inbox cannot hold is logged and skipped; the poll goes on past it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from structlog.testing import capture_logs

from connectors.base import Cursor, Page
from hub.core.events import Event
from hub.runtime.process import Runtime
from hub.services.polling import poll_once
from hub.store.models import InboxEvent, SourceCursor


def ticket(n: int, *, summary: str = "ok") -> Event:
    return Event.model_validate({
        "source": "psa", "vendor": "fakepsa", "kind": "ticket.updated",
        "dedupe_key": f"ticket:{n}:1", "occurred_at": "2026-11-20T09:59:00Z",
        "client": {"id": "ACME"}, "subject": {"type": "ticket", "id": str(n)},
        "data": {"ticket": {"id": n, "summary": summary}}})


def test_an_unstorable_polled_record_is_skipped_not_fatal(runtime: Runtime) -> None:
    """A NUL in one record's field (PostgreSQL cannot store it) does not stop the poll."""
    # Given a stream whose page holds a good record, a broken one and another good one
    page = Page(events=[ticket(1), ticket(2, summary="bad\x00byte"), ticket(3)],
                cursor=Cursor(position="2026-11-20T10:00:00Z"))

    def poll(stream: str, cursor: Any) -> Iterator[Page]:
        yield page

    runtime.sources.get("psa").connector.poll = poll  # type: ignore[union-attr]
    # When it is polled
    with capture_logs() as logs:
        new = poll_once(runtime.ctx, runtime.sources, "psa", "tickets")
    # Then the good records are stored, the cursor moved, and the broken one is named
    assert len(new) == 2
    with runtime.ctx.sessions() as s:
        keys = set(s.execute(select(InboxEvent.dedupe_key)).scalars())
        assert keys == {"ticket:1:1", "ticket:3:1"}
        assert s.execute(select(func.count()).select_from(SourceCursor)).scalar_one() == 1
    [error] = [e for e in logs if e["event"] == "poll_record_unstorable"]
    assert error["dedupe_key"] == "ticket:2:1" and error["log_level"] == "error"

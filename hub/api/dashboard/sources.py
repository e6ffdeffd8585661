"""Operations: the configured sources as this hub process sees them — request budget
left, a vendor's Retry-After pause, poll cursors and when each last moved, and the
events each source delivered by outcome (manager)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from hub.api.auth import Hub
from hub.api.dashboard.operations import manager_only
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token
from hub.runtime.process import Runtime
from hub.store.models import InboxEvent, SourceCursor

router = APIRouter(include_in_schema=False)


@dataclass
class SourceRow:
    """One configured source."""

    name: str
    vendor: str
    display: str
    interval: str
    budget_left: int | None
    paused_for: float
    cursors: list[tuple[str, Any, datetime]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    last_event: datetime | None = None


@router.get("/ops/sources", response_class=HTMLResponse)
def sources_page(request: Request, ctx: Hub) -> Response:
    """Every source with its budget, pause, cursors and event outcomes (three statements)."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    rt = cast(Runtime, request.app.state.runtime)
    rows = {src.name: SourceRow(
        name=src.name, vendor=src.vendor, display=src.connector.manifest.display_name,
        interval=str(src.poll_interval()), budget_left=src.remaining_budget(),
        paused_for=src.paused_for()) for src in rt.sources}
    with ctx.sessions() as session:
        for c in session.execute(select(SourceCursor).order_by(SourceCursor.stream)).scalars():
            if c.source in rows:
                rows[c.source].cursors.append((c.stream, (c.value or {}).get("position"),
                                               c.updated_at))
        for source, status, count in session.execute(
                select(InboxEvent.source, InboxEvent.status, func.count())
                .group_by(InboxEvent.source, InboxEvent.status)):
            if source in rows:
                rows[source].counts[status] = int(count)
        for source, last in session.execute(
                select(InboxEvent.source, func.max(InboxEvent.received_at))
                .group_by(InboxEvent.source)):
            if source in rows:
                rows[source].last_event = last
    return render("ops_sources.html", who=who, now=ctx.clock(), sources=list(rows.values()),
                  csrf=csrf_token(request))

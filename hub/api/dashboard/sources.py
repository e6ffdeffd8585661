"""Operations: the configured sources as this hub process sees them — whether the vendor
refused their credentials (admins retry here), request budget left, a vendor's
Retry-After pause, poll cursors and when each last moved, and the
events each source delivered by outcome (manager)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select

from hub.api.auth import Hub, Principal
from hub.api.dashboard.operations import manager_only, post_form
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token
from hub.errors import NotAllowed, NotFound
from hub.runtime.process import Runtime
from hub.services import source_health
from hub.services.context import HubContext
from hub.services.source_health import Health
from hub.services.tokens import Role
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
    health: Health
    cursors: list[tuple[str, Any, datetime]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    last_event: datetime | None = None


@router.get("/ops/sources", response_class=HTMLResponse)
def sources_page(request: Request, ctx: Hub) -> Response:
    """Every source with its credentials' state, budget, pause, cursors and event outcomes."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    return _sources_view(request, ctx, who)


def _sources_view(request: Request, ctx: HubContext, who: Principal, *,
                  error: str | None = None, status: int = 200) -> Response:
    rt = cast(Runtime, request.app.state.runtime)
    with ctx.sessions() as session:
        failing = source_health.all_health(session)
        rows = {src.name: SourceRow(
            name=src.name, vendor=src.vendor, display=src.connector.manifest.display_name,
            interval=str(src.poll_interval()), budget_left=src.remaining_budget(),
            paused_for=src.paused_for(),
            health=source_health.from_row(src.name, failing.get(src.name), src.fingerprint))
            for src in rt.sources}
        for c in session.execute(select(SourceCursor).order_by(SourceCursor.stream)).scalars():
            if c.source in rows:
                rows[c.source].cursors.append((c.stream, (c.value or {}).get("position"),
                                               c.updated_at))
        for source, state, count in session.execute(
                select(InboxEvent.source, InboxEvent.status, func.count())
                .group_by(InboxEvent.source, InboxEvent.status)):
            if source in rows:
                rows[source].counts[state] = int(count)
        for source, last in session.execute(
                select(InboxEvent.source, func.max(InboxEvent.received_at))
                .group_by(InboxEvent.source)):
            if source in rows:
                rows[source].last_event = last
    return render("ops_sources.html", status, who=who, now=ctx.clock(),
                  sources=list(rows.values()), csrf=csrf_token(request), error=error,
                  may_retry=who.role is Role.ADMIN)


@router.post("/ops/sources/{name}/retry")
async def retry_source(name: str, request: Request, ctx: Hub) -> Response:
    """Let a source whose credentials were refused call the vendor again (admin), as
    ``msphub connectors retry``; the next poll or delivery tells whether they work now."""
    rt = cast(Runtime, request.app.state.runtime)

    def work(_form: dict[str, str], who: Principal) -> str:
        src = rt.sources.get(name)
        if src is None:
            raise NotFound(f"no source named '{name}' is configured")
        if not source_health.retry(ctx.sessions, name, by=who.name):
            raise NotAllowed(f"the credentials of '{name}' are not marked as refused")
        for stream in src.streams() if src.spec.poll.enabled else []:
            rt.dispatch.poll(name, stream)
        return "/ops/sources"

    return await post_form(request, ctx, Role.ADMIN, "retrying a source", work,
                           lambda who, msg, code: _sources_view(request, ctx, who, error=msg,
                                                                status=code))

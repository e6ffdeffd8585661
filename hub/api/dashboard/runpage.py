"""The run page: steps in order with state, people and evidence; inputs; the ticket as a
link into the PSA; the audit trail; the forms the viewer's role allows."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from hub.api.auth import Hub, Principal
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token, viewer
from hub.api.dashboard.signoffs import refusal_for
from hub.api.params import RunId
from hub.api.schemas import RunDetail, audit_entry, run_detail
from hub.core.states import StepStatus
from hub.errors import NotFound
from hub.runtime.process import Runtime
from hub.services.context import HubContext
from hub.services.runs import to_state
from hub.services.tokens import Role, at_least
from hub.store.models import AuditEntry

router = APIRouter(include_in_schema=False)


def ticket_link(request: Request, detail: RunDetail) -> str | None:
    """The ticket's address in its PSA, when the source's connector can tell it."""
    if detail.ticket is None:
        return None
    rt = cast(Runtime, request.app.state.runtime)
    source = rt.sources.get(detail.ticket.source)
    url_of = getattr(source.connector, "ticket_url", None) if source else None
    if url_of is None:
        return None
    url = url_of(detail.ticket.id)
    # only web addresses: never a javascript: or data: URL from a connector's config
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def run_view(request: Request, ctx: HubContext, who: Principal, run_id: int, *,
             error: str | None = None, status: int = 200) -> Response:
    """The run page (with an optional error from a refused form)."""
    now = ctx.clock()
    with ctx.sessions() as session:
        try:
            row = ctx.runs.load(session, run_id)
        except NotFound:
            return render("missing.html", 404, who=who, run_id=run_id,
                          csrf=csrf_token(request))
        detail = run_detail(ctx.runs, row, now)
        playbook = ctx.runs.playbook_for(row)
        inputs = {i.id: i.title for i in playbook.inputs}
        state = to_state(row)
        # open sign-offs: None when the viewer may approve, else why not (shown instead)
        sign_refusals = {s.step_id: refusal_for(ctx, who, playbook, state, s.step_id)
                         for s in detail.steps
                         if s.approval is not None and s.status is StepStatus.OPEN}
        entries = [audit_entry(e) for e in session.execute(
            select(AuditEntry).where(AuditEntry.run_id == run_id).order_by(AuditEntry.id)
        ).scalars()]
    titles = {s.step_id: s.title for s in detail.steps}
    members = {m.id: m.name for m in ctx.team.members}
    return render("run.html", status, who=who, now=now, run=detail, input_titles=inputs,
                  titles=titles, members=members, audit=entries, error=error,
                  sign_refusals=sign_refusals,
                  csrf=csrf_token(request), ticket_url=ticket_link(request, detail),
                  may_work=at_least(who.role, Role.TECHNICIAN),
                  may_manage=at_least(who.role, Role.MANAGER))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """One run: its steps, states, assignees, due times, evidence and audit trail."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    return run_view(request, ctx, who, run_id)

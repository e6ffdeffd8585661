"""The run page: steps in order with state, people and evidence; inputs; the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from hub.api.auth import Hub
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import viewer
from hub.api.params import RunId
from hub.api.schemas import audit_entry, run_detail
from hub.errors import NotFound
from hub.store.models import AuditEntry

router = APIRouter(include_in_schema=False)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """One run: its steps, states, assignees, due times, evidence and audit trail."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    now = ctx.clock()
    with ctx.sessions() as session:
        try:
            row = ctx.runs.load(session, run_id)
        except NotFound:
            return render("missing.html", 404, who=who, run_id=run_id)
        detail = run_detail(ctx.runs, row, now)
        inputs = {i.id: i.title for i in ctx.runs.playbook_for(row).inputs}
        entries = [audit_entry(e) for e in session.execute(
            select(AuditEntry).where(AuditEntry.run_id == run_id).order_by(AuditEntry.id)
        ).scalars()]
    titles = {s.step_id: s.title for s in detail.steps}
    members = {m.id: m.name for m in ctx.team.members}
    return render("run.html", who=who, now=now, run=detail, input_titles=inputs,
                  titles=titles, members=members, audit=entries)

"""My work: a technician's open (unlocked) steps across every run, soonest due first, and
the sign-offs waiting for their approval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from hub.api.auth import Hub, Principal
from hub.api.dashboard import signoffs
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token, viewer
from hub.core.checklists.evidence import EvidenceField
from hub.core.states import RunStatus, StepStatus
from hub.services.context import HubContext
from hub.store.models import Client, PlaybookVersion, Run, RunStep

router = APIRouter(include_in_schema=False)
WORK_LIMIT = 300

Member = Annotated[str | None, Query(max_length=100)]


@dataclass(frozen=True)
class WorkItem:
    """One open step assigned to the person."""

    run_id: int
    step_id: str
    title: str
    due_at: datetime | None
    run_title: str
    client: str
    client_name: str
    form: tuple[EvidenceField, ...] = ()  # the step's evidence form, filled in place
    sign_off: bool = False  # an approval step: approved on the run page, never "done"


def open_steps(ctx: HubContext, member: str) -> list[WorkItem]:
    """The member's open steps of active runs, by due date (undated last), one statement
    (and one per playbook version not read yet, for the steps' evidence forms)."""
    stmt = (
        select(RunStep.run_id, RunStep.step_id, RunStep.title, RunStep.due_at,
               PlaybookVersion.title, Client.key, Client.name, PlaybookVersion.id)
        .join(Run, Run.id == RunStep.run_id)
        .join(Client, Client.id == Run.client_id)
        .join(PlaybookVersion, PlaybookVersion.id == Run.playbook_version_id)
        .where(RunStep.assignee == member, RunStep.status == StepStatus.OPEN.value,
               Run.status == RunStatus.ACTIVE.value)
        .order_by(RunStep.due_at.is_(None), RunStep.due_at, RunStep.run_id, RunStep.position)
        .limit(WORK_LIMIT)
    )
    with ctx.sessions() as session:
        items: list[WorkItem] = []
        for r in session.execute(stmt):
            step = ctx.runs.playbook_version(session, r[7]).step(r[1])
            items.append(WorkItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or r[5],
                                  form=tuple(step.evidence_fields),
                                  sign_off=step.approval is not None))
        return items


def work_view(request: Request, ctx: HubContext, who: Principal, member: str | None, *,
              error: str | None = None, status: int = 200) -> Response:
    """The page, for ``member`` (default: the signed-in person), with an optional error."""
    person = member or who.name
    items = open_steps(ctx, person)
    known = ctx.team.member(person)
    # sign-offs are the signed-in person's own: whether they may approve depends on them
    sign_offs = signoffs.waiting_for(ctx, who) if person == who.name else []
    return render("work.html", status, who=who, now=ctx.clock(), items=items, person=person,
                  sign_offs=sign_offs, sign_limit=signoffs.SIGNOFF_LIMIT,
                  person_name=known.name if known else person, error=error,
                  csrf=csrf_token(request), members=[(m.id, m.name) for m in ctx.team.members],
                  may_work=who.role.value != "viewer", limit=WORK_LIMIT,
                  next=request.url.path + (f"?member={member}" if member else ""))


@router.get("/work", response_class=HTMLResponse)
def my_work(request: Request, ctx: Hub, member: Member = None) -> Response:
    """The signed-in technician's open steps (or another member's, with ``?member=``)."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    return work_view(request, ctx, who, member or None)

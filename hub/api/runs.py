"""/api/runs: launch, list, read and work on runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.api.auth import Hub, Principal, Viewer, require
from hub.api.errors import ApiError
from hub.api.metrics import ApiMetrics
from hub.api.params import AssigneeFilter, ClientFilter, PlaybookFilter, RunId, StepId
from hub.api.schemas import (
    ApproveRequest,
    AssignRequest,
    AuditEntryOut,
    CancelRequest,
    CommentRequest,
    CompleteRequest,
    ErrorOut,
    LaunchRequest,
    RejectRequest,
    RunDetail,
    RunSummary,
    SkipRequest,
    audit_entry,
    run_detail,
    run_summary,
)
from hub.core.checklists.approvals import ApprovalRefused
from hub.core.checklists.engine import TicketRef
from hub.core.checklists.evidence import EvidenceInvalid
from hub.core.states import RunStatus
from hub.services.context import HubContext
from hub.services.runs import RunFilter
from hub.services.tokens import Role, at_least
from hub.store.db import transaction
from hub.store.models import AuditEntry

router = APIRouter(prefix="/api/runs", tags=["runs"])


Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_READ: Responses = {401: _error("Missing or invalid token"), 404: _error("No such run")}
_WRITE: Responses = {**_READ, 403: _error("Role too low"),
                      409: _error("Step locked or not allowed"), 422: _error("Invalid request")}

Launcher = Annotated[Principal, Depends(require(Role.MANAGER, "launching a run"))]
Worker = Annotated[Principal, Depends(require(Role.TECHNICIAN, "working on a run's steps"))]
Canceller = Annotated[Principal, Depends(require(Role.MANAGER, "cancelling a run"))]
Approver = Annotated[Principal, Depends(require(Role.TECHNICIAN, "signing off a step"))]


def _metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def _count_completion(request: Request, detail: RunDetail) -> None:
    # A transition only succeeds on an active run, so "completed" now means "just completed".
    if detail.status is RunStatus.COMPLETED:
        _metrics(request).runs_completed.labels(detail.playbook).inc()


def _duplicate(ctx: HubContext, ticket: TicketRef, playbook: str) -> ApiError | None:
    with ctx.sessions() as session:
        existing = ctx.runs.find_by_ticket(session, ticket, playbook)
    if existing is None:
        return None
    return ApiError(409, "duplicate_run",
                    f"ticket {ticket.source}/{ticket.id} already launched '{playbook}' "
                    f"as run {existing.id}", run_id=existing.id)


@router.post("", status_code=201, response_model=RunDetail,
             responses={**_WRITE, 404: _error("Unknown playbook"),
                        409: _error("This ticket already launched this playbook")})
def launch_run(body: LaunchRequest, ctx: Hub, who: Launcher, request: Request,
               response: Response) -> RunDetail:
    """Launch a run (manager). The ``Location`` header points at the new run."""
    ticket = TicketRef(body.ticket.source, body.ticket.id) if body.ticket else None
    if ticket and (dup := _duplicate(ctx, ticket, body.playbook)):
        raise dup
    for attempt in (1, 2):
        try:
            with transaction(ctx.sessions) as session:
                try:
                    row = ctx.runs.launch(session, body.playbook, client=body.client,
                                          client_name=body.client_name, inputs=body.inputs,
                                          by=who.actor, ticket=ticket)
                except ValueError as exc:  # coerce_inputs names the input at fault
                    raise ApiError(422, "invalid_inputs", str(exc)) from exc
                detail = run_detail(ctx.runs, row, ctx.clock())
            break
        except IntegrityError:
            # A concurrent launch won the race: the same ticket (→ 409), or the same new
            # client row (→ retry once, the client now exists).
            if ticket and (dup := _duplicate(ctx, ticket, body.playbook)):
                raise dup from None
            if attempt == 2:
                raise
    metrics = _metrics(request)
    metrics.runs_launched.labels(detail.playbook).inc()
    _count_completion(request, detail)  # every step may be not applicable
    response.headers["Location"] = f"/api/runs/{detail.id}"
    return detail


@router.get("", response_model=list[RunSummary],
            responses={401: _error("Missing token"), 422: _error("Invalid filter")})
def list_runs(
    ctx: Hub,
    _who: Viewer,
    client: ClientFilter = None,
    playbook: PlaybookFilter = None,
    assignee: AssigneeFilter = None,
    status: Annotated[RunStatus | None, Query(description="Run status.")] = None,
    overdue: Annotated[bool | None, Query(
        description="true: active runs with a step past due; false: runs without.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[RunSummary]:
    """Runs matching every given filter, newest first."""
    flt = RunFilter(client=client, playbook=playbook, assignee=assignee,
                    status=status.value if status else None, overdue=overdue,
                    limit=limit, offset=offset)
    now = ctx.clock()
    with ctx.sessions() as session:
        return [run_summary(row, now) for row in ctx.runs.search(session, flt)]


@router.get("/{run_id}", response_model=RunDetail, responses=_READ)
def get_run(run_id: RunId, ctx: Hub, _who: Viewer) -> RunDetail:
    """One run with every step (status, assignee, due, evidence, blockers)."""
    with ctx.sessions() as session:
        return run_detail(ctx.runs, ctx.runs.load(session, run_id), ctx.clock())


@router.post("/{run_id}/steps/{step_id}/complete", response_model=RunDetail,
             responses={**_WRITE, 422: _error("Invalid request, or the evidence form's "
                                              "values do not fit (invalid_evidence)")})
def complete_step(run_id: RunId, step_id: StepId, ctx: Hub, who: Worker, request: Request,
                  body: Annotated[CompleteRequest | None, Body()] = None) -> RunDetail:
    """Mark a step done (technician), with the step's evidence form in ``fields``.

    A locked step gives 409 naming its blockers; an approval step 409 (approve it); a
    missing or ill-typed evidence field 422 ``invalid_evidence`` listing every problem.
    """
    body = body or CompleteRequest()
    with transaction(ctx.sessions) as session:
        try:
            row = ctx.runs.complete(session, run_id, step_id, by=who.actor,
                                    evidence=body.evidence, note=body.note, values=body.fields)
        except EvidenceInvalid as exc:
            raise evidence_error(exc) from exc
        detail = run_detail(ctx.runs, row, ctx.clock())
    _count_completion(request, detail)
    return detail


def evidence_error(exc: EvidenceInvalid) -> ApiError:
    """422 ``invalid_evidence``: every problem, each with its field (``fields.<id>``)."""
    return ApiError(422, "invalid_evidence", exc.reason, step=exc.step,
                    errors=[{"field": f"fields.{name}", "message": message}
                            for name, message in exc.problems])


def approval_error(exc: ApprovalRefused, who: Principal) -> ApiError:
    """403 ``forbidden``: the team role needed, or the four-eyes rule, named."""
    hint = (f" (a token or dashboard user acts as the team member of the same name: "
            f"{who.kind} '{who.name}')" if exc.why == "role" else "")
    return ApiError(403, "forbidden", exc.reason + hint, why=exc.why,
                    needed_team_role=exc.role)


_SIGN: Responses = {**_WRITE, 403: _error("Role too low, not holding the approving team "
                                          "role, or four-eyes"),
                    409: _error("Not an approval step, locked, or finished")}


@router.post("/{run_id}/steps/{step_id}/approve", response_model=RunDetail, responses=_SIGN)
def approve_step(run_id: RunId, step_id: StepId, ctx: Hub, who: Approver, request: Request,
                 body: Annotated[ApproveRequest | None, Body()] = None) -> RunDetail:
    """Sign off an approval step. The caller acts as the team member of the same name and
    must hold the step's approving role for the run's client; with four-eyes, not have
    done any of the steps it approves (403 says which rule refused)."""
    body = body or ApproveRequest()
    with transaction(ctx.sessions) as session:
        try:
            row = ctx.runs.approve(session, run_id, step_id, by=who.actor, member=who.name,
                                   comment=body.comment)
        except ApprovalRefused as exc:
            raise approval_error(exc, who) from exc
        detail = run_detail(ctx.runs, row, ctx.clock())
    _count_completion(request, detail)
    return detail


@router.post("/{run_id}/steps/{step_id}/reject", response_model=RunDetail, responses=_SIGN)
def reject_step(run_id: RunId, step_id: StepId, body: RejectRequest, ctx: Hub,
                who: Approver) -> RunDetail:
    """Reject an approval step with a reason, reopening the named approved steps (default:
    all it may reopen); the same people may reject as may approve."""
    with transaction(ctx.sessions) as session:
        try:
            row = ctx.runs.reject(session, run_id, step_id, by=who.actor, member=who.name,
                                  reason=body.reason, reopen=body.reopen or None)
        except ApprovalRefused as exc:
            raise approval_error(exc, who) from exc
        return run_detail(ctx.runs, row, ctx.clock())


@router.post("/{run_id}/steps/{step_id}/skip", response_model=RunDetail, responses=_WRITE)
def skip_step(run_id: RunId, step_id: StepId, body: SkipRequest, ctx: Hub, who: Worker,
              request: Request) -> RunDetail:
    """Skip a step with a reason (technician; protected steps need a manager)."""
    manager = at_least(who.role, Role.MANAGER)
    with transaction(ctx.sessions) as session:
        if not manager:
            playbook = ctx.runs.playbook_for(ctx.runs.load(session, run_id))
            if any(s.id == step_id and s.skippable == "manager" for s in playbook.steps):
                raise ApiError(403, "forbidden",
                               f"step '{step_id}' is protected: skipping it needs the "
                               f"'manager' role or higher; token '{who.name}' has "
                               f"'{who.role.value}'", needed_role=Role.MANAGER.value)
        row = ctx.runs.skip(session, run_id, step_id, by=who.actor, reason=body.reason,
                            may_skip_protected=manager)
        detail = run_detail(ctx.runs, row, ctx.clock())
    _count_completion(request, detail)
    return detail


@router.post("/{run_id}/steps/{step_id}/assign", response_model=RunDetail, responses=_WRITE)
def assign_step(run_id: RunId, step_id: StepId, body: AssignRequest, ctx: Hub,
                who: Worker) -> RunDetail:
    """Give an unfinished step to a team member (technician)."""
    with transaction(ctx.sessions) as session:
        row = ctx.runs.reassign(session, run_id, step_id, assignee=body.assignee, by=who.actor)
        return run_detail(ctx.runs, row, ctx.clock())


@router.post("/{run_id}/comments", response_model=RunDetail, responses=_WRITE)
def add_comment(run_id: RunId, body: CommentRequest, ctx: Hub, who: Worker) -> RunDetail:
    """Comment on a run (technician); audited and written back to its ticket."""
    with transaction(ctx.sessions) as session:
        row = ctx.runs.comment(session, run_id, by=who.actor, text=body.text)
        return run_detail(ctx.runs, row, ctx.clock())


@router.post("/{run_id}/cancel", response_model=RunDetail, responses=_WRITE)
def cancel_run(run_id: RunId, ctx: Hub, who: Canceller, request: Request,
               body: Annotated[CancelRequest | None, Body()] = None) -> RunDetail:
    """Cancel an active run (manager)."""
    body = body or CancelRequest()
    with transaction(ctx.sessions) as session:
        row = ctx.runs.cancel(session, run_id, by=who.actor, reason=body.reason.strip())
        detail = run_detail(ctx.runs, row, ctx.clock())
    _metrics(request).runs_cancelled.labels(detail.playbook).inc()
    return detail


@router.get("/{run_id}/audit", response_model=list[AuditEntryOut], responses=_READ)
def run_audit(run_id: RunId, ctx: Hub, _who: Viewer) -> list[AuditEntryOut]:
    """The audit entries of one run, oldest first."""
    with ctx.sessions() as session:
        ctx.runs.load(session, run_id)  # 404 for an unknown run, not an empty list
        rows = session.execute(select(AuditEntry).where(AuditEntry.run_id == run_id)
                               .order_by(AuditEntry.id)).scalars().all()
        return [audit_entry(row) for row in rows]

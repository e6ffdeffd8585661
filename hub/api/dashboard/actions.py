"""Dashboard forms that change runs: complete, approve, reject, skip, assign, comment, cancel.

Each goes through the same run service, role checks, request models and error messages
as the REST API (``hub/api/runs.py``): a locked step is refused with the StepLocked
reason, a viewer with the API's 403 message. Every form carries the CSRF token; a
success redirects back (303), a refusal re-renders the page with the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Hub, Principal, check_role
from hub.api.dashboard.runpage import run_view
from hub.api.dashboard.signin import (
    REFUSALS,
    STALE_FORM,
    csrf_ok,
    form_and_viewer,
    refusal,
    safe_next,
)
from hub.api.dashboard.work import work_view
from hub.api.errors import ApiError
from hub.api.metrics import ApiMetrics
from hub.api.params import RunId, StepId
from hub.api.runs import approval_error, evidence_error
from hub.api.schemas import (
    ApproveRequest,
    AssignRequest,
    CancelRequest,
    CommentRequest,
    CompleteRequest,
    RejectRequest,
    SkipRequest,
)
from hub.core.checklists.approvals import ApprovalRefused
from hub.core.checklists.evidence import EvidenceInvalid
from hub.core.states import RunStatus
from hub.services.context import HubContext
from hub.services.tokens import Role, at_least
from hub.store.db import transaction
from hub.store.models import Run

router = APIRouter(include_in_schema=False)

Change = Callable[[Session, Principal], Run]
M = TypeVar("M", bound=BaseModel)


class Refused(Exception):
    """A dashboard action refused with a message and an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def _body(model: type[M], fields: dict[str, Any]) -> M:
    """The API's request model for the form's fields (same limits, same messages)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}"
                    for e in exc.errors()]
        raise Refused(422, "; ".join(problems)) from exc


def _blank_is_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


async def _act(request: Request, ctx: HubContext, run_id: int, needed: Role, what: str,
               change: Callable[[dict[str, str], Principal], Change], anchor: str = "") -> Response:
    """Read the form, check CSRF and role, apply the change in one transaction."""
    form, who = await form_and_viewer(request, ctx)
    if isinstance(who, Response):
        return who
    target = safe_next(form.get("next") or f"/runs/{run_id}")

    def work() -> Response:
        try:
            if not csrf_ok(request, form.get("csrf")):
                raise Refused(403, STALE_FORM)
            try:
                check_role(who, needed, what)
                do = change(form, who)
                with transaction(ctx.sessions) as session:
                    row = do(session, who)
                    status = row.status
                    playbook = row.playbook_id
            except REFUSALS as exc:
                raise Refused(*refusal(exc)) from exc
        except Refused as refused:
            if target.startswith("/work"):
                return work_view(request, ctx, who, request.query_params.get("member"),
                                 error=refused.message, status=refused.status)
            return run_view(request, ctx, who, run_id, error=refused.message,
                            status=refused.status)
        metrics: ApiMetrics = request.app.state.metrics
        if status == RunStatus.COMPLETED.value and what != "cancelling a run":
            metrics.runs_completed.labels(playbook).inc()
        elif status == RunStatus.CANCELLED.value:
            metrics.runs_cancelled.labels(playbook).inc()
        return RedirectResponse(target + anchor, status_code=303)

    return await run_in_threadpool(work)


@router.post("/runs/{run_id}/steps/{step_id}/complete")
async def complete(run_id: RunId, step_id: StepId, request: Request, ctx: Hub) -> Response:
    """Mark a step done with optional evidence and note (technician)."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(CompleteRequest, {"evidence": _blank_is_none(form.get("evidence")),
                                       "note": _blank_is_none(form.get("note")),
                                       "fields": _prefixed(form, "f.")})

        def do(session: Session, _who: Principal) -> Run:
            try:
                return ctx.runs.complete(session, run_id, step_id, by=who.actor,
                                         evidence=body.evidence, note=body.note,
                                         values=body.fields)
            except EvidenceInvalid as exc:
                raise evidence_error(exc) from exc

        return do

    return await _act(request, ctx, run_id, Role.TECHNICIAN, "working on a run's steps",
                      change)


def _prefixed(form: dict[str, str], prefix: str) -> dict[str, str]:
    """The form's ``<prefix><name>`` fields as ``{name: value}`` (blank ones left out, as
    an unticked box or an empty input sends nothing)."""
    return {key.removeprefix(prefix): value for key, value in form.items()
            if key.startswith(prefix) and value.strip()}


@router.post("/runs/{run_id}/steps/{step_id}/approve")
async def approve(run_id: RunId, step_id: StepId, request: Request, ctx: Hub) -> Response:
    """Sign off an approval step (the approving team role; four-eyes), as the API does."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(ApproveRequest, {"comment": _blank_is_none(form.get("comment"))})

        def do(session: Session, _who: Principal) -> Run:
            try:
                return ctx.runs.approve(session, run_id, step_id, by=who.actor,
                                        member=who.name, comment=body.comment)
            except ApprovalRefused as exc:
                raise approval_error(exc, who) from exc

        return do

    return await _act(request, ctx, run_id, Role.TECHNICIAN, "signing off a step", change)


@router.post("/runs/{run_id}/steps/{step_id}/reject")
async def reject(run_id: RunId, step_id: StepId, request: Request, ctx: Hub) -> Response:
    """Reject an approval step with a reason, reopening the ticked steps (default: all)."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(RejectRequest, {"reason": form.get("reason", ""),
                                     "reopen": sorted(_prefixed(form, "reopen."))})

        def do(session: Session, _who: Principal) -> Run:
            try:
                return ctx.runs.reject(session, run_id, step_id, by=who.actor,
                                       member=who.name, reason=body.reason,
                                       reopen=body.reopen or None)
            except ApprovalRefused as exc:
                raise approval_error(exc, who) from exc

        return do

    return await _act(request, ctx, run_id, Role.TECHNICIAN, "signing off a step", change)


@router.post("/runs/{run_id}/steps/{step_id}/skip")
async def skip(run_id: RunId, step_id: StepId, request: Request, ctx: Hub) -> Response:
    """Skip a step with a reason (technician; protected steps need a manager)."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(SkipRequest, {"reason": form.get("reason", "")})
        manager = at_least(who.role, Role.MANAGER)

        def do(session: Session, _who: Principal) -> Run:
            if not manager:
                playbook = ctx.runs.playbook_for(ctx.runs.load(session, run_id))
                if any(s.id == step_id and s.skippable == "manager" for s in playbook.steps):
                    raise ApiError(403, "forbidden",
                                   f"step '{step_id}' is protected: skipping it needs the "
                                   f"'manager' role or higher; {who.kind} '{who.name}' has "
                                   f"'{who.role.value}'", needed_role=Role.MANAGER.value)
            return ctx.runs.skip(session, run_id, step_id, by=who.actor, reason=body.reason,
                                 may_skip_protected=manager)

        return do

    return await _act(request, ctx, run_id, Role.TECHNICIAN, "working on a run's steps",
                      change)


@router.post("/runs/{run_id}/steps/{step_id}/assign")
async def assign(run_id: RunId, step_id: StepId, request: Request, ctx: Hub) -> Response:
    """Give an unfinished step to a team member, or nobody (technician)."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(AssignRequest, {"assignee": _blank_is_none(form.get("assignee"))})
        return lambda session, _who: ctx.runs.reassign(
            session, run_id, step_id, assignee=body.assignee, by=who.actor)

    return await _act(request, ctx, run_id, Role.TECHNICIAN, "working on a run's steps",
                      change)


@router.post("/runs/{run_id}/comment")
async def comment(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """Comment on a run (technician); audited and written back to its ticket."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(CommentRequest, {"text": form.get("text", "")})
        return lambda session, _who: ctx.runs.comment(session, run_id, by=who.actor,
                                                      text=body.text)

    return await _act(request, ctx, run_id, Role.TECHNICIAN, "working on a run's steps",
                      change, "#audit")


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """Cancel an active run (manager)."""

    def change(form: dict[str, str], who: Principal) -> Change:
        body = _body(CancelRequest, {"reason": form.get("reason", "")})
        return lambda session, _who: ctx.runs.cancel(session, run_id, by=who.actor,
                                                     reason=body.reason.strip())

    return await _act(request, ctx, run_id, Role.MANAGER, "cancelling a run", change)

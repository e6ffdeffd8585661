"""Sign-offs: approving or rejecting an approval step (pure, like the rest of the engine).

An approval step (``approval:`` in the playbook) opens like any other once the steps it
waits for are finished. Only someone holding its team role for the run's client may act
on it; with ``four_eyes`` (the default) not anyone who did or skipped one of the steps it
approves. Approving completes the step; rejecting needs a reason and reopens named
approved steps (their result is cleared on the step, kept in the audit trail), which
locks the approval again until they are finished anew.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from hub.core.checklists.engine import (
    Fact,
    NoteIntent,
    Outcome,
    RunState,
    StepState,
    finish_transition,
    workable,
)
from hub.core.checklists.schema import Playbook, Step
from hub.core.states import StepStatus
from hub.errors import NotAllowed


class ApprovalRefused(NotAllowed):
    """This person may not approve or reject this step (HTTP 403).

    Attributes:
        why: ``role`` (they do not hold the approving role for the client) or
            ``four_eyes`` (they did one of the approved steps).
        role: the role that approves.
    """

    def __init__(self, reason: str, *, why: str, role: str) -> None:
        self.why = why
        self.role = role
        super().__init__(reason)


def approval_of(playbook: Playbook, step_id: str) -> Step:
    """The definition of an approval step.

    Raises:
        NotAllowed: the step is not an approval step.
    """
    definition = next((s for s in playbook.steps if s.id == step_id), None)
    if definition is None or definition.approval is None:
        raise NotAllowed(f"step '{step_id}' is not an approval step; complete it instead")
    return definition


def check_approver(playbook: Playbook, run: RunState, step_id: str, *, by: str,
                   roles: Collection[str]) -> None:
    """Refuse unless ``by`` (holding team ``roles`` for the run's client) may sign off.

    Raises:
        ApprovalRefused: the role is missing, or four-eyes forbids it.
        NotAllowed: not an approval step.
    """
    definition = approval_of(playbook, step_id)
    assert definition.approval is not None and definition.approver_role is not None
    role = definition.approver_role
    if role not in roles:
        raise ApprovalRefused(
            f"step '{step_id}' is approved by the '{role}' role (config/team.yaml) for "
            f"client {run.client_id}; {by} does not hold it", why="role", role=role)
    if definition.approval.four_eyes:
        steps = {s.step_id: s for s in run.steps}
        own = [sid for sid in playbook.approved_by(step_id)
               if sid in steps and steps[sid].done_by == by]
        if own:
            raise ApprovalRefused(
                f"four-eyes: {by} did {', '.join(own)}, which step '{step_id}' approves; "
                f"someone else holding '{role}' must approve it", why="four_eyes", role=role)


def waiting_for(playbook: Playbook, run: RunState, step_id: str, *, by: str,
                roles: Collection[str]) -> bool:
    """Whether this open approval step waits for ``by`` (they may sign it off now)."""
    try:
        check_approver(playbook, run, step_id, by=by, roles=roles)
    except NotAllowed:
        return False
    return run.step(step_id).status is StepStatus.OPEN


def approve_step(playbook: Playbook, run: RunState, step_id: str, *, by: str,
                 roles: Collection[str], now: datetime, comment: str | None = None) -> Outcome:
    """Sign off an open approval step: it is done, by the approver.

    Raises:
        ApprovalRefused: the approver lacks the role, or did an approved step.
        StepLocked: the steps it approves are not all finished.
        NotAllowed: not an approval step, or the run/step is finished.
    """
    step = workable(playbook, run, step_id)
    check_approver(playbook, run, step_id, by=by, roles=roles)
    approves = playbook.approved_by(step_id)
    done = replace(step, status=StepStatus.DONE, done_by=by, done_at=now, evidence=comment,
                   note=None, skip_reason=None)
    data: dict[str, object] = {"approves": approves}
    if comment:
        data["comment"] = comment
    fact = Fact("step_approved", by, now, step_id, data=data)
    steps = tuple(done if s.step_id == step_id else s for s in run.steps)
    return finish_transition(playbook, run, steps, [fact],
                             [NoteIntent("step_approved", step_id, comment)], now)


def reject_step(playbook: Playbook, run: RunState, step_id: str, *, by: str,
                roles: Collection[str], reason: str, reopen: Sequence[str] | None,
                now: datetime) -> Outcome:
    """Reject an open approval step: reopen named approved steps, with a reason.

    Args:
        reopen: the steps to reopen (default: every finished step the approval may reopen).

    Raises:
        ApprovalRefused: the person lacks the role, or did an approved step.
        NotAllowed: no reason, a step that may not be reopened or is not finished, or
            nothing left to reopen.
    """
    step = workable(playbook, run, step_id)
    check_approver(playbook, run, step_id, by=by, roles=roles)
    why = (reason or "").strip()
    if not why:
        raise NotAllowed("a reason is required to reject a sign-off")
    allowed = playbook.reopenable(step_id)
    states = {s.step_id: s for s in run.steps}
    finished = [sid for sid in allowed
                if states[sid].status in (StepStatus.DONE, StepStatus.SKIPPED)]
    chosen = list(dict.fromkeys(reopen)) if reopen else finished
    for sid in chosen:
        if sid not in allowed:
            raise NotAllowed(f"step '{sid}' cannot be reopened by rejecting '{step_id}' "
                             f"(it may reopen: {', '.join(allowed)})")
        if sid not in finished:
            raise NotAllowed(f"step '{sid}' is {states[sid].status}; only a done or skipped "
                             f"step can be reopened")
    if not chosen:
        raise NotAllowed(f"none of the steps '{step_id}' approves is finished; nothing to "
                         f"reopen")
    facts = [Fact("step_rejected", by, now, step_id,
                  data={"reason": why, "reopened": chosen})]
    facts += [Fact("step_reopened", by, now, sid, data={"reason": why, "by_rejection_of":
                                                         step_id}) for sid in chosen]
    rejected = replace(step, note=f"Rejected by {by}: {why}")
    steps = tuple(_reopened(s) if s.step_id in chosen else
                  rejected if s.step_id == step_id else s for s in run.steps)
    return finish_transition(playbook, run, steps, facts,
                             [NoteIntent("step_rejected", step_id, why)], now)


def _reopened(step: StepState) -> StepState:
    return replace(step, status=StepStatus.LOCKED, done_by=None, done_at=None, evidence=None,
                   note=None, skip_reason=None)

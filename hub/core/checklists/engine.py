"""The checklist engine: pure transitions over run state (no clock, no database, no HTTP).

Every transition returns an :class:`Outcome` — the new run, the audit facts and the
notes to send — which the caller saves in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from hub.core.checklists.counting import count_steps
from hub.core.checklists.evidence import check_values, summarise
from hub.core.checklists.schema import Playbook, Step
from hub.core.conditions import evaluate
from hub.core.states import RunStatus, StepStatus
from hub.errors import NotAllowed, NotFound, StepLocked

FINISHED = frozenset({StepStatus.DONE, StepStatus.SKIPPED, StepStatus.NOT_APPLICABLE})


@dataclass(frozen=True)
class TicketRef:
    """The PSA ticket a run came from: connector instance name and ticket id."""

    source: str
    id: str


@dataclass(frozen=True)
class StepState:
    """One step of a live run."""

    step_id: str
    title: str
    status: StepStatus
    position: int
    assignee: str | None = None
    due_at: datetime | None = None
    done_by: str | None = None
    done_at: datetime | None = None
    evidence: str | None = None
    note: str | None = None
    skip_reason: str | None = None

    @property
    def finished(self) -> bool:
        """Done, skipped or not applicable."""
        return self.status in FINISHED

    def is_overdue(self, now: datetime) -> bool:
        """Past its due time and not finished (derived, never stored)."""
        return self.due_at is not None and not self.finished and self.due_at < now


@dataclass(frozen=True)
class RunState:
    """A live checklist: one launch of one playbook version for one client."""

    id: int
    playbook_id: str
    playbook_version: int
    client_id: str
    status: RunStatus
    inputs: Mapping[str, Any]
    steps: tuple[StepState, ...]
    launched_at: datetime
    launched_by: str
    ticket: TicketRef | None = None
    completed_at: datetime | None = None
    cancel_reason: str | None = None

    def step(self, step_id: str) -> StepState:
        """The step with this id.

        Raises:
            NotFound: no such step in this run.
        """
        for s in self.steps:
            if s.step_id == step_id:
                return s
        raise NotFound(f"run {self.id} has no step '{step_id}'")

    def overdue(self, now: datetime) -> list[StepState]:
        """Steps past their due time (only an active run has any)."""
        if self.status is not RunStatus.ACTIVE:
            return []
        return [s for s in self.steps if s.is_overdue(now)]

    def progress(self) -> tuple[int, int]:
        """(finished applicable steps, applicable steps): :func:`count_steps`, the one
        count every interface shows."""
        counted = count_steps(s.status for s in self.steps)
        return counted.done, counted.applicable


@dataclass(frozen=True)
class Fact:
    """One audit fact: what happened, who did it, to which step."""

    action: str
    actor: str
    at: datetime
    step_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoteIntent:
    """A note the originating ticket should receive (rendered and delivered later)."""

    # launched | step_done | step_skipped | completed | cancelled | overdue | comment |
    # step_approved | step_rejected
    kind: str
    step_id: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of a transition: the new run, audit facts, notes to send."""

    run: RunState
    facts: tuple[Fact, ...]
    notes: tuple[NoteIntent, ...] = ()


Assign = Callable[[Step], str | None]
DueAt = Callable[[str], datetime]


def launch(
    playbook: Playbook,
    *,
    run_id: int,
    client_id: str,
    inputs: Mapping[str, Any],
    by: str,
    now: datetime,
    assign: Assign,
    due: DueAt,
    ticket: TicketRef | None = None,
) -> Outcome:
    """Start a run: decide applicability, assignees, due dates and which steps are open.

    Args:
        playbook: the template (its version is pinned in the run).
        inputs: launch inputs, already checked with ``coerce_inputs``.
        assign: resolves a step's technician (named assignee or role → member).
        due: turns a relative due rule into an absolute UTC time from launch.
    """
    steps: list[StepState] = []
    assignments: dict[str, str] = {}
    for pos, step in enumerate(playbook.steps):
        cond = step.condition()
        applicable = cond is None or evaluate(cond, dict(inputs))
        assignee = (step.assignee or assign(step)) if applicable else None
        if assignee:
            assignments[step.id] = assignee
        steps.append(
            StepState(
                step_id=step.id,
                title=step.title,
                status=StepStatus.LOCKED if applicable else StepStatus.NOT_APPLICABLE,
                position=pos,
                assignee=assignee,
                due_at=due(step.due) if (applicable and step.due) else None,
            )
        )
    run = RunState(
        id=run_id,
        playbook_id=playbook.id,
        playbook_version=playbook.version,
        client_id=client_id,
        status=RunStatus.ACTIVE,
        inputs=dict(inputs),
        steps=_unlock(playbook, tuple(steps)),
        launched_at=now,
        launched_by=by,
        ticket=ticket,
    )
    not_applicable = [s.step_id for s in steps if s.status is StepStatus.NOT_APPLICABLE]
    facts = [
        Fact(
            "launched",
            by,
            now,
            data={
                "playbook": playbook.id,
                "version": playbook.version,
                "client": client_id,
                "inputs": dict(inputs),
                "ticket": {"source": ticket.source, "id": ticket.id} if ticket else None,
                "not_applicable": not_applicable,
            },
        )
    ]
    if assignments:
        facts.append(Fact("assigned", by, now, data={"assignees": assignments}))
    outcome = Outcome(run, tuple(facts), (NoteIntent("launched"),))
    return _maybe_complete(outcome, playbook, now)


def _satisfaction(playbook: Playbook, steps: tuple[StepState, ...]) -> Callable[[str], bool]:
    """Whether a step no longer holds up the steps after it.

    Done and skipped steps are satisfied. A not-applicable step is satisfied only once
    its own prerequisites are, so it never lets a later step jump the queue (strict
    order ``A → B(n/a) → C``: C waits for A).
    """
    states = {s.step_id: s for s in steps}
    memo: dict[str, bool] = {}

    def satisfied(step_id: str) -> bool:
        if step_id not in memo:
            status = states[step_id].status
            if status in (StepStatus.DONE, StepStatus.SKIPPED):
                memo[step_id] = True
            elif status is StepStatus.NOT_APPLICABLE:
                memo[step_id] = all(satisfied(d) for d in playbook.prerequisites(step_id))
            else:
                memo[step_id] = False
        return memo[step_id]

    return satisfied


def blockers(playbook: Playbook, run: RunState, step_id: str) -> list[str]:
    """The applicable steps that must still be finished before ``step_id`` can be worked.

    A not-applicable prerequisite is looked through to the steps it waits for.
    """
    satisfied = _satisfaction(playbook, run.steps)
    states = {s.step_id: s for s in run.steps}
    out: list[str] = []

    def collect(sid: str) -> None:
        for dep in playbook.prerequisites(sid):
            if satisfied(dep) or dep in out:
                continue
            if states[dep].status is StepStatus.NOT_APPLICABLE:
                collect(dep)
            else:
                out.append(dep)

    collect(step_id)
    return out


def frontier(playbook: Playbook, run: RunState, step_id: str) -> list[str]:
    """The open frontier of a locked step: the unfinished steps, among everything it waits
    for (directly or through other locked steps), that can be worked now — what someone
    has to do first, since a direct blocker may itself be locked."""
    seen: list[str] = []
    todo = blockers(playbook, run, step_id)
    while todo:
        sid = todo.pop(0)
        if sid in seen:
            continue
        seen.append(sid)
        todo += blockers(playbook, run, sid)
    return [sid for sid in seen if not blockers(playbook, run, sid)]


def complete_step(
    playbook: Playbook,
    run: RunState,
    step_id: str,
    *,
    by: str,
    now: datetime,
    evidence: str | None = None,
    note: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> Outcome:
    """Mark an open step done.

    Args:
        values: what a person entered in the step's evidence form; checked against its
            ``evidence_fields`` and kept in the ``step_done`` fact (``fields``) and, as a
            labelled line, in the step's evidence. ``None`` means an automatic tick (a
            mapping rule), whose event is the evidence: the form is not asked for.

    Raises:
        StepLocked: prerequisites are not finished (``blockers`` names them).
        NotAllowed: the run is not active, the step is already finished, or it is an
            approval (approve or reject it instead).
        EvidenceInvalid: the values do not fit the step's evidence form.
        NotFound: no such step.
    """
    step = _workable(playbook, run, step_id, verb="complete")
    definition = _definition(playbook, step_id)
    if definition is not None and definition.approval is not None:
        raise NotAllowed(f"step '{step_id}' is a sign-off: it is completed by approving it "
                         f"(someone holding the '{definition.approver_role}' role), not by "
                         f"marking it done")
    form = definition.evidence_fields if definition is not None else []
    clean = check_values(step_id, form, values) if values is not None else {}
    text = _joined(evidence, summarise(form, clean))
    done = replace(step, status=StepStatus.DONE, done_by=by, done_at=now,
                   evidence=text, note=note)
    fact = Fact("step_done", by, now, step_id,
                data=_compact(evidence=evidence, note=note, fields=clean or None))
    return _after_step(playbook, run, done, fact, NoteIntent("step_done", step_id), now)


def _definition(playbook: Playbook, step_id: str) -> Step | None:
    return next((s for s in playbook.steps if s.id == step_id), None)


def _joined(*parts: str | None) -> str | None:
    text = "\n".join(p for p in parts if p)
    return text or None


def skip_step(
    playbook: Playbook,
    run: RunState,
    step_id: str,
    *,
    by: str,
    reason: str,
    now: datetime,
    may_skip_protected: bool = False,
) -> Outcome:
    """Skip an open step with a reason, where the playbook allows it.

    Raises:
        NotAllowed: the step may never be skipped, is protected and the caller may not
            skip protected steps, has no reason, or is already finished.
        StepLocked: prerequisites are not finished.
    """
    definition = playbook.step(step_id) if step_id in {s.id for s in playbook.steps} else None
    if definition is not None and definition.skippable is False:
        raise NotAllowed(f"step '{step_id}' can never be skipped")
    if definition is not None and definition.skippable == "manager" and not may_skip_protected:
        raise NotAllowed(f"step '{step_id}' is protected: only a manager or admin may skip it")
    if not reason or not reason.strip():
        raise NotAllowed("a reason is required to skip a step")
    step = _workable(playbook, run, step_id, verb="skip")
    skipped = replace(step, status=StepStatus.SKIPPED, done_by=by, done_at=now,
                      skip_reason=reason.strip())
    fact = Fact("step_skipped", by, now, step_id, data={"reason": reason.strip()})
    return _after_step(playbook, run, skipped, fact, NoteIntent("step_skipped", step_id), now)


def cancel_run(run: RunState, *, by: str, reason: str, now: datetime) -> Outcome:
    """Cancel an active run.

    Raises:
        NotAllowed: the run is already completed or cancelled.
    """
    if run.status is not RunStatus.ACTIVE:
        raise NotAllowed(f"run {run.id} is {run.status}; only active runs can be cancelled")
    new = replace(run, status=RunStatus.CANCELLED, completed_at=now,
                  cancel_reason=reason or None)
    fact = Fact("cancelled", by, now, data={"reason": reason} if reason else {})
    return Outcome(new, (fact,), (NoteIntent("cancelled", text=reason or None),))


def comment(run: RunState, *, by: str, text: str, now: datetime) -> Outcome:
    """Record a comment on a run (audited and written back to its ticket)."""
    fact = Fact("commented", by, now, data={"text": text})
    return Outcome(run, (fact,), (NoteIntent("comment", text=text),))


def reassign(run: RunState, step_id: str, *, assignee: str | None, by: str,
             now: datetime) -> Outcome:
    """Give a step to another technician (or nobody)."""
    if run.status is not RunStatus.ACTIVE:
        raise NotAllowed(f"run {run.id} is {run.status}; its steps can no longer change")
    step = run.step(step_id)
    if step.finished:
        raise NotAllowed(f"step '{step_id}' is already {step.status}")
    new_steps = tuple(replace(s, assignee=assignee) if s.step_id == step_id else s
                      for s in run.steps)
    fact = Fact("assigned", by, now, step_id, data={"assignee": assignee})
    return Outcome(replace(run, steps=new_steps), (fact,))


def _workable(playbook: Playbook, run: RunState, step_id: str, *, verb: str) -> StepState:
    if run.status is not RunStatus.ACTIVE:
        raise NotAllowed(f"run {run.id} is {run.status}; its steps can no longer change")
    step = run.step(step_id)
    if step.status is StepStatus.NOT_APPLICABLE:
        raise NotAllowed(f"step '{step_id}' does not apply to this run")
    if step.status in (StepStatus.DONE, StepStatus.SKIPPED):
        raise NotAllowed(f"step '{step_id}' is already {step.status}")
    waiting = blockers(playbook, run, step_id)
    if waiting:
        titles = {s.step_id: s.title for s in run.steps}
        raise StepLocked(step_id, [f"{w} ({titles[w]})" for w in waiting],
                         frontier=[f"{w} ({titles[w]})"
                                   for w in frontier(playbook, run, step_id)])
    return step


def workable(playbook: Playbook, run: RunState, step_id: str) -> StepState:
    """The step, if it can be worked now.

    Raises:
        NotAllowed: the run is not active, or the step is finished or not applicable.
        StepLocked: its prerequisites are not finished.
    """
    return _workable(playbook, run, step_id, verb="work on")


def _after_step(playbook: Playbook, run: RunState, changed: StepState, fact: Fact,
                note: NoteIntent, now: datetime) -> Outcome:
    steps = tuple(changed if s.step_id == changed.step_id else s for s in run.steps)
    return finish_transition(playbook, run, steps, [fact], [note], now)


def finish_transition(playbook: Playbook, run: RunState, steps: tuple[StepState, ...],
                      facts: Sequence[Fact], notes: Sequence[NoteIntent],
                      now: datetime) -> Outcome:
    """The outcome of changing some steps: locks recomputed, approvals that opened
    requested, and the run completed when every step is finished."""
    new = replace(run, steps=_unlock(playbook, steps))
    opened = approvals_opened(playbook, run, new, by=facts[-1].actor, now=now)
    return _maybe_complete(Outcome(new, (*facts, *opened), tuple(notes)), playbook, now)


def approvals_opened(playbook: Playbook, before: RunState, after: RunState, *, by: str,
                     now: datetime) -> list[Fact]:
    """An ``approval_requested`` fact for each approval step this change opened (the hook
    the run service hands to notifications)."""
    was = {s.step_id: s.status for s in before.steps}
    facts: list[Fact] = []
    for s in after.steps:
        if s.status is not StepStatus.OPEN or was.get(s.step_id) is StepStatus.OPEN:
            continue
        definition = _definition(playbook, s.step_id)
        if definition is None or definition.approval is None:
            continue
        facts.append(Fact("approval_requested", by, now, s.step_id, data={
            "role": definition.approver_role, "approves": playbook.approved_by(s.step_id),
            "four_eyes": definition.approval.four_eyes}))
    return facts


def _unlock(playbook: Playbook, steps: tuple[StepState, ...]) -> tuple[StepState, ...]:
    """Recompute locked/open for unfinished steps from their prerequisites."""
    satisfied = _satisfaction(playbook, steps)
    out: list[StepState] = []
    for s in steps:
        if s.status in (StepStatus.LOCKED, StepStatus.OPEN):
            ready = all(satisfied(d) for d in playbook.prerequisites(s.step_id))
            status = StepStatus.OPEN if ready else StepStatus.LOCKED
            s = s if s.status is status else replace(s, status=status)
        out.append(s)
    return tuple(out)


def _maybe_complete(outcome: Outcome, playbook: Playbook, now: datetime) -> Outcome:
    run = outcome.run
    if run.status is not RunStatus.ACTIVE or not all(s.finished for s in run.steps):
        return outcome
    done, total = run.progress()
    completed = replace(run, status=RunStatus.COMPLETED, completed_at=now)
    # the actor whose transition finished the last step completed the run
    actor = outcome.facts[-1].actor if outcome.facts else run.launched_by
    fact = Fact("completed", actor, now, data={"steps_finished": done, "steps": total})
    return Outcome(completed, (*outcome.facts, fact),
                   (*outcome.notes, NoteIntent("completed")))


def _compact(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}

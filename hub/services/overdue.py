"""The clock's facts about steps: due soon, overdue, escalated — each once per step, with its
audit fact, its ticket note (overdue) and its notifications, in one transaction."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from hub.core.checklists.engine import Fact, NoteIntent, Outcome
from hub.core.checklists.escalation import Escalation, span
from hub.core.checklists.schema import Playbook
from hub.core.states import RunStatus, StepStatus
from hub.services.context import HubContext
from hub.services.notes import track_new_notes
from hub.services.notifications import Notifier, notify
from hub.services.runs import to_state
from hub.store import audit
from hub.store.db import transaction
from hub.store.models import PlaybookVersion, Run, RunStep

log = structlog.get_logger()

UNFINISHED = (StepStatus.OPEN.value, StepStatus.LOCKED.value)


def _late_steps(session: Session, *conditions: ColumnElement[bool],
                limit: int) -> list[RunStep]:
    return list(session.execute(
        select(RunStep).join(Run, Run.id == RunStep.run_id)
        .where(Run.status == RunStatus.ACTIVE, RunStep.status.in_(UNFINISHED), *conditions)
        .order_by(RunStep.due_at).limit(limit).with_for_update(of=RunStep)
    ).scalars().all())


def find_overdue_steps(ctx: HubContext, *, limit: int = 500) -> list[int]:
    """Mark newly overdue steps (audit fact, ticket note, notifications), then remind the
    steps due soon and escalate the long-overdue ones; returns the new ticket note ids."""
    now = ctx.clock()
    notifier = Notifier(ctx.settings, ctx.team)
    found: list[tuple[int, str]] = []
    with transaction(ctx.sessions) as session:
        steps = _late_steps(session, RunStep.due_at < now, RunStep.overdue_notified_at.is_(None),
                            limit=limit)
        for step in steps:
            step.overdue_notified_at = now
            run = ctx.runs.load(session, step.run_id)
            fact = Fact("overdue", "scheduler", now, step.step_id,
                        data={"due_at": step.due_at.isoformat() if step.due_at else None,
                              "assignee": step.assignee})
            entries = audit.append(session, [fact], run_id=run.id)
            outcome = Outcome(to_state(run), (fact,), (NoteIntent("overdue", step.step_id),))
            ctx.runs.notify(session, run, outcome, entries)
            notify(notifier, session, "overdue", run, step.step_id, now=now)
            found.append((run.id, step.step_id))
        session.flush()
        note_ids = [n.id for n in track_new_notes(session)]  # dispatched after commit
    if found:
        log.info("steps_overdue", count=len(found))
    remind_due_soon(ctx, notifier, limit=limit)
    escalate_overdue(ctx, notifier, limit=limit)
    return note_ids


def remind_due_soon(ctx: HubContext, notifier: Notifier, *, limit: int = 500) -> int:
    """Steps due within team.yaml's ``notifications.due_soon`` (default 1 h) and not yet
    reminded: one ``due_soon`` audit fact and notification each."""
    now = ctx.clock()
    horizon = now + span(ctx.team.notifications.due_soon)
    with transaction(ctx.sessions) as session:
        steps = _late_steps(session, RunStep.due_at >= now, RunStep.due_at < horizon,
                            RunStep.due_soon_notified_at.is_(None),
                            RunStep.overdue_notified_at.is_(None), limit=limit)
        for step in steps:
            step.due_soon_notified_at = now
            fact = Fact("due_soon", "scheduler", now, step.step_id,
                        data={"due_at": step.due_at.isoformat() if step.due_at else None,
                              "assignee": step.assignee})
            audit.append(session, [fact], run_id=step.run_id)
            notify(notifier, session, "due_soon", ctx.runs.load(session, step.run_id),
                   step.step_id, now=now)
    if steps:
        log.info("steps_due_soon", count=len(steps))
    return len(steps)


_ESCALATIONS: dict[str, dict[str, Escalation]] = {}  # by playbook digest: pure, immutable


def _escalations(version: PlaybookVersion) -> dict[str, Escalation]:
    """The escalating steps of a pinned playbook version (parsed once per version)."""
    known = _ESCALATIONS.get(version.digest)
    if known is None:
        playbook = Playbook.model_validate(version.definition)
        known = {s.id: s.escalate for s in playbook.steps if s.escalate is not None}
        _ESCALATIONS[version.digest] = known
    return known


def escalate_overdue(ctx: HubContext, notifier: Notifier, *, limit: int = 500) -> int:
    """Steps overdue by longer than their playbook's ``escalate.after``, not yet escalated:
    reassigned to ``to_role``'s member for the client (when the playbook names one) and
    the ``notify`` recipients told; one ``escalated`` audit fact each."""
    now = ctx.clock()
    done = 0
    with transaction(ctx.sessions) as session:
        versions = session.execute(select(PlaybookVersion).where(PlaybookVersion.id.in_(
            select(Run.playbook_version_id).where(Run.status == RunStatus.ACTIVE)
            .distinct()))).scalars().all()
        for version in versions:
            for step_id, rule in _escalations(version).items():
                steps = _late_steps(
                    session, Run.playbook_version_id == version.id, RunStep.step_id == step_id,
                    RunStep.due_at < now - rule.delay, RunStep.escalated_at.is_(None),
                    limit=limit - done)
                for step in steps:
                    _escalate(ctx, notifier, session, step, rule, now)
                done += len(steps)
                if done >= limit:
                    break
    if done:
        log.info("steps_escalated", count=done)
    return done


def _escalate(ctx: HubContext, notifier: Notifier, session: Session, step: RunStep,
              rule: Escalation, now: datetime) -> None:
    step.escalated_at = now
    run = ctx.runs.load(session, step.run_id)
    previous = step.assignee
    fallback = ctx.team.resolve(rule.to_role, run.client.key) if rule.to_role else None
    late = now - step.due_at if step.due_at else None
    fact = Fact("escalated", "scheduler", now, step.step_id, data={
        "after": str(rule.after), "overdue_by_minutes": int(late.total_seconds() // 60)
        if late else None, "from": previous, "to_role": rule.to_role,
        "to": fallback, "notified": list(rule.notify)})
    audit.append(session, [fact], run_id=run.id)
    if fallback is not None and fallback != previous:
        ctx.runs.reassign(session, run.id, step.step_id, assignee=fallback, by="scheduler")
    if rule.notify:
        hours = f"{late.total_seconds() / 3600:.1f} h" if late else str(rule.after)
        notify(notifier, session, "escalated", run, step.step_id, to=rule.notify, now=now,
               context={"late": hours, "previous": previous,
                        "reassigned_to": fallback if fallback != previous else None})

"""Finding overdue steps: one audit fact and one ticket note per step, the first time only."""

from __future__ import annotations

import structlog
from sqlalchemy import select

from hub.core.checklists.engine import Fact, NoteIntent, Outcome
from hub.core.states import RunStatus, StepStatus
from hub.services.context import HubContext
from hub.services.notes import track_new_notes
from hub.services.runs import to_state
from hub.store import audit
from hub.store.db import transaction
from hub.store.models import Run, RunStep

log = structlog.get_logger()


def find_overdue_steps(ctx: HubContext, *, limit: int = 500) -> list[int]:
    """Mark newly overdue steps (audit fact + ticket note); returns the new note ids."""
    now = ctx.clock()
    found: list[tuple[int, str]] = []
    with transaction(ctx.sessions) as session:
        steps = session.execute(
            select(RunStep).join(Run, Run.id == RunStep.run_id)
            .where(Run.status == RunStatus.ACTIVE,
                   RunStep.status.in_((StepStatus.OPEN.value, StepStatus.LOCKED.value)),
                   RunStep.due_at < now, RunStep.overdue_notified_at.is_(None))
            .order_by(RunStep.due_at).limit(limit).with_for_update(of=RunStep)
        ).scalars().all()
        for step in steps:
            step.overdue_notified_at = now
            run = ctx.runs.load(session, step.run_id)
            fact = Fact("overdue", "scheduler", now, step.step_id,
                        data={"due_at": step.due_at.isoformat() if step.due_at else None,
                              "assignee": step.assignee})
            entries = audit.append(session, [fact], run_id=run.id)
            outcome = Outcome(to_state(run), (fact,), (NoteIntent("overdue", step.step_id),))
            ctx.runs.notify(session, run, outcome, entries)
            found.append((run.id, step.step_id))
        session.flush()
        note_ids = [n.id for n in track_new_notes(session)]  # dispatched after commit
    if found:
        log.info("steps_overdue", count=len(found))
    return note_ids

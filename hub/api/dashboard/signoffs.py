"""Sign-offs on the dashboard: which approval steps wait for a person, and whether the
signed-in person may approve a given one (the run service's rules, asked ahead of time so
the page offers only the forms that will work and says why the others are not there).

The signed-in principal (a dashboard user or an API token) acts as the team member of
config/team.yaml whose id is its name; that member's roles for the run's client decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.auth import Principal
from hub.core.checklists import approvals
from hub.core.checklists.engine import RunState
from hub.core.checklists.schema import Playbook
from hub.core.states import RunStatus, StepStatus
from hub.errors import NotAllowed
from hub.services.context import HubContext
from hub.services.runs import to_state
from hub.services.tokens import Role, at_least
from hub.store.models import Client, PlaybookVersion, Run, RunStep

SIGNOFF_LIMIT = 100


@dataclass(frozen=True)
class SignOff:
    """An open approval step the person may sign off now."""

    run_id: int
    step_id: str
    title: str
    role: str
    due_at: datetime | None
    run_title: str
    client: str
    client_name: str
    approves: tuple[str, ...]


def refusal_for(ctx: HubContext, who: Principal, playbook: Playbook, run: RunState,
                step_id: str) -> str | None:
    """Why ``who`` may not sign off this step now (None: they may)."""
    if not at_least(who.role, Role.TECHNICIAN):
        return (f"signing off a step needs the 'technician' role or higher; {who.kind} "
                f"'{who.name}' has '{who.role.value}'")
    roles = ctx.runs.team_roles(who.name, run.client_id)
    try:
        approvals.check_approver(playbook, run, step_id, by=who.actor, roles=roles)
    except NotAllowed as exc:
        return exc.reason
    return None


def approval_steps(session: Session, ctx: HubContext) -> dict[int, set[str]]:
    """Playbook version id → its approval step ids, for versions active runs use."""
    ids = session.execute(select(Run.playbook_version_id).distinct()
                          .where(Run.status == RunStatus.ACTIVE.value)).scalars().all()
    out: dict[int, set[str]] = {}
    for version_id in ids:
        playbook = ctx.runs.playbook_version(session, version_id)
        steps = {s.id for s in playbook.steps if s.approval is not None}
        if steps:
            out[version_id] = steps
    return out


def waiting_for(ctx: HubContext, who: Principal) -> list[SignOff]:
    """Open approval steps of active runs that ``who`` may sign off, soonest due first."""
    with ctx.sessions() as session:
        by_version = approval_steps(session, ctx)
        names = set().union(*by_version.values()) if by_version else set()
        if not names:
            return []
        stmt = (select(RunStep.run_id, RunStep.step_id, Run.playbook_version_id)
                .join(Run, Run.id == RunStep.run_id)
                .where(Run.status == RunStatus.ACTIVE.value,
                       RunStep.status == StepStatus.OPEN.value,
                       RunStep.step_id.in_(sorted(names)))
                .order_by(RunStep.due_at.is_(None), RunStep.due_at, RunStep.run_id)
                .limit(SIGNOFF_LIMIT))
        found = [(run_id, step_id) for run_id, step_id, version in session.execute(stmt)
                 if step_id in by_version.get(version, ())]
        out: list[SignOff] = []
        for run_id, step_id in found:
            row = ctx.runs.load(session, run_id)
            playbook = ctx.runs.playbook_for(row)
            state = to_state(row)
            if refusal_for(ctx, who, playbook, state, step_id) is not None:
                continue
            out.append(_sign_off(row, playbook, state, step_id))
        return out


def _sign_off(row: Run, playbook: Playbook, state: RunState, step_id: str) -> SignOff:
    step = state.step(step_id)
    role = playbook.step(step_id).approver_role or ""
    client: Client = row.client
    version: PlaybookVersion = row.playbook_version
    return SignOff(run_id=row.id, step_id=step_id, title=step.title, role=role,
                   due_at=step.due_at, run_title=version.title, client=client.key,
                   client_name=client.name or client.key,
                   approves=tuple(playbook.approved_by(step_id)))

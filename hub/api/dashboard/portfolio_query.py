"""The portfolio's SQL: a fixed number of statements, however many runs there are.

1. the clients (id, key, name, tags): small, and tags are a JSON list (filtered here);
2. the candidates: every run the filters select, with its overdue-step count and next
   due date from one ``GROUP BY run_id`` over the unfinished steps (a covering index,
   ``ix_run_steps_open``), as a materialized CTE so the planner never re-runs it per
   run. Sorting, the overdue filter, counts per client and paging are done on these
   narrow rows in Python;
3. the page's runs with playbook title and progress (aggregated for those ids only);
4. the first open step of each run on the page.

Nothing is loaded per run (no N+1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from hub.core.states import RunStatus, StepStatus
from hub.store.models import Client, PlaybookVersion, Run, RunStep

PAGE_SIZE = 100
# a SELECT of any columns (SQLAlchemy 2.1 types a Select by its column types)
AnySelect = Select[*tuple[Any, ...]]
OPEN_STATES = (StepStatus.OPEN.value, StepStatus.LOCKED.value)
FINISHED = (StepStatus.DONE.value, StepStatus.SKIPPED.value)


class Sort(StrEnum):
    """Orders the portfolio offers."""

    DUE = "due"        # the soonest unfinished step first; runs with no due date last
    AGE = "age"        # the oldest launch first
    NEWEST = "newest"  # the newest launch first


class StatusChoice(StrEnum):
    """The status filter: one run status, or every run."""

    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ALL = "all"


@dataclass(frozen=True)
class PortfolioFilter:
    """What the portfolio shows (every field optional but the status)."""

    status: StatusChoice = StatusChoice.ACTIVE
    client: str | None = None
    tag: str | None = None
    playbook: str | None = None
    technician: str | None = None
    overdue: bool = False
    sort: Sort = Sort.DUE
    page: int = 1


@dataclass(frozen=True)
class RunRow:
    """One run on the portfolio."""

    id: int
    playbook_id: str
    title: str
    client: str
    client_name: str
    status: str
    launched_at: datetime
    completed_at: datetime | None
    ticket: str | None
    done: int
    total: int
    late: int
    next_due: datetime | None
    current: str | None = None  # the first open step's title
    holder: str | None = None   # and who has it

    @property
    def percent(self) -> int:
        """Progress as a whole percentage."""
        return round(100 * self.done / self.total) if self.total else 100


@dataclass(frozen=True)
class ClientCount:
    """A client's runs among those the filters select."""

    key: str
    name: str
    runs: int
    late: int


@dataclass
class Portfolio:
    """A page of runs, the number of matching runs, and counts per client."""

    rows: list[RunRow]
    total: int
    clients: list[ClientCount] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # every tag any client carries

    @property
    def late(self) -> int:
        """Runs with an overdue step among those the filters select."""
        return sum(c.late for c in self.clients)


@dataclass(frozen=True)
class ClientInfo:
    """What the portfolio needs of a client."""

    id: int
    key: str
    name: str
    tags: tuple[str, ...]


def _clients(session: Session) -> dict[int, ClientInfo]:
    return {cid: ClientInfo(cid, key, name or key, tuple(tags or ()))
            for cid, key, name, tags in session.execute(
                select(Client.id, Client.key, Client.name, Client.tags))}


def _candidates(session: Session, flt: PortfolioFilter, now: datetime,
                client_ids: list[int] | None) -> list[tuple[int, int, int]]:
    """(run id, client id, overdue steps) of every selected run, in the page's order.

    Only integers come back (sorting happens in SQL), so thousands of candidates cost
    no date parsing in Python.
    """
    unfinished = (
        select(RunStep.run_id.label("run_id"),
               func.sum(case((RunStep.due_at < now, 1), else_=0)).label("late"),
               func.min(RunStep.due_at).label("next_due"))
        .where(RunStep.status.in_(OPEN_STATES))
        .group_by(RunStep.run_id)
        .cte("unfinished")
        .prefix_with("MATERIALIZED", dialect="sqlite")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    active = Run.status == RunStatus.ACTIVE.value
    # only an active run can be late or due; a cancelled run's open steps are not
    late = case((active, func.coalesce(unfinished.c.late, 0)), else_=0)
    next_due = case((active, unfinished.c.next_due), else_=None)
    stmt: AnySelect = (
        select(Run.id, Run.client_id, late)
        .outerjoin(unfinished, unfinished.c.run_id == Run.id)
    )
    if flt.status is not StatusChoice.ALL:
        stmt = stmt.where(Run.status == flt.status.value)
    if client_ids is not None:
        stmt = stmt.where(Run.client_id.in_(client_ids))
    if flt.playbook:
        stmt = stmt.where(Run.playbook_id == flt.playbook)
    if flt.technician:
        # IN, not a correlated EXISTS: SQLite would probe the assignee index per run
        stmt = stmt.where(Run.id.in_(select(RunStep.run_id).where(
            RunStep.assignee == flt.technician, RunStep.status.in_(OPEN_STATES))))
    if flt.sort is Sort.DUE:  # soonest first; runs with nothing due last
        stmt = stmt.order_by(next_due.is_(None), next_due, Run.id)
    elif flt.sort is Sort.AGE:
        stmt = stmt.order_by(Run.launched_at, Run.id)
    else:
        stmt = stmt.order_by(Run.launched_at.desc(), Run.id.desc())
    return [(int(r), int(c), int(x)) for r, c, x in session.execute(stmt)]


def load(session: Session, flt: PortfolioFilter, now: datetime,
         page_size: int = PAGE_SIZE) -> Portfolio:
    """The page of runs the filter selects, with the total and counts per client."""
    clients = _clients(session)
    scope: list[int] | None = None
    if flt.tag:
        scope = [c.id for c in clients.values() if flt.tag in c.tags]
    cands = _candidates(session, flt, now, scope)
    if flt.overdue:
        cands = [c for c in cands if c[2] > 0]
    counts: dict[int, list[int]] = {}
    for c in cands:
        entry = counts.setdefault(c[1], [0, 0])
        entry[0] += 1
        entry[1] += c[2] > 0
    if flt.client:
        wanted = next((c.id for c in clients.values() if c.key == flt.client), None)
        cands = [c for c in cands if c[1] == wanted]
    start = (max(flt.page, 1) - 1) * page_size
    page = cands[start:start + page_size]
    client_counts = sorted(
        (ClientCount(clients[cid].key, clients[cid].name, n, late)
         for cid, (n, late) in counts.items() if cid in clients),
        key=lambda c: (-c.late, c.name.lower()))
    return Portfolio(rows=_rows(session, page, clients), total=len(cands),
                     clients=client_counts,
                     tags=sorted({t for c in clients.values() for t in c.tags}))


def _rows(session: Session, page: list[tuple[int, int, int]],
          clients: dict[int, ClientInfo]) -> list[RunRow]:
    """The page's runs in the page's order, with titles, progress and the current step."""
    ids = [c[0] for c in page]
    if not ids:
        return []
    unfinished = RunStep.status.in_(OPEN_STATES)
    progress = {run_id: (int(total or 0), int(done or 0), next_due) for run_id, total, done,
                next_due in session.execute(
                    select(RunStep.run_id,
                           func.sum(case((RunStep.status != StepStatus.NOT_APPLICABLE.value, 1),
                                         else_=0)),
                           func.sum(case((RunStep.status.in_(FINISHED), 1), else_=0)),
                           func.min(case((unfinished, RunStep.due_at), else_=None)))
                    .where(RunStep.run_id.in_(ids)).group_by(RunStep.run_id))}
    details = {r[0]: r for r in session.execute(
        select(Run.id, Run.playbook_id, PlaybookVersion.title, Run.status, Run.launched_at,
               Run.completed_at, Run.ticket_source, Run.ticket_id)
        .join(PlaybookVersion, PlaybookVersion.id == Run.playbook_version_id)
        .where(Run.id.in_(ids)))}
    current = _current_steps(session, ids)
    rows = []
    for run_id, client_id, late in page:
        _id, playbook_id, title, status, launched_at, completed_at, t_source, t_id = (
            details[run_id])
        client = clients[client_id]
        total, done, next_due = progress.get(run_id, (0, 0, None))
        if status != RunStatus.ACTIVE.value:
            next_due = None
        step, holder = current.get(run_id, (None, None))
        rows.append(RunRow(
            id=run_id, playbook_id=playbook_id, title=title, client=client.key,
            client_name=client.name, status=status, launched_at=launched_at,
            completed_at=completed_at, ticket=f"{t_source} #{t_id}" if t_source and t_id else None,
            done=done, total=total, late=late, next_due=next_due, current=step, holder=holder))
    return rows


def _current_steps(session: Session, run_ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """The first open step of each run on the page (one statement for the whole page)."""
    out: dict[int, tuple[str, str | None]] = {}
    for run_id, title, assignee in session.execute(
        select(RunStep.run_id, RunStep.title, RunStep.assignee)
        .where(RunStep.run_id.in_(run_ids), RunStep.status == StepStatus.OPEN.value)
        .order_by(RunStep.run_id, RunStep.position)
    ):
        out.setdefault(run_id, (title, assignee))
    return out

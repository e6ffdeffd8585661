"""The run service: loads and saves runs around the pure checklist engine.

Every mutating call works inside the caller's session/transaction, appends the
audit facts and hands the notes to a sink (the write-back outbox), so a state
change, its audit rows and its notes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from hub.config.playbooks import PlaybookLibrary, digest
from hub.core.calendars import DEFAULT_CALENDAR, Calendar, DueSpec, due_from
from hub.core.checklists import approvals, engine
from hub.core.checklists.engine import Outcome, RunState, StepState, TicketRef
from hub.core.checklists.schema import Playbook, Step, coerce_inputs
from hub.core.states import RunStatus, StepStatus
from hub.core.team import Team
from hub.errors import NotAllowed, NotFound
from hub.services.directory import ClientDirectory
from hub.store import audit
from hub.store.db import insert_ignore
from hub.store.models import AuditEntry, Client, PendingEvidence, PlaybookVersion, Run, RunStep

Clock = Callable[[], datetime]


class NoteSink(Protocol):
    """Receives the notes a transition produced, inside the same transaction."""

    def __call__(self, session: Session, run: Run, outcome: Outcome,
                 entries: Sequence[AuditEntry]) -> None: ...


def _no_notes(session: Session, run: Run, outcome: Outcome,
              entries: Sequence[AuditEntry]) -> None:
    return None


@dataclass(frozen=True)
class Origin:
    """The record that launched a run (ticket, agreement, alert …) in one source."""

    source: str
    type: str
    id: str


@dataclass(frozen=True)
class TickResult:
    """What a tick did to one run: ``done``, ``pending`` (step locked), or ``noop``."""

    run_id: int
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class RunFilter:
    """Filters for listing runs (all optional)."""

    client: str | None = None
    playbook: str | None = None
    assignee: str | None = None
    status: str | None = None
    overdue: bool | None = None
    limit: int = 100
    offset: int = 0


class RunService:
    """Launch, advance and query runs."""

    def __init__(
        self,
        *,
        library: Callable[[], PlaybookLibrary],
        team: Team,
        calendars: Mapping[str, Calendar],
        clock: Clock,
        clients: ClientDirectory,
        notes: NoteSink = _no_notes,
    ) -> None:
        self._library = library
        self.clients = clients
        self.team = team
        self.calendars = calendars
        self.clock = clock
        self._notes = notes
        self._pinned: dict[int, Playbook] = {}
        self._version_ids: dict[tuple[str, str], int] = {}

    # ---- reading -----------------------------------------------------------------

    def playbook_for(self, run: Run) -> Playbook:
        """The playbook version a run was launched with (cached by version row)."""
        pv_id = run.playbook_version_id
        cached = self._pinned.get(pv_id)
        if cached is None:
            cached = Playbook.model_validate(run.playbook_version.definition)
            self._pinned[pv_id] = cached
        return cached

    def playbook_version(self, session: Session, version_id: int) -> Playbook:
        """A pinned playbook version by its row id (cached like :meth:`playbook_for`).

        Raises:
            NotFound: no such version row.
        """
        cached = self._pinned.get(version_id)
        if cached is None:
            row = session.get(PlaybookVersion, version_id)
            if row is None:
                raise NotFound(f"playbook version {version_id} does not exist")
            cached = Playbook.model_validate(row.definition)
            self._pinned[version_id] = cached
        return cached

    def load(self, session: Session, run_id: int, *, for_update: bool = False) -> Run:
        """The run row with its steps.

        Raises:
            NotFound: no run with that id.
        """
        stmt = select(Run).where(Run.id == run_id)
        if for_update:
            stmt = stmt.with_for_update(of=Run)
        row = session.execute(stmt).unique().scalar_one_or_none()
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        return row

    def get(self, session: Session, run_id: int) -> RunState:
        """The state of one run."""
        return to_state(self.load(session, run_id))

    def search(self, session: Session, flt: RunFilter) -> list[Run]:
        """Runs matching the filter, newest first."""
        stmt = select(Run).order_by(Run.id.desc()).limit(flt.limit).offset(flt.offset)
        if flt.client:
            stmt = stmt.join(Client, Client.id == Run.client_id).where(Client.key == flt.client)
        if flt.playbook:
            stmt = stmt.where(Run.playbook_id == flt.playbook)
        if flt.status:
            stmt = stmt.where(Run.status == flt.status)
        open_states = (StepStatus.OPEN.value, StepStatus.LOCKED.value)
        if flt.assignee:
            stmt = stmt.where(Run.status == RunStatus.ACTIVE.value, Run.id.in_(
                select(RunStep.run_id).where(RunStep.assignee == flt.assignee,
                                             RunStep.status.in_(open_states))))
        if flt.overdue is not None:
            # only active runs can be late; a cancelled run's open steps are not
            late = (select(RunStep.run_id).join(Run, Run.id == RunStep.run_id)
                    .where(Run.status == RunStatus.ACTIVE.value,
                           RunStep.status.in_(open_states), RunStep.due_at < self.clock()))
            stmt = stmt.where(Run.id.in_(late) if flt.overdue else Run.id.not_in(late))
            if flt.overdue:
                stmt = stmt.where(Run.status == RunStatus.ACTIVE.value)
        return list(session.execute(stmt).unique().scalars().all())

    def active_runs(self, session: Session, client_key: str,
                    playbooks: Sequence[str] | None) -> list[Run]:
        """A client's active runs, optionally of some playbooks, oldest first."""
        stmt = (select(Run).join(Client, Client.id == Run.client_id)
                .where(Client.key == client_key, Run.status == RunStatus.ACTIVE.value)
                .order_by(Run.id))
        if playbooks:
            stmt = stmt.where(Run.playbook_id.in_(list(playbooks)))
        return list(session.execute(stmt).unique().scalars().all())

    def find_by_ticket(self, session: Session, ticket: TicketRef, playbook_id: str) -> Run | None:
        """The run this ticket already launched for this playbook, if any."""
        return session.execute(
            select(Run).where(Run.ticket_source == ticket.source, Run.ticket_id == ticket.id,
                              Run.playbook_id == playbook_id)
        ).unique().scalar_one_or_none()

    def find_by_origin(self, session: Session, origin: Origin, playbook_id: str) -> Run | None:
        """The run this record (ticket, agreement …) already launched for this playbook."""
        # the id alone (nearly always none): the run itself only when there is one
        run_id = session.execute(
            select(Run.id).where(Run.origin_source == origin.source,
                                 Run.origin_type == origin.type, Run.origin_id == origin.id,
                                 Run.playbook_id == playbook_id)
        ).scalar_one_or_none()
        return None if run_id is None else session.get(Run, run_id)

    def calendar_for(self, client: Client) -> Calendar:
        """The calendar a client's due dates and schedules follow: the directory's calendar
        for the client, else team.yaml's, else ``default``, else UTC office hours."""
        for name in (client.calendar, self.team.calendar_for(client.key), "default"):
            calendar = self.calendars.get(name) if name else None
            if calendar is not None:
                return calendar
        return DEFAULT_CALENDAR

    # ---- changing ----------------------------------------------------------------

    def launch(
        self,
        session: Session,
        playbook_id: str,
        *,
        client: str,
        client_name: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        by: str,
        ticket: TicketRef | None = None,
        origin: Origin | None = None,
        options: Mapping[str, Any] | None = None,
        event_id: int | None = None,
        occurred_at: datetime | None = None,
    ) -> Run:
        """Launch a run of the current version of a playbook for a client.

        ``occurred_at`` is when the originating event happened (a ticket's creation, a
        schedule's occurrence); due rules ``after event`` count from it.

        Raises:
            NotFound: unknown playbook.
            ValueError: inputs missing or ill-typed (the message names the input).
        """
        library = self._library()
        if playbook_id not in library:
            raise NotFound(f"playbook '{playbook_id}' does not exist")
        playbook = library.get(playbook_id)
        clean = coerce_inputs(playbook, dict(inputs or {}))
        now = self.clock()
        client_row = self.clients.ensure(session, client, client_name)
        version = self._version(session, playbook, now, library.playbooks[playbook_id].digest)
        calendar = self.calendar_for(client_row)

        def assign(step: Step) -> str | None:
            return self.team.resolve(step.role, client) if step.role else None

        def due(rule: str) -> datetime:
            return due_from(_due_spec(rule), launched_at=now, calendar=calendar,
                            event_at=occurred_at, inputs=clean)

        values: dict[str, Any] = {
            "playbook_id": playbook.id, "playbook_version_id": version.id,
            "client_id": client_row.id, "status": RunStatus.ACTIVE.value, "inputs": clean,
            "launched_by": by, "launched_at": now,
            "ticket_source": ticket.source if ticket else None,
            "ticket_id": ticket.id if ticket else None, "options": dict(options or {}),
            "origin_source": origin.source if origin else None,
            "origin_type": origin.type if origin else None,
            "origin_id": origin.id if origin else None,
            "completed_at": None, "cancel_reason": None}
        # Core statements on the hot path: one INSERT … RETURNING for the run and one
        # executemany for its steps, no unit-of-work flush (bench/RESULTS.md)
        run_id = session.execute(insert(_RUNS).values(values)
                                 .returning(_RUNS.c.id)).scalar_one()
        row = _attached(session, Run(id=run_id, **values), client=client_row,
                        playbook_version=version)
        outcome = engine.launch(playbook, run_id=run_id, client_id=client, inputs=clean,
                                by=by, now=now, assign=assign, due=due, ticket=ticket)
        self._pinned[version.id] = playbook
        session.execute(insert(_RUN_STEPS),
                        [_step_values(run_id, st) for st in outcome.run.steps])
        self._record(session, row, outcome, event_id)
        return row

    def complete(self, session: Session, run_id: int, step_id: str, *, by: str,
                 evidence: str | None = None, note: str | None = None,
                 values: Mapping[str, Any] | None = None,
                 event_id: int | None = None) -> Run:
        """Complete one step (order enforced; StepLocked names the blockers).

        ``values`` is a person's evidence form (checked: EvidenceInvalid lists every
        problem); ``None`` is an automatic tick, whose event is the evidence.
        """
        row = self.load(session, run_id, for_update=True)
        outcome = engine.complete_step(self.playbook_for(row), to_state(row), step_id, by=by,
                                       now=self.clock(), evidence=evidence, note=note,
                                       values=values)
        self._save(session, row, outcome, event_id)
        return row

    def team_roles(self, member: str, client: str) -> set[str]:
        """The team roles (config/team.yaml) ``member`` holds for this client: a client's
        override of a role replaces the global holders, as for assignment."""
        names = set(self.team.roles)
        override = self.team.clients.get(client)
        if override is not None:
            names |= set(override.roles)
        return {role for role in names if member in self.team.members_for(role, client)}

    def approve(self, session: Session, run_id: int, step_id: str, *, by: str, member: str,
                comment: str | None = None) -> Run:
        """Sign off an approval step as team member ``member`` (actor ``by``).

        Raises:
            ApprovalRefused: ``member`` lacks the approving role for the run's client, or
                (four-eyes) did one of the approved steps.
        """
        row = self.load(session, run_id, for_update=True)
        state = to_state(row)
        outcome = approvals.approve_step(self.playbook_for(row), state, step_id, by=by,
                                         roles=self.team_roles(member, state.client_id),
                                         now=self.clock(), comment=comment)
        self._save(session, row, outcome, None)
        return row

    def reject(self, session: Session, run_id: int, step_id: str, *, by: str, member: str,
               reason: str, reopen: Sequence[str] | None = None) -> Run:
        """Reject an approval step with a reason, reopening named approved steps."""
        row = self.load(session, run_id, for_update=True)
        state = to_state(row)
        outcome = approvals.reject_step(self.playbook_for(row), state, step_id, by=by,
                                        roles=self.team_roles(member, state.client_id),
                                        reason=reason, reopen=reopen, now=self.clock())
        self._save(session, row, outcome, None)
        return row

    def tick(self, session: Session, *, client: str, playbooks: Sequence[str], step_id: str,
             by: str, evidence: str | None, event_id: int | None = None) -> list[TickResult]:
        """Complete ``step_id`` in the client's active runs of these playbooks.

        A step that is still locked keeps the evidence and is ticked as soon as it
        opens; a finished step is left alone (a repeated alert has no second effect).
        """
        results: list[TickResult] = []
        for run in self.active_runs(session, client, playbooks):
            run = self.load(session, run.id, for_update=True)
            steps = {s.step_id: s for s in run.steps}
            step = steps.get(step_id)
            if step is None:
                continue
            if self.playbook_for(run).approved_by(step_id):
                # a sign-off is a person's decision: no event may make it
                results.append(TickResult(run.id, "noop", "approval step: a person signs "
                                          "it off"))
                continue
            status = StepStatus(step.status)
            if status is StepStatus.OPEN:
                self.complete(session, run.id, step_id, by=by, evidence=evidence,
                              event_id=event_id)
                results.append(TickResult(run.id, "done"))
            elif status is StepStatus.LOCKED:
                self._keep_evidence(session, run, step_id, by, evidence, event_id)
                results.append(TickResult(run.id, "pending", "step locked; evidence kept"))
            else:
                results.append(TickResult(run.id, "noop", f"step already {status.value}"))
        return results

    def _keep_evidence(self, session: Session, run: Run, step_id: str, by: str,
                       evidence: str | None, event_id: int | None) -> None:
        existing = session.execute(
            select(PendingEvidence).where(PendingEvidence.run_id == run.id,
                                          PendingEvidence.step_id == step_id)
        ).scalar_one_or_none()
        if existing is not None:
            return  # first evidence wins; later duplicates add nothing
        session.add(PendingEvidence(run_id=run.id, step_id=step_id, actor=by, evidence=evidence,
                                    event_id=event_id, created_at=self.clock()))
        session.flush()
        engine_fact = engine.Fact("evidence_held", by, self.clock(), step_id,
                                  data={"evidence": evidence} if evidence else {})
        self._append(session, run, [engine_fact], None, event_id)

    def _apply_pending(self, session: Session, row: Run) -> None:
        """Tick steps that just opened and have evidence waiting for them."""
        if row.status != RunStatus.ACTIVE.value:
            return
        open_ids = {s.step_id for s in row.steps if s.status == StepStatus.OPEN.value}
        if not open_ids:
            return
        waiting = session.execute(
            select(PendingEvidence).where(PendingEvidence.run_id == row.id,
                                          PendingEvidence.step_id.in_(open_ids))
            .order_by(PendingEvidence.id)
        ).scalars().all()
        for item in waiting:
            session.delete(item)
            session.flush()
            outcome = engine.complete_step(self.playbook_for(row), to_state(row), item.step_id,
                                           by=item.actor, now=self.clock(),
                                           evidence=item.evidence)
            self._save(session, row, outcome, item.event_id)

    def skip(self, session: Session, run_id: int, step_id: str, *, by: str, reason: str,
             may_skip_protected: bool = False, event_id: int | None = None) -> Run:
        """Skip one step with a reason, where the playbook allows it."""
        row = self.load(session, run_id, for_update=True)
        outcome = engine.skip_step(self.playbook_for(row), to_state(row), step_id, by=by,
                                   reason=reason, now=self.clock(),
                                   may_skip_protected=may_skip_protected)
        self._save(session, row, outcome, event_id)
        return row

    def cancel(self, session: Session, run_id: int, *, by: str, reason: str = "",
               event_id: int | None = None) -> Run:
        """Cancel an active run."""
        row = self.load(session, run_id, for_update=True)
        outcome = engine.cancel_run(to_state(row), by=by, reason=reason, now=self.clock())
        self._save(session, row, outcome, event_id)
        return row

    def comment(self, session: Session, run_id: int, *, by: str, text: str,
                event_id: int | None = None) -> Run:
        """Add an audited comment to a run (also written back to its ticket)."""
        row = self.load(session, run_id, for_update=True)
        outcome = engine.comment(to_state(row), by=by, text=text, now=self.clock())
        self._save(session, row, outcome, event_id)
        return row

    def reassign(self, session: Session, run_id: int, step_id: str, *,
                 assignee: str | None, by: str) -> Run:
        """Give a step to another technician."""
        if assignee is not None and self.team.members and self.team.member(assignee) is None:
            raise NotAllowed(f"'{assignee}' is not a member of the team")
        row = self.load(session, run_id, for_update=True)
        outcome = engine.reassign(to_state(row), step_id, assignee=assignee, by=by,
                                  now=self.clock())
        self._save(session, row, outcome, None)
        return row

    def count_active(self, session: Session) -> int:
        """Number of active runs (for metrics)."""
        return int(session.execute(select(func.count()).select_from(Run)
                                   .where(Run.status == RunStatus.ACTIVE.value)).scalar_one())

    def notify(self, session: Session, run: Run, outcome: Outcome,
               entries: Sequence[AuditEntry]) -> None:
        """Queue the notes of an outcome recorded outside the engine (e.g. overdue)."""
        self._notes(session, run, outcome, entries)

    # ---- persistence helpers ----------------------------------------------------------

    def _version(self, session: Session, playbook: Playbook, now: datetime,
                 sha: str | None = None) -> PlaybookVersion:
        sha = sha or digest(playbook)
        known = self._version_ids.get((playbook.id, sha))
        if known is not None:  # version rows never change: one read per session
            cached = session.get(PlaybookVersion, known)
            if cached is not None:
                return cached
        stmt = select(PlaybookVersion).where(PlaybookVersion.playbook_id == playbook.id,
                                             PlaybookVersion.digest == sha)
        row = session.execute(stmt).scalar_one_or_none()
        if row is None:
            insert_ignore(session, PlaybookVersion, {
                "playbook_id": playbook.id, "version": playbook.version, "digest": sha,
                "title": playbook.title, "definition": playbook.model_dump(mode="json"),
                "created_at": now}, ["playbook_id", "digest"])
            row = session.execute(stmt).scalar_one()
        self._version_ids[(playbook.id, sha)] = row.id
        return row

    def _save(self, session: Session, row: Run, outcome: Outcome, event_id: int | None) -> None:
        existing = {s.step_id: s for s in row.steps}
        for step in outcome.run.steps:
            current = existing.get(step.step_id)
            if current is None:
                row.steps.append(_step_row(step))
            else:
                _copy_step(step, current)
        self._record(session, row, outcome, event_id)

    def _record(self, session: Session, row: Run, outcome: Outcome,
                event_id: int | None) -> None:
        """Run fields, audit facts, notes, and evidence waiting for newly opened steps."""
        state = outcome.run
        if row.status != state.status.value:
            row.status = state.status.value
        if row.completed_at != state.completed_at:
            row.completed_at = state.completed_at
        if row.cancel_reason != state.cancel_reason:
            row.cancel_reason = state.cancel_reason
        self._append(session, row, outcome.facts, outcome, event_id)
        if any(f.action in ("step_done", "step_skipped") for f in outcome.facts):
            self._apply_pending(session, row)

    # ---- audit facts and notes, now or at the end of a batch ----------------------------

    def _append(self, session: Session, row: Run, facts: Sequence[engine.Fact],
                outcome: Outcome | None, event_id: int | None) -> None:
        """Append the facts to the chain and queue the outcome's notes — or, while the
        session holds them (:meth:`hold`), keep both for :meth:`record_held`."""
        held: list[_Held] | None = session.info.get(_HELD)
        if held is not None:
            held.append(_Held(row, tuple(facts), outcome, event_id))
            return
        entries = audit.append(session, facts, run_id=row.id, event_id=event_id)
        if outcome is not None:
            self._notes(session, row, outcome, entries)

    def hold(self, session: Session) -> None:
        """Keep this session's audit facts and notes until :meth:`record_held`.

        A batch of events takes the audit chain's head lock once, at its end, instead
        of at its first fact — so two workers' batches overlap instead of queueing.
        """
        session.info[_HELD] = []

    def held(self, session: Session) -> int:
        """A mark of what is held now (for :meth:`drop_held` after a savepoint rollback)."""
        return len(session.info.get(_HELD, ()))

    def drop_held(self, session: Session, mark: int) -> None:
        """Forget what was held after ``mark`` (its savepoint was rolled back)."""
        held: list[_Held] | None = session.info.get(_HELD)
        if held is not None:
            del held[mark:]

    def record_held(self, session: Session) -> None:
        """Append every held fact to the chain, in order, and queue the held notes."""
        held: list[_Held] = session.info.pop(_HELD, [])
        if not held:
            return
        groups = audit.append_groups(session, [(i.facts, i.run.id, i.event_id) for i in held])
        for item, entries in zip(held, groups, strict=True):
            if item.outcome is not None:
                self._notes(session, item.run, item.outcome, entries)


_RUNS = cast(Table, Run.__table__)
_RUN_STEPS = cast(Table, RunStep.__table__)
_due_spec = lru_cache(maxsize=1024)(DueSpec.parse)  # a launch parses each step's rule

_HELD = "msphub_held_records"  # session.info key: facts and notes kept for a batch's end


@dataclass(frozen=True)
class _Held:
    """One state change's audit facts (and the outcome whose notes go with them)."""

    run: Run
    facts: tuple[engine.Fact, ...]
    outcome: Outcome | None
    event_id: int | None


def _attached(session: Session, row: Run, *, client: Client,
              playbook_version: PlaybookVersion) -> Run:
    """A run just inserted with Core, as a persistent object of ``session`` (no SQL): its
    columns as inserted, its client and version already loaded, its steps loaded from the
    database on first use."""
    make_transient_to_detached(row)
    session.add(row)
    set_committed_value(row, "client", client)
    set_committed_value(row, "playbook_version", playbook_version)
    session.expire(row, ["steps"])
    return row


def _step_values(run_id: int, step: StepState) -> dict[str, Any]:
    return {"run_id": run_id, "step_id": step.step_id, "title": step.title,
            "position": step.position, "status": step.status.value, "assignee": step.assignee,
            "due_at": step.due_at, "done_by": step.done_by, "done_at": step.done_at,
            "evidence": step.evidence, "note": step.note, "skip_reason": step.skip_reason}


def _step_row(step: StepState) -> RunStep:
    row = RunStep(step_id=step.step_id, title=step.title, position=step.position)
    _copy_step(step, row)
    return row


def _copy_step(step: StepState, row: RunStep) -> None:
    fields = {
        "status": step.status.value, "assignee": step.assignee, "due_at": step.due_at,
        "done_by": step.done_by, "done_at": step.done_at, "evidence": step.evidence,
        "note": step.note, "skip_reason": step.skip_reason,
    }
    for name, value in fields.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def to_state(row: Run) -> RunState:
    """Convert a run row into the engine's immutable state."""
    return RunState(
        id=row.id,
        playbook_id=row.playbook_id,
        playbook_version=row.playbook_version.version,
        client_id=row.client.key,
        status=RunStatus(row.status),
        inputs=dict(row.inputs),
        steps=tuple(
            StepState(step_id=s.step_id, title=s.title, status=StepStatus(s.status),
                      position=s.position, assignee=s.assignee, due_at=s.due_at,
                      done_by=s.done_by, done_at=s.done_at, evidence=s.evidence, note=s.note,
                      skip_reason=s.skip_reason)
            for s in sorted(row.steps, key=lambda s: s.position)
        ),
        launched_at=row.launched_at,
        launched_by=row.launched_by,
        ticket=TicketRef(row.ticket_source, row.ticket_id)
        if row.ticket_source and row.ticket_id else None,
        completed_at=row.completed_at,
        cancel_reason=row.cancel_reason,
    )

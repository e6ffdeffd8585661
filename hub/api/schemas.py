"""Request and response bodies of the REST API, and the conversions from runs to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from hub.core.checklists import engine
from hub.core.checklists.engine import RunState
from hub.core.checklists.evidence import EvidenceField
from hub.core.checklists.schema import Playbook, PlaybookInput, Step
from hub.core.states import RunStatus, StepStatus
from hub.services.runs import RunService, to_state
from hub.store.models import AuditEntry, Run

MAX_TEXT = 20_000  # notes, evidence, comments: generous, but bounded


def no_nul(value: str) -> str:
    """Refuse NUL characters (PostgreSQL text and JSONB cannot store them)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def _no_nul_anywhere(value: Any) -> Any:
    if isinstance(value, str):
        no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul_anywhere(key)
            _no_nul_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul_anywhere(item)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only spaces")
    return value


def _int_as_text(value: Any) -> Any:
    # PSA ticket ids are often numbers in JSON; they are stored as text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Text = Annotated[str, AfterValidator(no_nul)]
Required = Annotated[str, AfterValidator(no_nul), AfterValidator(_not_blank)]


class StrictBody(BaseModel):
    # Unknown fields are refused so a typo ("input" for "inputs") is not silently ignored.
    model_config = ConfigDict(extra="forbid")


# ---- requests ------------------------------------------------------------------------


class TicketIn(StrictBody):
    """The PSA ticket a run belongs to; a ticket launches each playbook at most once."""

    source: Required = Field(max_length=100, description="Connector instance, e.g. `cw-prod`.")
    id: Annotated[Required, BeforeValidator(_int_as_text)] = Field(
        max_length=100, description="The ticket id in that PSA.")


class LaunchRequest(StrictBody):
    """Launch a run of the current version of a playbook for a client."""

    playbook: Required = Field(max_length=100, description="Playbook id.",
                               examples=["user-offboarding"])
    client: Required = Field(max_length=200,
                             description="The hub client key (GET /api/clients); a new key "
                             "creates the client.", examples=["acme"])
    client_name: Text | None = Field(default=None, max_length=300,
                                     description="Display name for a client created here.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Launch inputs declared by the playbook.",
        examples=[{"leaver_name": "Jane Doe", "last_day": "2025-03-07"}])
    ticket: TicketIn | None = None

    @field_validator("inputs")
    @classmethod
    def _inputs_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        _no_nul_anywhere(value)
        return value


class CompleteRequest(StrictBody):
    """Mark a step done, optionally with a note and evidence."""

    note: Text | None = Field(default=None, max_length=MAX_TEXT)
    evidence: Text | None = Field(default=None, max_length=MAX_TEXT,
                                  description="What proves the step was done.")
    fields: dict[str, Any] = Field(
        default_factory=dict, max_length=100,
        description="The step's evidence form: field id → value, as its `evidence_fields` "
        "declare (text, number, date YYYY-MM-DD, boolean, choice, url, file reference, "
        "confirm: true). Checked on completion; problems give 422 `invalid_evidence`.",
        examples=[{"backup_job": "Nightly SRV01", "last_good": "2025-03-02"}])

    @field_validator("fields")
    @classmethod
    def _fields_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        _no_nul_anywhere(value)
        return value


class ApproveRequest(StrictBody):
    """Sign off an approval step, optionally with a comment (kept as its evidence)."""

    comment: Text | None = Field(default=None, max_length=MAX_TEXT)


class RejectRequest(StrictBody):
    """Reject an approval step: why, and which approved steps to reopen."""

    reason: Required = Field(max_length=2_000, description="Why it is rejected (audited, "
                             "shown on the reopened steps' run and written to the ticket).")
    reopen: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=200,
        description="Step ids to reopen (default: every finished step it may reopen).")


class SkipRequest(StrictBody):
    """Skip a step; the reason is required and goes into the audit trail."""

    reason: Required = Field(max_length=2_000, description="Why the step is skipped.")


class AssignRequest(StrictBody):
    """Give a step to a team member (``null`` leaves it unassigned)."""

    assignee: Text | None = Field(min_length=1, max_length=100,
                                  description="Team member id from config/team.yaml.")


class CommentRequest(StrictBody):
    """A comment on a run (audited, and written back to the ticket)."""

    text: Required = Field(max_length=MAX_TEXT)


class CancelRequest(StrictBody):
    """Cancel an active run."""

    reason: Text = Field(default="", max_length=2_000)


# ---- responses -----------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every error: a machine code, a message, and sometimes more (``blockers``, ``errors``)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(examples=["step_locked"])
    detail: str = Field(examples=["step 'reset-password' is locked until these steps are "
                                  "done: disable-sign-in (Block sign-in)"])


class TicketOut(BaseModel):
    """A PSA ticket reference."""

    source: str
    id: str


class Progress(BaseModel):
    """Finished applicable steps out of applicable steps."""

    done: int
    total: int


class ApprovalOut(BaseModel):
    """What an approval step signs off and who may."""

    role: str = Field(description="Team role (config/team.yaml) whose members approve.")
    approves: list[str] = Field(description="The steps it signs off.")
    four_eyes: bool = Field(description="Whoever did an approved step may not approve.")
    reopenable: list[str] = Field(description="Steps a rejection may reopen.")


class StepOut(BaseModel):
    """One step of a run as it is now."""

    step_id: str
    title: str
    section: str | None
    status: StepStatus
    skippable: bool | Literal["manager"]
    assignee: str | None
    due_at: datetime | None
    overdue: bool
    done_by: str | None
    done_at: datetime | None
    evidence: str | None
    note: str | None
    skip_reason: str | None
    blockers: list[str] = Field(description="For a locked step: the step ids it waits for.")
    approval: ApprovalOut | None = Field(
        default=None, description="Set on a sign-off step: approve or reject it instead of "
        "completing it.")
    evidence_fields: list[EvidenceField] = Field(
        default_factory=list, description="The evidence form completing the step asks for.")


class RunSummary(BaseModel):
    """A run in a list."""

    id: int
    playbook: str
    playbook_title: str
    version: int
    client: str
    client_name: str | None
    status: RunStatus
    progress: Progress
    overdue: int = Field(description="Unfinished steps past their due time (active runs).")
    launched_at: datetime
    launched_by: str
    completed_at: datetime | None
    ticket: TicketOut | None


class RunDetail(RunSummary):
    """A run with its inputs and every step."""

    inputs: dict[str, Any]
    cancel_reason: str | None
    steps: list[StepOut]


class AuditEntryOut(BaseModel):
    """One entry of the hash-chained audit trail."""

    id: int
    at: datetime
    actor: str
    action: str
    run_id: int | None
    step_id: str | None
    event_id: int | None
    data: dict[str, Any]
    hash: str
    prev_hash: str


class VerifyOut(BaseModel):
    """Result of checking the whole audit chain."""

    ok: bool
    checked: int = Field(description="Entries checked before the first problem.")
    entry_id: int | None = Field(description="The first entry found altered/inserted/removed.")
    problem: str | None


class StepSummary(BaseModel):
    """A step of a playbook, as listed."""

    id: str
    title: str
    section: str | None
    role: str | None
    assignee: str | None
    after: list[str]
    due: str | None
    conditional: bool = Field(description="True when the step has a `when` condition.")
    skippable: bool | Literal["manager"]


class PlaybookSummary(BaseModel):
    """A playbook in the library."""

    id: str
    title: str
    version: int
    category: str | None
    description: str | None
    strict_order: bool
    schedule: str | None
    inputs: list[PlaybookInput]
    steps: list[StepSummary]


class Health(BaseModel):
    """Liveness of the API and its database."""

    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]


# ---- conversions ---------------------------------------------------------------------


def _ticket(state: RunState) -> TicketOut | None:
    return TicketOut(source=state.ticket.source, id=state.ticket.id) if state.ticket else None


def _summary_fields(row: Run, state: RunState, now: datetime) -> dict[str, Any]:
    done, total = state.progress()
    active = state.status is RunStatus.ACTIVE
    return {
        "id": state.id, "playbook": state.playbook_id,
        "playbook_title": row.playbook_version.title, "version": state.playbook_version,
        "client": state.client_id, "client_name": row.client.name, "status": state.status,
        "progress": Progress(done=done, total=total),
        "overdue": len(state.overdue(now)) if active else 0,
        "launched_at": state.launched_at, "launched_by": state.launched_by,
        "completed_at": state.completed_at, "ticket": _ticket(state),
    }


def run_summary(row: Run, now: datetime) -> RunSummary:
    """A run row as a list entry."""
    state = to_state(row)
    return RunSummary(**_summary_fields(row, state, now))


def run_detail(runs: RunService, row: Run, now: datetime) -> RunDetail:
    """A run row with every step, its blockers and overdue flags."""
    state = to_state(row)
    playbook = runs.playbook_for(row)
    defined = {s.id: s for s in playbook.steps}
    active = state.status is RunStatus.ACTIVE
    steps = []
    for s in state.steps:
        definition = defined.get(s.step_id)
        locked = s.status is StepStatus.LOCKED and definition is not None
        steps.append(StepOut(
            step_id=s.step_id, title=s.title,
            section=definition.section if definition else None,
            status=s.status, skippable=definition.skippable if definition else True,
            assignee=s.assignee, due_at=s.due_at, overdue=active and s.is_overdue(now),
            done_by=s.done_by, done_at=s.done_at, evidence=s.evidence, note=s.note,
            skip_reason=s.skip_reason,
            blockers=engine.blockers(playbook, state, s.step_id) if locked else [],
            approval=_approval(playbook, definition),
            evidence_fields=list(definition.evidence_fields) if definition else [],
        ))
    return RunDetail(**_summary_fields(row, state, now), inputs=dict(state.inputs),
                     cancel_reason=state.cancel_reason, steps=steps)


def _approval(playbook: Playbook, step: Step | None) -> ApprovalOut | None:
    if step is None or step.approval is None or step.approver_role is None:
        return None
    return ApprovalOut(role=step.approver_role, approves=playbook.approved_by(step.id),
                       four_eyes=step.approval.four_eyes,
                       reopenable=playbook.reopenable(step.id))


def audit_entry(row: AuditEntry) -> AuditEntryOut:
    """An audit row as returned by the API."""
    return AuditEntryOut(id=row.id, at=row.at, actor=row.actor, action=row.action,
                         run_id=row.run_id, step_id=row.step_id, event_id=row.event_id,
                         data=dict(row.data), hash=row.hash, prev_hash=row.prev_hash)


def playbook_summary(playbook: Playbook) -> PlaybookSummary:
    """A playbook as listed: metadata, inputs and a summary of each step."""
    return PlaybookSummary(
        id=playbook.id, title=playbook.title, version=playbook.version,
        category=playbook.category, description=playbook.description,
        strict_order=playbook.strict_order, schedule=playbook.schedule,
        inputs=list(playbook.inputs),
        steps=[StepSummary(id=s.id, title=s.title, section=s.section, role=s.role,
                           assignee=s.assignee, after=list(s.after), due=s.due,
                           conditional=s.when is not None, skippable=s.skippable)
               for s in playbook.steps],
    )

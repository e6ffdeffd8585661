"""Playbook files: YAML checklist templates validated into pydantic models."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.core.calendars import DueSpec
from hub.core.checklists.checks import Checks
from hub.core.checklists.escalation import Escalation
from hub.core.checklists.evidence import EvidenceField
from hub.core.conditions import (
    CONDITION_JSON_SCHEMA,
    Condition,
    ConditionSyntaxError,
    fields_of,
    parse_condition,
)
from hub.core.recurrence import Recurrence

_ID = r"^[a-z0-9][a-z0-9_-]*$"


class InputType(StrEnum):
    """Types a launch input can have."""

    STRING = "string"
    TEXT = "text"
    EMAIL = "email"
    DATE = "date"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    CHOICE = "choice"


class PlaybookInput(BaseModel):
    """A value captured when a run is launched (e.g. the leaver's name and last day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID, description="Name used in `when` conditions and templates.")
    title: str = Field(description="Label shown to the person launching the run.")
    type: InputType = Field(default=InputType.STRING, description="Value type, checked at launch.")
    required: bool = Field(
        default=True, description="Launch is refused when a required input is missing."
    )
    choices: list[str] | None = Field(default=None, description="Allowed values for type 'choice'.")
    default: Any = Field(default=None, description="Value used when the input is not given.")
    help: str | None = Field(default=None, description="Hint shown beside the field.")

    @model_validator(mode="after")
    def _choices(self) -> PlaybookInput:
        if self.type is InputType.CHOICE and not self.choices:
            raise ValueError("an input of type 'choice' needs 'choices'")
        if self.type is not InputType.CHOICE and self.choices:
            raise ValueError("'choices' is only allowed with type 'choice'")
        return self


class Approval(BaseModel):
    """A sign-off: the step is completed only by approving it (``approve``), by someone
    holding ``role`` in config/team.yaml for the run's client who — with ``four_eyes`` —
    did none of the steps it approves; a rejection reopens named steps with a reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str | None = Field(
        default=None, description="Team role whose members may approve (config/team.yaml); "
        "default: the step's own role.")
    approves: list[str] = Field(
        default_factory=list, description="Steps this approval signs off (each must come "
        "before it); default: every step it waits for, directly or not.")
    four_eyes: bool = Field(
        default=True, description="The approver must not be anyone who did (or skipped) "
        "one of the approved steps.")
    reopen: list[str] | None = Field(
        default=None, description="Steps a rejection may reopen; default: the approved "
        "steps. The person rejecting names which (default: all of these).")


class Step(BaseModel):
    """One checklist step of a playbook."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    id: str = Field(pattern=_ID, description="Stable step id (used by mappings to tick it).")
    title: str = Field(description="What has to be done, as the technician sees it.")
    description: str | None = Field(default=None, description="Instructions, links, how-to.")
    section: str | None = Field(default=None, description="Heading the step is grouped under.")
    role: str | None = Field(default=None, description="Role from config/team.yaml that does it.")
    assignee: str | None = Field(default=None, description="A named technician (overrides role).")
    after: list[str] = Field(
        default_factory=list, description="Steps that must be done (or skipped) first."
    )
    when: dict[str, Any] | None = Field(
        default=None,
        description="Condition over launch inputs; when false the step is not applicable.",
    )
    due: str | None = Field(
        default=None,
        description="Deadline: '4h', '2 days', '3 business days', '8 business hours' after "
        "launch; '4h after event' (the ticket/alert that launched the run); '4 hours after "
        "last_day 17:00' or '2 business days after last_day' (a date input); or the mapping "
        "{in: 4h, after: last_day, at: '17:00'}. Business time follows the client's calendar.",
    )
    evidence: str | None = Field(default=None, description="What counts as proof the step is done.")
    skippable: bool | Literal["manager"] = Field(
        default=True,
        description="true: anyone who can work the run may skip it, with a reason; "
        "'manager': only a service manager or admin may (a protected step); "
        "false: it can never be skipped (e.g. access revocation).",
    )
    auto: list[str] = Field(
        default_factory=list,
        description="Event kinds that may tick this step (hints for mapping authors).",
    )
    escalate: Escalation | None = Field(
        default=None,
        description="When the step stays overdue: {after: 2h, to_role: senior-engineer, "
        "notify: manager} reassigns it and/or tells people, once.",
    )
    check: Checks = Field(
        default=(),
        description="Verification check(s) the hub runs against the client's RMM while the "
        "step is open; the step is ticked with the evidence once they all hold. One "
        "mapping or a list; kinds: agents_online, no_critical_patches, backup_recent, "
        "antivirus_healthy.",
    )
    evidence_fields: list[EvidenceField] = Field(
        default_factory=list,
        description="Typed evidence a person completing the step must give (text, number, "
        "date, boolean, choice, url, file, confirm); checked on completion and kept in the "
        "audit trail and the completion record. A mapping tick carries its event instead.",
    )
    approval: Approval | None = Field(
        default=None,
        description="Makes the step a sign-off by a team role (four-eyes by default); an "
        "approval step cannot be skipped unless 'skippable' says so explicitly.",
    )

    @model_validator(mode="before")
    @classmethod
    def _approval_not_skippable(cls, data: Any) -> Any:
        # Skipping a sign-off would bypass it: unless the author says otherwise, it can't be.
        if isinstance(data, dict) and data.get("approval") is not None \
                and "skippable" not in data:
            return {**data, "skippable": False}
        return data

    @model_validator(mode="after")
    def _fields_and_approval(self) -> Step:
        ids = [f.id for f in self.evidence_fields]
        for index, fid in enumerate(ids):
            if fid in ids[:index]:
                raise ValueError(f"evidence_fields.{index}.id: duplicate field id '{fid}'")
        if self.approval is not None and not (self.approval.role or self.role):
            raise ValueError("approval: name the team role that approves (approval.role, "
                             "or the step's role)")
        return self

    @property
    def approver_role(self) -> str | None:
        """The team role whose members may approve this step (None: not an approval)."""
        if self.approval is None:
            return None
        return self.approval.role or self.role

    @field_validator("due", mode="before")
    @classmethod
    def _due(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return str(DueSpec.parse(value))  # stored in its one-line form
        if isinstance(value, str):
            DueSpec.parse(value)
        return value

    def condition(self) -> Condition | None:
        """The compiled ``when`` condition (validated at load time)."""
        return None if self.when is None else parse_condition(self.when)


class Playbook(BaseModel):
    """A checklist template: the steps of one MSP process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID, description="Playbook id, used by mappings and the API.")
    title: str
    version: int = Field(ge=1, description="Bump when the steps change; runs keep their version.")
    description: str | None = None
    category: str | None = Field(default=None, description="onboarding, offboarding, maintenance…")
    strict_order: bool = Field(
        default=False,
        description="True: every step waits for the one before it (in addition to 'after').",
    )
    inputs: list[PlaybookInput] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    schedule: str | None = Field(
        default=None,
        description="When the playbook recurs (for the clients config/schedules.yaml names): "
        "a friendly form such as 'monthly on day 1 at 09:00' or 'first Monday of each quarter "
        "at 08:00', an RFC 5545 RRULE ('FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9'), or a five-field "
        "cron expression ('0 9 1 * *').",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            Recurrence.parse(value)
        return value

    @model_validator(mode="after")
    def _graph(self) -> Playbook:
        ids = [s.id for s in self.steps]
        for index, sid in enumerate(ids):
            if sid in ids[:index]:
                raise ValueError(f"steps.{index}.id: duplicate step id '{sid}'")
        input_ids = [i.id for i in self.inputs]
        for index, iid in enumerate(input_ids):
            if iid in input_ids[:index]:
                raise ValueError(f"inputs.{index}.id: duplicate input id '{iid}'")
        known = set(ids)
        for index, step in enumerate(self.steps):
            for dep in step.after:
                if dep not in known:
                    raise ValueError(f"steps.{index}.after: unknown step '{dep}'")
                if dep == step.id:
                    raise ValueError(f"steps.{index}.after: a step cannot wait for itself")
            if step.when is not None:
                try:
                    cond = parse_condition(step.when)
                except ConditionSyntaxError as exc:
                    where = ".".join(str(p) for p in exc.loc)
                    raise ValueError(f"steps.{index}.when.{where}: {exc}") from exc
                for path in fields_of(cond):
                    root = path.split(".", 1)[0]
                    if root not in input_ids:
                        raise ValueError(
                            f"steps.{index}.when: '{path}' is not an input of this playbook"
                        )
        date_inputs = {i.id for i in self.inputs if i.type is InputType.DATE}
        for index, step in enumerate(self.steps):
            anchor = DueSpec.parse(step.due).input if step.due else None
            if anchor is not None and anchor not in date_inputs:
                raise ValueError(f"steps.{index}.due: '{anchor}' is not a date input of this "
                                 f"playbook (count from launch, event or one of: "
                                 f"{', '.join(sorted(date_inputs)) or 'no date inputs'})")
        cycle = _find_cycle({s.id: s.after for s in self.steps})
        if cycle:
            raise ValueError(f"steps.{ids.index(cycle[0])}.after: steps wait for each other "
                             f"in a cycle: {' -> '.join(cycle)}")
        for index, step in enumerate(self.steps):
            if step.approval is not None:
                self._check_approval(index, step)
        return self

    def _check_approval(self, index: int, step: Step) -> None:
        assert step.approval is not None
        before = self._ancestors(step.id)
        for key in ("approves", "reopen"):
            for sid in getattr(step.approval, key) or []:
                if sid not in before:
                    raise ValueError(f"steps.{index}.approval.{key}: '{sid}' is not a step "
                                     f"this approval waits for")
        if not self.approved_by(step.id):
            raise ValueError(f"steps.{index}.approval: an approval must wait for the steps "
                             f"it approves (give it 'after' or 'approves')")
        allowed = set(self.approved_by(step.id))
        for sid in step.approval.reopen or []:
            if sid not in allowed:
                raise ValueError(f"steps.{index}.approval.reopen: '{sid}' is not one of the "
                                 f"approved steps")

    def _ancestors(self, step_id: str) -> list[str]:
        """Every step ``step_id`` waits for, directly or not, in playbook order."""
        seen: set[str] = set()
        todo = list(self._direct(step_id))
        while todo:
            sid = todo.pop()
            if sid not in seen:
                seen.add(sid)
                todo.extend(self._direct(sid))
        return [s.id for s in self.steps if s.id in seen]

    def _direct(self, step_id: str) -> list[str]:
        deps = list(self.step(step_id).after)
        if self.strict_order:
            ids = [s.id for s in self.steps]
            pos = ids.index(step_id)
            if pos > 0 and ids[pos - 1] not in deps:
                deps.append(ids[pos - 1])
        return deps

    def approved_by(self, step_id: str) -> list[str]:
        """The steps an approval step signs off (its ``approves``, else all it waits for)."""
        step = self.step(step_id)
        if step.approval is None:
            return []
        return list(step.approval.approves) or self._ancestors(step_id)

    def reopenable(self, step_id: str) -> list[str]:
        """The steps a rejection of this approval step may reopen."""
        step = self.step(step_id)
        if step.approval is None:
            return []
        return list(step.approval.reopen or self.approved_by(step_id))

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError when absent)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def prerequisites(self, step_id: str) -> list[str]:
        """Step ids that must be finished before ``step_id`` (``after`` plus strict order;
        an approval also waits for every step it approves, so a rejection that reopens
        one of them locks the approval again)."""
        deps = self._direct(step_id)
        step = self.step(step_id)
        if step.approval is not None:
            deps += [sid for sid in self.approved_by(step_id) if sid not in deps]
        return deps


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def coerce_inputs(playbook: Playbook, given: dict[str, Any]) -> dict[str, Any]:
    """Check and convert launch inputs against the playbook's declared inputs.

    Raises:
        ValueError: an unknown, missing or ill-typed input; the message names it.
    """
    known = {i.id: i for i in playbook.inputs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown input(s): {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for spec in playbook.inputs:
        value = given.get(spec.id, spec.default)
        if value is None or value == "":
            if spec.required:
                raise ValueError(f"input '{spec.id}' ({spec.title}) is required")
            out[spec.id] = None
            continue
        out[spec.id] = _coerce(spec, value)
    return out


def _coerce(spec: PlaybookInput, value: Any) -> Any:
    name = spec.id
    if isinstance(value, dict | list):
        raise ValueError(f"input '{name}' must be a single value, not a list or object")
    if spec.type in (InputType.STRING, InputType.TEXT):
        return str(value)
    if spec.type is InputType.EMAIL:
        if not isinstance(value, str) or not _EMAIL.match(value):
            raise ValueError(f"input '{name}' must be an email address")
        return value
    if spec.type is InputType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1"):
            return True
        if str(value).lower() in ("false", "no", "0"):
            return False
        raise ValueError(f"input '{name}' must be true or false")
    if spec.type is InputType.INTEGER:
        if isinstance(value, bool):
            raise ValueError(f"input '{name}' must be a whole number")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"input '{name}' must be a whole number")
            return int(value)
        try:
            return int(str(value).strip())
        except (TypeError, ValueError):
            raise ValueError(f"input '{name}' must be a whole number") from None
    if spec.type is InputType.DATE:
        if isinstance(value, datetime):
            raise ValueError(f"input '{name}' must be a date (YYYY-MM-DD), not a date and time")
        if isinstance(value, date):
            return value.isoformat()
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError(f"input '{name}' must be a date (YYYY-MM-DD)") from None
    assert spec.choices is not None  # enforced by the model validator
    if str(value) not in spec.choices:
        raise ValueError(f"input '{name}' must be one of: {', '.join(spec.choices)}")
    return str(value)


def playbook_json_schema() -> dict[str, Any]:
    """JSON Schema of a playbook file, for editors (YAML language servers)."""
    schema = Playbook.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "msphub playbook"
    defs = schema.setdefault("$defs", {})
    defs["condition"] = {k: v for k, v in CONDITION_JSON_SCHEMA.items() if k != "$id"}
    step = defs.get("Step", {})
    if "properties" in step:
        step["properties"]["when"] = {"$ref": "#/$defs/condition"}
    return schema

"""A playbook step's escalation: what happens when it stays overdue for too long."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from hub.core.calendars import DueRule, DueUnit
from hub.core.team import check_target

_SPAN = {DueUnit.MINUTES: timedelta(minutes=1), DueUnit.HOURS: timedelta(hours=1),
         DueUnit.DAYS: timedelta(days=1), DueUnit.WEEKS: timedelta(weeks=1)}


def span(rule: DueRule) -> timedelta:
    """A wall-clock due rule as a duration (``2h`` → two hours)."""
    return rule.amount * _SPAN[rule.unit]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Escalation(BaseModel):
    """``escalate: {after: 2h, to_role: senior-engineer, notify: manager}``: a step still
    unfinished this long after its due time is reassigned to the role's member for the
    client and/or the people named are told — once, recorded in the audit trail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: DueRule = Field(description="How long past the due time: 30m, 2h, 1d (wall clock)")
    to_role: str | None = Field(
        default=None, description="Role (config/team.yaml) whose member for the client takes "
        "the step over; omitted: the assignee keeps it")
    notify: Annotated[list[str], BeforeValidator(_as_list), WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})] = Field(
        default_factory=lambda: ["manager"],
        description="Who is told: manager, assignee, role:<role>, person:<id>; [] nobody")

    @field_validator("after")
    @classmethod
    def _wall_clock(cls, value: DueRule) -> DueRule:
        if value.business:
            raise ValueError("escalation counts wall-clock time (30m, 2h, 1d), not business time")
        return value

    @field_validator("notify")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            check_target(target)
        return value

    @property
    def delay(self) -> timedelta:
        """``after`` as a duration."""
        return span(self.after)

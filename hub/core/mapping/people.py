"""The rule actions for people: ``notify`` someone and put a ``note`` on the ticket."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from hub.core.team import check_target

NotifyChannel = Literal["email", "teams", "slack", "ticket"]
CHANNELS = ("email", "teams", "slack", "ticket")
TEMPLATE_NAME = r"^[a-z0-9][a-z0-9_-]*$"
_ONE_OR_MORE = {"anyOf": [{"type": "string"},
                          {"type": "array", "items": {"type": "string"}, "minItems": 1}]}


def _as_list(value: Any) -> Any:
    """A single name is shorthand for a one-element list."""
    return [value] if isinstance(value, str) else value


class NotifySpec(BaseModel):
    """Tell people about the event: a person, a role or the client's manager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: Annotated[list[str], BeforeValidator(_as_list), WithJsonSchema(_ONE_OR_MORE)] = Field(
        min_length=1,
        description="Who: 'manager' (the client's service manager), 'role:<role>' (its "
        "holder for the event's client, config/team.yaml) or 'person:<member id>'.",
    )
    channels: Annotated[list[NotifyChannel], BeforeValidator(_as_list), WithJsonSchema(
        {"anyOf": [{"enum": list(CHANNELS)}, {"type": "array", "items": {"enum": list(CHANNELS)}},
                   {"type": "null"}]})] | None = Field(
        default=None,
        description="email, teams, slack and/or ticket (a note on the event's ticket); "
        "omitted: each person's own channels for 'notify' (team.yaml).",
    )
    template: str = Field(
        default="notify", pattern=TEMPLATE_NAME,
        description="Notification template set (hub/templates/notifications/<name>.*, or "
        "your copy under config/templates/notifications/).",
    )
    subject: str | None = Field(
        default=None, description="Template for the subject line; default: the text's "
        "first line.")
    text: str = Field(min_length=1, description="Template for the message, rendered "
                      "against the event like comment.text.")

    @field_validator("to")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if target == "assignee":
                raise ValueError("an event has no assignee: name a person, a role or manager")
            check_target(target)
        return value


class NoteSpec(BaseModel):
    """Put one internal note on the ticket the event is about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, description="Template for the note text.")

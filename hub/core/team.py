"""The MSP's technicians, who holds which role, and per-client overrides (``config/team.yaml``)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hub.core.calendars import Calendar
from hub.errors import Loc

__all__ = ["ClientTeam", "Member", "Team"]

DEFAULT_CALENDAR_NAME = "default"
_MEMBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
REFERENCE_ERROR = "team_reference"


def _as_member_list(value: Any) -> Any:
    """A role may name one member (``engineer: carol``) or several in priority order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and not value:
        raise ValueError("list at least one member, or remove the role")
    return value


MemberIds = Annotated[tuple[str, ...], BeforeValidator(_as_member_list)]


def _str_keys(value: Any) -> Any:
    """PSA ids are often numeric (``19300:``); YAML reads those keys as ints."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class Member(BaseModel):
    """One technician; ``id`` is the assignee id used on steps, in the audit trail and the API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Short stable id, e.g. alice")
    name: str = Field(min_length=1, description="Display name")
    email: str | None = Field(default=None, description="Where notifications go")
    calendar: str | None = Field(default=None, description="This person's working calendar")

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _MEMBER_ID.match(value):
            raise ValueError(
                f"invalid member id {value!r}; use letters, digits, '.', '_', '-' or '@' "
                "and no spaces, e.g. alice or a.smith"
            )
        return value

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"invalid email address {value!r}")
        return value


class ClientTeam(BaseModel):
    """Overrides for one client, keyed in ``clients:`` by the id the PSA uses for the client."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(default=None, description="Display name, for humans only")
    calendar: str | None = Field(default=None, description="Calendar for this client's due dates")
    roles: Annotated[dict[str, MemberIds], BeforeValidator(_str_keys)] = Field(
        default_factory=dict, description="Role → member(s) replacing the global assignment"
    )


class Team(BaseModel):
    """Technicians, global role assignments and per-client overrides.

    Validation checks that every member a role or client names exists, that ids are unique and,
    when a ``calendars`` mapping is passed in the validation context (``load_team`` does), that
    every calendar named exists.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    members: tuple[Member, ...] = ()
    roles: dict[str, MemberIds] = Field(
        default_factory=dict, description="Role → member id, or ids in priority order"
    )
    clients: Annotated[dict[str, ClientTeam], BeforeValidator(_str_keys)] = Field(
        default_factory=dict, description="Client id (as the PSA knows it) → overrides"
    )

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Team:
        calendars = info.context.get("calendars") if isinstance(info.context, dict) else None
        for loc, message in self._problems(calendars):
            # The loc travels in ctx so load_team can point at the exact line.
            ctx = {"message": message, "loc": loc}
            raise PydanticCustomError(REFERENCE_ERROR, "{message}", ctx)
        return self

    def _problems(self, calendars: Mapping[str, Calendar] | None) -> Iterator[tuple[Loc, str]]:
        seen: set[str] = set()
        for i, member in enumerate(self.members):
            if member.id in seen:
                yield ("members", i, "id"), f"duplicate member id {member.id!r}"
            seen.add(member.id)
        assignments: list[tuple[Loc, tuple[str, ...]]] = [
            (("roles", role), ids) for role, ids in self.roles.items()
        ]
        for client_id, client in self.clients.items():
            assignments += [
                (("clients", client_id, "roles", role), ids) for role, ids in client.roles.items()
            ]
        for loc, ids in assignments:
            for i, member_id in enumerate(ids):
                if member_id not in seen:
                    where = loc if len(ids) == 1 else (*loc, i)
                    known = ", ".join(m.id for m in self.members) or "none defined"
                    yield where, f"unknown member {member_id!r} (members: {known})"
        if calendars is None:
            return
        named: list[tuple[Loc, str | None]] = [
            (("members", i, "calendar"), m.calendar) for i, m in enumerate(self.members)
        ]
        named += [(("clients", cid, "calendar"), c.calendar) for cid, c in self.clients.items()]
        for loc, name in named:
            if name is not None and name not in calendars:
                yield loc, f"unknown calendar {name!r} (calendars: {', '.join(calendars)})"

    def members_for(self, role: str, client_id: str | None = None) -> list[str]:
        """Member ids holding ``role`` for the client, in priority order (primary first).

        A client override for the role replaces the global assignment; an unknown role gives
        ``[]``.
        """
        client = self.clients.get(client_id) if client_id is not None else None
        if client is not None and role in client.roles:
            return list(client.roles[role])
        return list(self.roles.get(role, ()))

    def resolve(self, role: str, client_id: str | None = None) -> str | None:
        """The primary member for ``role`` at the client, or None (step stays unassigned)."""
        ids = self.members_for(role, client_id)
        return ids[0] if ids else None

    def calendar_for(self, client_id: str | None) -> str:
        """Name of the calendar the client's due dates use (``"default"`` unless overridden)."""
        client = self.clients.get(client_id) if client_id is not None else None
        if client is not None and client.calendar is not None:
            return client.calendar
        return DEFAULT_CALENDAR_NAME

    def member(self, member_id: str) -> Member | None:
        """The member with this id, or None (a playbook may name an assignee outside the team)."""
        return next((m for m in self.members if m.id == member_id), None)

"""The MSP's technicians, who holds which role, and per-client overrides (``config/team.yaml``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hub.core.calendars import Calendar, DueRule
from hub.errors import Loc

__all__ = ["Channel", "ClientTeam", "Member", "MemberNotify", "NotificationRules",
           "QuietHours", "Team"]

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


class Channel(StrEnum):
    """Where a person hears of something: an email, a Teams or a Slack incoming webhook."""

    EMAIL = "email"
    TEAMS = "teams"
    SLACK = "slack"


class QuietHours(BaseModel):
    """Hours a person is not to be disturbed; what falls in them is sent when they end."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    start: time = Field(alias="from", description="Local time quiet hours begin, e.g. 19:00")
    end: time = Field(alias="to", description="Local time they end, e.g. 07:30 (next morning "
                      "when earlier than 'from')")
    timezone: str = Field(default="UTC", description="IANA zone of these times")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/London)") from None
        return value

    def until(self, now: datetime) -> datetime | None:
        """When the quiet hours that contain ``now`` end (UTC), or None if ``now`` is not in
        them. An overnight window (19:00 → 07:30) runs across midnight."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        overnight = self.start > self.end
        inside = (clock >= self.start or clock < self.end) if overnight else \
            (self.start <= clock < self.end)
        if not inside:
            return None
        day = local.date() + timedelta(days=1) if overnight and clock >= self.start \
            else local.date()
        return datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)


class MemberNotify(BaseModel):
    """How one person wants to be told: channels, webhooks, quiet hours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: tuple[Channel, ...] = Field(
        default=(Channel.EMAIL,), description="Channels used for every kind not in 'kinds'")
    kinds: dict[str, tuple[Channel, ...]] = Field(
        default_factory=dict,
        description="Kind (assigned, due_soon, overdue, escalated, approval_requested, "
        "completed, notify) → channels, replacing 'channels' for it; [] silences a kind")
    teams: SecretStr | None = Field(
        default=None, description="Teams incoming-webhook URL (use ${ENV_VAR}: it is a secret)")
    slack: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL (use ${ENV_VAR}: it is a secret)")
    quiet_hours: QuietHours | None = None

    @field_validator("channels", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def channels_for(self, kind: str) -> tuple[Channel, ...]:
        """The channels this person hears ``kind`` on."""
        return self.kinds.get(kind, self.channels)


class Member(BaseModel):
    """One technician; ``id`` is the assignee id used on steps, in the audit trail and the API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Short stable id, e.g. alice")
    name: str = Field(min_length=1, description="Display name")
    email: str | None = Field(default=None, description="Where notifications go")
    calendar: str | None = Field(default=None, description="This person's working calendar")
    notify: MemberNotify = Field(default_factory=MemberNotify,
                                 description="Channels, webhooks and quiet hours")

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


DEFAULT_SEND: dict[str, tuple[str, ...]] = {
    "assigned": ("assignee",),
    "due_soon": ("assignee",),
    "overdue": ("assignee", "manager"),
    "escalated": ("manager", "assignee"),
    "approval_requested": ("manager",),
    "completed": ("manager",),
}
_TARGET = re.compile(r"^(assignee|manager|role:[A-Za-z0-9._-]+|person:[A-Za-z0-9._@-]+)$")


def check_target(value: str) -> str:
    """A recipient as rules and team.yaml name one: ``assignee`` (of the step), ``manager``
    (the client's service manager), ``role:<role>`` (its holder at the client) or
    ``person:<member id>``."""
    if not _TARGET.match(value):
        raise ValueError(f"unknown recipient {value!r}: use assignee, manager, role:<role> "
                         "or person:<member id>")
    return value


class NotificationRules(BaseModel):
    """Who hears of each kind of fact, and which role is a client's manager."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    brand: str = Field(default="msphub", description="Your name, as messages show it")
    due_soon: DueRule = Field(default=DueRule.parse("1h"),
                              description="How long before its due time a step is 'due soon' "
                              "(wall clock: 30m, 2h, 1d)")
    manager_role: str = Field(default="service-manager",
                              description="The role that is a client's (service) manager")
    send: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_SEND),
        description="Kind → recipients (assignee, manager, role:<role>, person:<id>); "
        "kinds not listed keep their defaults")

    @field_validator("send")
    @classmethod
    def _targets(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for targets in value.values():
            for target in targets:
                check_target(target)
        return {**DEFAULT_SEND, **value}


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
    notifications: NotificationRules = Field(default_factory=NotificationRules)

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
        assignments += [
            (("notifications", "send", kind), (t.removeprefix("person:"),))
            for kind, targets in self.notifications.send.items()
            for t in targets if t.startswith("person:")
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

    def manager_for(self, client_id: str | None) -> str | None:
        """The client's manager: the holder of ``notifications.manager_role`` there."""
        return self.resolve(self.notifications.manager_role, client_id)

    def recipients(self, targets: Iterable[str], *, client_id: str | None,
                   assignee: str | None = None) -> list[str]:
        """Member ids the targets name for this client and step, each once, in order.

        ``assignee`` and ``manager`` that resolve to nobody (an unassigned step, no manager
        role) and ``person:`` ids outside the team are left out: there is no one to tell.
        """
        out: list[str] = []
        for target in targets:
            if target == "assignee":
                found = [assignee] if assignee else []
            elif target == "manager":
                manager = self.manager_for(client_id)
                found = [manager] if manager else []
            elif target.startswith("role:"):
                found = self.members_for(target.removeprefix("role:"), client_id)[:1]
            else:
                found = [target.removeprefix("person:")]
            out += [m for m in found if m not in out and self.member(m) is not None]
        return out

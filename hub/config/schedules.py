"""``config/schedules.yaml``: which clients get which recurring playbook, and when.

::

    schedules:
      - name: maintenance-managed            # optional; defaults to the playbook id
        playbook: monthly-maintenance
        every: monthly on day 1 at 09:00     # or rrule: / cron:; default: the playbook's
        timezone: Europe/London              # optional; default: each client's calendar zone
        clients: {tag: managed-services}     # all | [acme, globex] | {tag: ...}
        catch_up: latest                     # all | latest | none (after downtime)
        inputs: {has_servers: true}          # launch inputs (optional)

Recurrence forms are described in :mod:`hub.core.recurrence`. ``clients: all`` means every
non-provisional client in the client directory; a list names hub client keys; ``tag:`` picks
the directory's clients with that tag. Each occurrence launches at most once per client (the
run's origin is ``scheduler/schedule/<client>@<occurrence>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.config.yamlio import read_yaml, validation_error
from hub.core.recurrence import CatchUp, Recurrence


class ClientTag(BaseModel):
    """``clients: {tag: managed-services}``: the directory's clients with this tag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str = Field(min_length=1, description="A client tag from the client directory.")


class ScheduleEntry(BaseModel):
    """One recurring launch: a playbook, when, for which clients, with which inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", pattern=r"^$|^[a-z0-9][a-z0-9_.-]*$", max_length=40,
                      description="Name shown by `msphub schedules`; defaults to the playbook id.")
    playbook: str = Field(description="Playbook id.")
    every: str | None = Field(default=None, description="Friendly form, e.g. "
                              "'first Monday of each quarter at 08:00' (or any accepted form).")
    rrule: str | None = Field(default=None, description="RFC 5545 RRULE, e.g. "
                              "'FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9'.")
    cron: str | None = Field(default=None, description="Five-field cron, e.g. '0 9 1 * *'.")
    timezone: str | None = Field(default=None, description="IANA zone the rule follows; default: "
                                 "each client's calendar time zone.")
    clients: Literal["all"] | list[str] | ClientTag = Field(
        description="'all' (non-provisional directory clients), a list of hub client keys, "
        "or {tag: <tag>}.")
    catch_up: CatchUp = Field(default=CatchUp.LATEST, description="After downtime: 'all' missed "
                              "occurrences, only the 'latest', or 'none'.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Launch inputs.")

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            Recurrence.parse(value)
        return value

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str | None) -> str | None:
        if value is not None:
            Recurrence.rrule(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            Recurrence.cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {value!r}; use a name such as "
                                 "Europe/London or America/New_York") from None
        return value

    @field_validator("clients", mode="before")
    @classmethod
    def _client_keys(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleEntry:
        given = [k for k in ("every", "rrule", "cron") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of every, rrule or cron, not {' and '.join(given)}")
        return self

    @property
    def label(self) -> str:
        """The schedule's name (the playbook id unless it has one)."""
        return self.name or self.playbook

    def recurrence(self, playbook_schedule: str | None) -> Recurrence:
        """The rule this entry follows (its own, else the playbook's ``schedule:``).

        Raises:
            ValueError: neither says when.
        """
        if self.rrule is not None:
            return Recurrence.rrule(self.rrule)
        if self.cron is not None:
            return Recurrence.cron(self.cron)
        text = self.every or playbook_schedule
        if not text:
            raise ValueError(f"schedule '{self.label}' has no rule")
        return Recurrence.parse(text)

    def describe_clients(self) -> str:
        """'all', 'tag:x' or the listed keys, for tables."""
        if isinstance(self.clients, ClientTag):
            return f"tag: {self.clients.tag}"
        return "all" if self.clients == "all" else ", ".join(self.clients)


def load_schedules(path: Path, playbook_ids: set[str],
                   schedule_of: dict[str, str | None]) -> list[ScheduleEntry]:
    """Load ``config/schedules.yaml`` (missing file: no recurring launches).

    Raises:
        ConfigError: naming the file, line and key (unknown playbook, no rule, bad rule,
            two schedules with one name).
    """
    if not path.exists():
        return []
    doc = read_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict) or set(data) - {"schedules"}:
        raise doc.error("expected a top-level 'schedules:' list")
    entries: list[ScheduleEntry] = []
    names: set[str] = set()
    for i, raw in enumerate(data.get("schedules") or []):
        try:
            entry = ScheduleEntry.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(doc, exc, ("schedules", i)) from exc
        if entry.playbook not in playbook_ids:
            raise doc.error(f"unknown playbook '{entry.playbook}'", ("schedules", i, "playbook"))
        if not (entry.every or entry.rrule or entry.cron or schedule_of.get(entry.playbook)):
            raise doc.error(f"playbook '{entry.playbook}' has no schedule; add 'every:', "
                            "'rrule:' or 'cron:'", ("schedules", i, "playbook"))
        if entry.label in names:
            where = "name" if entry.name else "playbook"
            raise doc.error(f"two schedules are called '{entry.label}'; give each a 'name:'",
                            ("schedules", i, where))
        names.add(entry.label)
        entries.append(entry)
    return entries

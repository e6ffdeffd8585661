"""Recurring launches: playbooks that run on a schedule for a list of clients.

Schedule rules (a playbook's ``schedule:`` or an entry's ``every:``)::

    daily at 08:00
    weekly on mon at 09:00
    monthly on day 1 at 09:00        (day 1-28)
    quarterly on day 1 at 09:00      (January, April, July, October)

``config/schedules.yaml`` says for which clients::

    schedules:
      - playbook: monthly-maintenance
        clients: [ACME, "19300"]     # client ids as the PSA knows them, or "all"
        inputs: {has_servers: true}  # launch inputs for these clients (optional)

Each occurrence launches at most once per client (the run's origin is
``scheduler/schedule/<client>@<local date>``), so the job is safe to run every minute
and catches up after downtime with the latest occurrence only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select

from hub.context import HubContext
from hub.errors import HubError
from hub.runs import Origin
from hub.schedule_rule import ScheduleRule
from hub.store.db import transaction
from hub.store.models import Client
from hub.yamlio import read_yaml, validation_error

log = structlog.get_logger()
class ScheduleEntry(BaseModel):
    """Which clients get a recurring playbook."""

    model_config = ConfigDict(extra="forbid")

    playbook: str = Field(description="Playbook id.")
    every: str | None = Field(default=None, description="Override the playbook's schedule.")
    clients: list[str] | Literal["all"] = Field(
        description="Client ids, or 'all' for every client the hub knows.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Launch inputs.")

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            ScheduleRule.parse(value)
        return value

    @field_validator("clients", mode="before")
    @classmethod
    def _client_ids(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


def load_schedules(path: Path, playbook_ids: set[str],
                   schedule_of: dict[str, str | None]) -> list[ScheduleEntry]:
    """Load ``config/schedules.yaml`` (missing file: no recurring launches).

    Raises:
        ConfigError: naming the file, line and key (unknown playbook, no schedule, bad rule).
    """
    if not path.exists():
        return []
    doc = read_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict) or set(data) - {"schedules"}:
        raise doc.error("expected a top-level 'schedules:' list")
    entries: list[ScheduleEntry] = []
    for i, raw in enumerate(data.get("schedules") or []):
        try:
            entry = ScheduleEntry.model_validate(raw)
        except ValidationError as exc:
            raise validation_error(doc, exc, ("schedules", i)) from exc
        if entry.playbook not in playbook_ids:
            raise doc.error(f"unknown playbook '{entry.playbook}'", ("schedules", i, "playbook"))
        if not (entry.every or schedule_of.get(entry.playbook)):
            raise doc.error(f"playbook '{entry.playbook}' has no schedule; add 'every:'",
                            ("schedules", i, "playbook"))
        entries.append(entry)
    return entries


def launch_due(ctx: HubContext, entries: list[ScheduleEntry]) -> list[int]:
    """Launch every occurrence that is due and not yet launched; returns the new run ids."""
    now = ctx.clock()
    library = ctx.playbooks()
    launched: list[int] = []
    for entry in entries:
        if entry.playbook not in library:
            continue
        playbook = library.get(entry.playbook)
        rule = ScheduleRule.parse(entry.every or playbook.schedule or "")
        for client in _clients(ctx, entry):
            calendar = ctx.calendars.get(ctx.team.calendar_for(client)) or ctx.calendars.get(
                "default")
            tz = ZoneInfo(calendar.timezone if calendar else "UTC")
            when = rule.last_occurrence(now, tz)
            origin = Origin("scheduler", "schedule",
                            f"{client}@{when.astimezone(tz).date().isoformat()}")
            try:
                with transaction(ctx.sessions) as session:
                    if ctx.runs.find_by_origin(session, origin, playbook.id) is not None:
                        continue
                    run = ctx.runs.launch(session, playbook.id, client=client,
                                          inputs=entry.inputs, by="scheduler", origin=origin)
                    launched.append(run.id)
            except (HubError, ValueError) as exc:
                log.error("scheduled_launch_failed", playbook=playbook.id, client=client,
                          reason=str(exc))
    if launched:
        log.info("scheduled_runs_launched", count=len(launched))
    return launched


def _clients(ctx: HubContext, entry: ScheduleEntry) -> list[str]:
    if entry.clients != "all":
        return list(entry.clients)
    with ctx.sessions() as session:
        return list(session.execute(select(Client.key).order_by(Client.key)).scalars())


def check(ctx: HubContext) -> list[ScheduleEntry]:
    """Load the schedules for this hub (for start-up and the periodic job)."""
    library = ctx.playbooks()
    return load_schedules(ctx.settings.config_dir / "schedules.yaml",
                          {p.id for p in library}, {p.id: p.schedule for p in library})



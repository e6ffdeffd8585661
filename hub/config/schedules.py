"""``config/schedules.yaml``: which clients get which recurring playbook.

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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.config.yamlio import read_yaml, validation_error
from hub.core.recurrence import ScheduleRule


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

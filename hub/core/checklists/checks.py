"""Verification checks: what a playbook step can ask the client's RMM to prove, and the pure
evaluation of a check over the devices the RMM listed (no I/O, no clock: ``now`` is passed).

```yaml
- id: deploy-rmm-agent
  check:                        # one check, or a list that must all hold
    kind: agents_online         # agents_online | no_critical_patches | backup_recent
    min_devices: 1              #   | antivirus_healthy
    seen_within: 24h            # agents_online only: a device seen this recently counts
```

A check holds when the client's linked RMM sites list at least ``min_devices`` devices and
every one of them meets it. A fact the vendor does not report is *unknown*, which never
meets a check: the missing list says so, so nobody mistakes silence for proof.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|minutes?|h|hours?|d|days?)\s*$")
_UNIT = {"m": 60, "h": 3600, "d": 86400}
MAX_SHOWN = 20  # devices named in one missing list or evidence text
MAX_SNAPSHOT = 2000  # devices per check kept in the evidence snapshot (the rest counted)


def parse_duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``2 days`` → timedelta (a check's look-back window).

    Raises:
        ValueError: not a whole number of minutes, hours or days.
    """
    match = _DURATION.match(text)
    if not match or int(match[1]) <= 0:
        raise ValueError(f"invalid duration {text!r}; use e.g. 30m, 24h or 2 days")
    return timedelta(seconds=int(match[1]) * _UNIT[match[2][0]])


class DeviceView(Protocol):
    """The device facts a check reads (``connectors.base.DeviceFacts`` has them)."""

    @property
    def id(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def hostname(self) -> str | None: ...
    @property
    def online(self) -> bool | None: ...
    @property
    def last_seen(self) -> datetime | None: ...
    @property
    def patches_pending_critical(self) -> int | None: ...
    @property
    def av_active(self) -> bool | None: ...
    @property
    def av_up_to_date(self) -> bool | None: ...
    @property
    def last_backup_ok_at(self) -> datetime | None: ...


class _Check(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_devices: int = Field(
        default=1, ge=0, le=100_000,
        description="At least this many devices must be listed for the client's RMM sites "
        "(a client with no devices proves nothing).")

    @property
    def facts(self) -> frozenset[str]:
        """The device facts this check reads (vendors skip reports nobody needs)."""
        return frozenset()

    @abstractmethod
    def judge(self, device: DeviceView, now: datetime) -> tuple[bool, str]:
        """(meets the check, what was seen) for one device."""


def _window(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


class AgentsOnline(_Check):
    """Every device has an agent that is online (or was seen within ``seen_within``)."""

    kind: Literal["agents_online"]
    seen_within: str | None = Field(
        default=None, description="A device last seen this recently also counts (e.g. 24h); "
        "vendors that report no online flag (N-central) need it.")

    @field_validator("seen_within")
    @classmethod
    def _seen(cls, value: str | None) -> str | None:
        return _window(value)

    @property
    def facts(self) -> frozenset[str]:
        return frozenset({"online"})

    def judge(self, device: DeviceView, now: datetime) -> tuple[bool, str]:
        if device.online is True:
            return True, "online"
        window = parse_duration(self.seen_within) if self.seen_within else None
        if window is not None and device.last_seen is not None \
                and now - device.last_seen <= window:
            return True, f"seen {_when(device.last_seen)}"
        if device.online is False:
            return False, f"agent offline (last seen {_when(device.last_seen)})"
        return False, "online status unknown (the RMM does not report it)"


class NoCriticalPatches(_Check):
    """No device has a critical patch pending."""

    kind: Literal["no_critical_patches"]

    @property
    def facts(self) -> frozenset[str]:
        return frozenset({"patches"})

    def judge(self, device: DeviceView, now: datetime) -> tuple[bool, str]:
        pending = device.patches_pending_critical
        if pending is None:
            return False, "patch status unknown (no patch policy or data)"
        if pending:
            return False, f"{pending} critical patch(es) pending"
        return True, "no critical patches pending"


class BackupRecent(_Check):
    """Every device's last successful backup is within ``within``."""

    kind: Literal["backup_recent"]
    within: str = Field(default="24h", description="How recent the last good backup must be.")

    @field_validator("within")
    @classmethod
    def _within(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def facts(self) -> frozenset[str]:
        return frozenset({"backup"})

    def judge(self, device: DeviceView, now: datetime) -> tuple[bool, str]:
        last = device.last_backup_ok_at
        if last is None:
            return False, "no successful backup reported"
        if now - last > parse_duration(self.within):
            return False, f"last good backup {_when(last)}, older than {self.within}"
        return True, f"last good backup {_when(last)}"


class AntivirusHealthy(_Check):
    """Every device runs antivirus with current definitions."""

    kind: Literal["antivirus_healthy"]

    @property
    def facts(self) -> frozenset[str]:
        return frozenset({"antivirus"})

    def judge(self, device: DeviceView, now: datetime) -> tuple[bool, str]:
        if device.av_active is False:
            return False, "antivirus not running"
        if device.av_active is None:
            return False, "antivirus status unknown"
        if device.av_up_to_date is False:
            return False, "antivirus definitions out of date"
        if device.av_up_to_date is None:
            return False, "antivirus definition status unknown"
        return True, "antivirus running, up to date"


Check = Annotated[AgentsOnline | NoCriticalPatches | BackupRecent | AntivirusHealthy,
                  Field(discriminator="kind")]


def _one_or_many(value: Any) -> Any:
    """``check:`` takes one check (a mapping) or a list of checks that must all hold."""
    if value is None:
        return ()
    return [value] if isinstance(value, dict) else value


Checks = Annotated[tuple[Check, ...], BeforeValidator(
    _one_or_many, json_schema_input_type=Check | list[Check] | None)]
KINDS = ("agents_online", "no_critical_patches", "backup_recent", "antivirus_healthy")


def facts_of(checks: Sequence[_Check]) -> frozenset[str]:
    """Every device fact these checks read."""
    out: frozenset[str] = frozenset()
    for check in checks:
        out |= check.facts
    return out


@dataclass(frozen=True)
class DeviceResult:
    """What one check saw on one device."""

    id: str
    hostname: str | None
    site: str
    ok: bool
    seen: str

    @property
    def name(self) -> str:
        """The hostname, else the vendor's device id."""
        return self.hostname or self.id


@dataclass(frozen=True)
class CheckResult:
    """One check over the client's devices."""

    kind: str
    holds: bool
    devices: tuple[DeviceResult, ...]
    problem: str | None = None  # too few devices

    def missing(self) -> list[str]:
        """Why the check does not hold, one line per device (bounded)."""
        lines = [self.problem] if self.problem else []
        failing = [d for d in self.devices if not d.ok]
        lines += [f"{self.kind}: {d.name}: {d.seen}" for d in failing[:MAX_SHOWN]]
        if len(failing) > MAX_SHOWN:
            lines.append(f"{self.kind}: … and {len(failing) - MAX_SHOWN} more devices")
        return lines


@dataclass(frozen=True)
class Verdict:
    """All of a step's checks at one moment: whether they hold, what is still missing and
    the evidence snapshot (which devices, what values, when)."""

    results: tuple[CheckResult, ...]
    checked_at: datetime

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.results)

    def missing(self) -> list[str]:
        """Every reason the step's checks do not hold yet (empty when they hold)."""
        return [line for r in self.results for line in r.missing()]

    def evidence(self) -> str:
        """The evidence text a ticked step records (and its ticket note shows)."""
        parts = []
        for r in self.results:
            names = ", ".join(f"{d.name} ({d.seen})" for d in r.devices[:MAX_SHOWN])
            more = f", … {len(r.devices) - MAX_SHOWN} more" if len(r.devices) > MAX_SHOWN \
                else ""
            parts.append(f"{r.kind}: {len(r.devices)}/{len(r.devices)} devices — "
                         f"{names}{more}")
        return f"RMM check at {_when(self.checked_at)}: " + "; ".join(parts)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready record of the check: every device and value, and when."""
        return {
            "checked_at": self.checked_at.isoformat(), "holds": self.holds,
            "checks": [{"kind": r.kind, "holds": r.holds, "problem": r.problem,
                        "device_count": len(r.devices),
                        "devices": [{"id": d.id, "hostname": d.hostname, "site": d.site,
                                     "ok": d.ok, "seen": d.seen}
                                    for d in r.devices[:MAX_SNAPSHOT]]}
                       for r in self.results],
        }


def evaluate(checks: Sequence[AgentsOnline | NoCriticalPatches | BackupRecent
                              | AntivirusHealthy],
             devices: Sequence[DeviceView], now: datetime) -> Verdict:
    """Judge every check over the devices of the client's RMM sites, at ``now``."""
    ordered = sorted(devices, key=lambda d: ((d.hostname or "").lower(), d.id))
    results = []
    for check in checks:
        seen = tuple(DeviceResult(d.id, d.hostname, d.site, *check.judge(d, now))
                     for d in ordered)
        problem = None
        if len(seen) < check.min_devices:
            problem = (f"{check.kind}: {len(seen)} device(s) listed for the client's RMM "
                       f"sites, at least {check.min_devices} expected")
        results.append(CheckResult(check.kind, problem is None and all(d.ok for d in seen),
                                   seen, problem))
    return Verdict(tuple(results), now)

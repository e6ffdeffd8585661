"""Backup, antivirus and patch status from NinjaOne's query reports, as small typed records.

Each parser is pure (a report row → a frozen record, ``None`` for a row it cannot read);
:class:`~connectors.ninjaone.connector.NinjaOneConnector` fetches the rows
(``/v2/backup/jobs``, ``/v2/queries/antivirus-status``, ``/v2/queries/os-patch-installs``,
``/v2/queries/os-patches``, ``/v2/queries/device-health``) with a device filter. Value
sets the spec leaves open (``jobStatus``, ``productState``, ``definitionStatus``) are kept
as NinjaOne sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from connectors.base import MalformedPayload
from connectors.ninjaone.events import parse_seconds

Record = dict[str, Any]
T = TypeVar("T")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any, limit: int = 300) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _time(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_seconds(value, field)
    except MalformedPayload:
        return None


@dataclass(frozen=True)
class BackupJob:
    """One backup job run (``/v2/backup/jobs``)."""

    job_id: str
    device_id: int | None
    organization_id: int | None
    status: str | None
    plan_name: str | None
    plan_type: str | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def succeeded(self) -> bool:
        """NinjaOne's wording for a finished job is assumed to be ``COMPLETED`` [I]."""
        return (self.status or "").upper() in ("COMPLETED", "SUCCEEDED", "SUCCESS")


@dataclass(frozen=True)
class AntivirusStatus:
    """The antivirus product state of one device (``/v2/queries/antivirus-status``)."""

    device_id: int
    product_name: str | None
    product_state: str | None
    definition_status: str | None
    version: str | None
    collected_at: datetime | None


@dataclass(frozen=True)
class PatchRecord:
    """An OS patch: installed or failed (``os-patch-installs``), or pending (``os-patches``)."""

    device_id: int
    patch_id: str | None
    name: str | None
    kb_number: str | None
    status: str | None
    severity: str | None
    type: str | None
    at: datetime | None  # installedAt for installs, the report's timestamp otherwise


@dataclass(frozen=True)
class DeviceHealth:
    """One device's health roll-up (``/v2/queries/device-health``): patch, threat and AV
    counts NinjaOne computes (``health_status``: UNKNOWN, HEALTHY, NEEDS_ATTENTION,
    UNHEALTHY)."""

    device_id: int
    health_status: str | None
    offline: bool | None
    pending_os_patches: int | None
    failed_os_patches: int | None
    pending_software_patches: int | None
    failed_software_patches: int | None
    active_threats: int | None
    quarantined_threats: int | None
    av_install_status: str | None
    alert_count: int | None
    pending_reboot_reason: str | None

    @property
    def patched(self) -> bool:
        """No OS patch pending or failed (both counts known and zero)."""
        return self.pending_os_patches == 0 and self.failed_os_patches == 0


def device_health(row: Record) -> DeviceHealth | None:
    """A ``DeviceHealthSummary`` row, or None without a ``deviceId``."""
    device_id = _int(row.get("deviceId"))
    if device_id is None:
        return None
    offline = row.get("offline")
    return DeviceHealth(
        device_id=device_id, health_status=_str(row.get("healthStatus"), 40),
        offline=offline if isinstance(offline, bool) else None,
        pending_os_patches=_int(row.get("pendingOSPatchesCount")),
        failed_os_patches=_int(row.get("failedOSPatchesCount")),
        pending_software_patches=_int(row.get("pendingSoftwarePatchesCount")),
        failed_software_patches=_int(row.get("failedSoftwarePatchesCount")),
        active_threats=_int(row.get("activeThreatsCount")),
        quarantined_threats=_int(row.get("quarantinedThreatsCount")),
        av_install_status=_str(row.get("avInstallStatus"), 40),
        alert_count=_int(row.get("alertCount")),
        pending_reboot_reason=_str(row.get("pendingRebootReason"), 200))


def backup_job(row: Record) -> BackupJob | None:
    """A ``BackupJob`` row, or None without a ``jobId``."""
    job_id = _str(row.get("jobId"), 100)
    if job_id is None:
        return None
    return BackupJob(job_id=job_id, device_id=_int(row.get("deviceId")),
                     organization_id=_int(row.get("organizationId")),
                     status=_str(row.get("jobStatus"), 60),
                     plan_name=_str(row.get("planName")), plan_type=_str(row.get("planType"), 60),
                     started_at=_time(row.get("jobStartTime"), "jobStartTime"),
                     ended_at=_time(row.get("jobEndTime"), "jobEndTime"))


def antivirus_status(row: Record) -> AntivirusStatus | None:
    """A ``DeviceAntivirusStatus`` row, or None without a ``deviceId``."""
    device_id = _int(row.get("deviceId"))
    if device_id is None:
        return None
    return AntivirusStatus(device_id=device_id, product_name=_str(row.get("productName")),
                           product_state=_str(row.get("productState"), 100),
                           definition_status=_str(row.get("definitionStatus"), 100),
                           version=_str(row.get("version"), 100),
                           collected_at=_time(row.get("timestamp"), "timestamp"))


def patch_record(row: Record) -> PatchRecord | None:
    """An OS patch row of either report, or None without a ``deviceId``."""
    device_id = _int(row.get("deviceId"))
    if device_id is None:
        return None
    when = row.get("installedAt") if row.get("installedAt") not in (None, "") \
        else row.get("timestamp")
    ident = row.get("id")
    return PatchRecord(device_id=device_id,
                       patch_id=str(ident)[:100] if isinstance(ident, str | int) else None,
                       name=_str(row.get("name")), kb_number=_str(row.get("kbNumber"), 40),
                       status=_str(row.get("status"), 40), severity=_str(row.get("severity"), 40),
                       type=_str(row.get("type"), 60), at=_time(when, "installedAt"))


def rows(records: Iterable[Record], parse: Callable[[Record], T | None]) -> list[T]:
    """Parse report rows, dropping the unreadable ones."""
    return [r for r in (parse(row) for row in records) if r is not None]

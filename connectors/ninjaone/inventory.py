"""NinjaOne devices and status reports → :class:`~connectors.inventory.DeviceFacts` (pure).

Per organization: the device listing (``/v2/devices-detailed``: ``offline``,
``lastContact``) and, only for the facts asked for, one report each: pending OS patches
(``/v2/queries/os-patches``: rows whose ``severity`` is critical and whose ``status`` is not
``REJECTED`` count; a device without such rows has none), antivirus status
(``/v2/queries/antivirus-status``: ``productState`` ON/ENABLED/ACTIVE/RUNNING is active,
OFF/DISABLED/SNOOZED/EXPIRED is not; ``definitionStatus`` UP_TO_DATE / OUT_OF_DATE; no row:
unknown) and backup jobs (``/v2/backup/jobs``: the newest end of a succeeded job). The
value sets are not in the spec (assumed from the sandbox and the research notes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from connectors.base import MalformedPayload
from connectors.inventory import DeviceFacts
from connectors.ninjaone.events import parse_seconds
from connectors.ninjaone.status import AntivirusStatus, BackupJob, PatchRecord

Record = dict[str, Any]
_ACTIVE = frozenset({"ON", "ENABLED", "ACTIVE", "RUNNING"})
_INACTIVE = frozenset({"OFF", "DISABLED", "SNOOZED", "EXPIRED", "NOT_RUNNING"})
_CURRENT = {"UP_TO_DATE": True, "OUT_OF_DATE": False}


def device_facts(device: Record, organization: str) -> DeviceFacts | None:
    """The online facts of one device record; None without a usable id."""
    ident = device.get("id")
    if not isinstance(ident, int) or isinstance(ident, bool):
        return None
    try:
        seen = parse_seconds(device["lastContact"], "lastContact") \
            if device.get("lastContact") not in (None, "") else None
    except MalformedPayload:
        seen = None
    offline = device.get("offline")
    name = device.get("systemName") or device.get("displayName") or device.get("dnsName")
    return DeviceFacts(id=str(ident), site=str(device.get("organizationId") or organization),
                       hostname=name[:200] if isinstance(name, str) and name else None,
                       online=(not offline) if isinstance(offline, bool) else None,
                       last_seen=seen)


def with_patches(facts: DeviceFacts, rows: Iterable[PatchRecord]) -> DeviceFacts:
    """Count the device's critical pending patches (none listed: zero)."""
    count = sum(1 for r in rows if str(r.device_id) == facts.id
                and (r.severity or "").upper() == "CRITICAL"
                and (r.status or "").upper() != "REJECTED")
    return replace(facts, patches_pending_critical=count)


def with_antivirus(facts: DeviceFacts, rows: Iterable[AntivirusStatus]) -> DeviceFacts:
    """The device's antivirus state (no row: unknown)."""
    row = next((r for r in rows if str(r.device_id) == facts.id), None)
    if row is None:
        return facts
    state = (row.product_state or "").upper()
    active = True if state in _ACTIVE else False if state in _INACTIVE else None
    return replace(facts, av_active=active,
                   av_up_to_date=_CURRENT.get((row.definition_status or "").upper()))


def with_backups(facts: DeviceFacts, jobs: Iterable[BackupJob]) -> DeviceFacts:
    """The newest end of a succeeded backup job of the device (none: unknown)."""
    ends: list[datetime] = [j.ended_at for j in jobs if str(j.device_id) == facts.id
                            and j.succeeded and j.ended_at is not None]
    return replace(facts, last_backup_ok_at=max(ends)) if ends else facts

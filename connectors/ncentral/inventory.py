"""N-central device records → :class:`~connectors.inventory.DeviceFacts` (pure).

The REST ``Device`` record (``GET /api/org-units/{id}/devices``) carries no online flag,
patch, antivirus or backup status: only ``lastApplianceCheckinTime`` (ISO text), read as
``last_seen``. Every other fact stays ``None`` (unknown), so of the checks only
``agents_online`` with ``seen_within`` can hold on N-central.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.inventory import DeviceFacts

Record = dict[str, Any]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def device_facts(device: Record, customer: str) -> DeviceFacts | None:
    """The facts of one device record; None without a device id."""
    ident = device.get("deviceId")
    if isinstance(ident, bool) or not isinstance(ident, int | str) or not str(ident).strip():
        return None
    name = device.get("longName") or device.get("discoveredName")
    owner = device.get("customerId")
    return DeviceFacts(id=str(ident).strip(), site=str(owner) if owner else customer,
                       hostname=name.strip()[:200] if isinstance(name, str) and name.strip()
                       else None,
                       last_seen=_time(device.get("lastApplianceCheckinTime")))

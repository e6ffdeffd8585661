"""The vendor-neutral device inventory RMM connectors offer to verification checks.

A hub step can declare a check ("every device has an online agent", "no critical patches
pending" …); the hub lists the devices of the client's linked RMM sites through
:class:`DeviceInventory` — one listing per site, never one request per device — and judges
the normalised :class:`DeviceFacts` (``hub/core/checklists/checks.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class DeviceFacts:
    """One RMM device as verification checks read it, whatever the vendor.

    ``site`` is the id of the record the device belongs to, as client links name it (a
    Datto site uid, a NinjaOne organization id, an N-central customer id). Every fact is
    ``None`` where the vendor does not say (a check then reports it unknown, never met).
    """

    id: str
    site: str
    hostname: str | None = None
    online: bool | None = None
    last_seen: datetime | None = None
    patches_pending_critical: int | None = None
    av_active: bool | None = None
    av_up_to_date: bool | None = None
    last_backup_ok_at: datetime | None = None


class DeviceFact(StrEnum):
    """The facts a caller of :meth:`DeviceInventory.device_facts` may ask for; vendors
    that need an extra listing for one (NinjaOne's reports) skip it when not asked."""

    ONLINE = "online"
    PATCHES = "patches"
    ANTIVIRUS = "antivirus"
    BACKUP = "backup"


ALL_DEVICE_FACTS = frozenset(DeviceFact)


@runtime_checkable
class DeviceInventory(Protocol):
    """Optional (RMMs): the devices of some sites with normalised facts, for verification
    checks. One listing per site (and per fact report), never one request per device."""

    def device_facts(self, site_ids: Sequence[str], *,
                     want: frozenset[DeviceFact] = ALL_DEVICE_FACTS) -> list[DeviceFacts]:
        """Every device of these sites (``ClientRef.id`` values of the vendor's link type).

        Raises:
            NotFound: a site does not exist (any more).
        """

"""Datto device records → the vendor-neutral :class:`~connectors.base.DeviceFacts` (pure).

Read from the ``Device`` schema of Datto's spec: ``online``, ``lastSeen``,
``antivirus.antivirusStatus`` (``RunningAndUpToDate``, ``RunningAndNotUpToDate``,
``NotRunning``, ``NotDetected``) and ``patchManagement`` (``patchStatus``,
``patchesApprovedPending``). Datto says nothing of patch severity: every approved patch
still pending counts as a pending critical patch (the stricter reading), and
``NoPolicy``/``NoData`` leave it unknown. Devices carry no backup fields: backups are
proven by backup alerts, so ``last_backup_ok_at`` stays ``None``.
"""

from __future__ import annotations

from typing import Any

from connectors.base import MalformedPayload
from connectors.datto_rmm.events import parse_millis
from connectors.inventory import DeviceFacts

Record = dict[str, Any]
_AV_ACTIVE = {"RunningAndUpToDate": True, "RunningAndNotUpToDate": True,
              "NotRunning": False, "NotDetected": False}
_AV_CURRENT = {"RunningAndUpToDate": True, "RunningAndNotUpToDate": False}
_NO_PATCH_DATA = frozenset({"NoPolicy", "NoData"})


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _dict(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def device_facts(device: Record, site_uid: str) -> DeviceFacts | None:
    """The facts of one device record; None for a deleted device or one without a uid."""
    uid = device.get("uid")
    if not isinstance(uid, str) or not uid or device.get("deleted") is True:
        return None
    try:
        seen = parse_millis(device["lastSeen"], "lastSeen") \
            if device.get("lastSeen") not in (None, "") else None
    except MalformedPayload:
        seen = None
    av = _dict(device.get("antivirus"))
    av_status = av.get("antivirusStatus")
    patch = _dict(device.get("patchManagement"))
    pending = None if patch.get("patchStatus") in _NO_PATCH_DATA \
        else _count(patch.get("patchesApprovedPending"))
    hostname = device.get("hostname")
    return DeviceFacts(
        id=uid, site=str(device.get("siteUid") or site_uid),
        hostname=hostname[:200] if isinstance(hostname, str) and hostname else None,
        online=_bool(device.get("online")), last_seen=seen,
        patches_pending_critical=pending,
        av_active=_AV_ACTIVE.get(av_status) if isinstance(av_status, str) else None,
        av_up_to_date=_AV_CURRENT.get(av_status) if isinstance(av_status, str) else None,
    )

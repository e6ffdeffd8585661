"""NinjaOne payloads → normalized Events (pure functions, no I/O).

* An **activity** (``/v2/activities``, and the webhook body) is one fact with an int64
  ``id``; its ``activityType`` + ``statusCode`` say what happened (:data:`OUTCOMES`):
  a problem (``CONDITION``/``TRIGGERED``, a failed backup job or patch install, a threat)
  becomes ``alert.raised``; its clearing or a proof of success (``RESET``, a completed
  backup job, an installed patch, a cleaned threat) ``alert.resolved``; ``NODE_CREATED`` /
  ``NODE_DELETED`` become ``device.added`` / ``device.removed``. Other activities (logins,
  scripts, scans started …) produce no event. The dedupe key is ``activity:{id}``: an
  activity never changes, so the webhook and the poll that see it collide in the inbox.
* ``alert.category`` uses the vocabulary of the shipped mappings (``backup``, ``patch``,
  ``av``, ``security``, ``online``, ``disk``, ``performance`` …, else ``other``).
* The client is the device's **organization**:
  ``ClientRef(type="organization", id=<organizationId>, name=<organization name>)``.
  Activities carry only ``deviceId``; the connector adds the device record (from the API).
* Timestamps are epoch **seconds** with a fraction (``1742391675.556``).

Webhook bodies (one activity each) are parsed in ``webhooks.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors import payload as bounded
from connectors.base import MalformedPayload
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "ninjaone"
Record = dict[str, Any]
UUID = re.compile(r"^[0-9A-Fa-f-]{8,64}$")


@dataclass(frozen=True)
class Outcome:
    """What one activity means: the event kind and, for alerts, the category."""

    kind: EventKind
    category: str | None = None


_RAISED, _RESOLVED = EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED


def _table(kind: EventKind, category: str, *codes: str) -> dict[str, Outcome]:
    return {code: Outcome(kind, category) for code in codes}


# statusCode → outcome (statusCodes are unique across activityTypes in the spec's enum).
OUTCOMES: dict[str, Outcome] = {
    **_table(_RESOLVED, "backup",
             "NINJA_BACKUP_BACKUPJOB_COMPLETED", "CLOUDBERRY_BACKUPJOB_SUCCEEDED",
             "NINJA_BACKUP_INTEGRITY_CHECK_COMPLETED"),
    **_table(_RAISED, "backup",
             "NINJA_BACKUP_BACKUPJOB_FAILED", "NINJA_BACKUP_BACKUPJOB_COMPLETED_WITH_WARNING",
             "NINJA_BACKUP_INTEGRITY_CHECK_FAILED", "NINJA_BACKUP_BACKUP_NAS_ACCESS_FAILED",
             "CLOUDBERRY_BACKUPJOB_FAILED", "CLOUDBERRY_BACKUPJOB_COMPLETED_WITH_WARNING",
             "SHADOWPROTECT_BACKUPJOB_FAILED", "SHADOWPROTECT_BACKUPJOB_ABORTED"),
    **_table(_RESOLVED, "patch",
             "PATCH_MANAGEMENT_INSTALLED", "PATCH_MANAGEMENT_APPLY_PATCH_COMPLETED",
             "SOFTWARE_PATCH_MANAGEMENT_INSTALLED",
             "SOFTWARE_PATCH_MANAGEMENT_APPLY_PATCH_COMPLETED"),
    **_table(_RAISED, "patch",
             "PATCH_MANAGEMENT_INSTALL_FAILED", "PATCH_MANAGEMENT_FAILURE",
             "SOFTWARE_PATCH_MANAGEMENT_INSTALL_FAILED"),
    **_table(_RESOLVED, "av",
             "BITDEFENDER_INSTALLATION_SUCCEEDED", "VIPREAV_INSTALLED",
             "SENTINEL_ONE_AGENT_INSTALLATION_SUCCEEDED"),
    **_table(_RAISED, "av",
             "BITDEFENDER_INSTALLATION_FAILED", "VIPREAV_INSTALL_FAILED",
             "WEBROOT_INSTALL_FAILED", "SENTINEL_ONE_AGENT_INSTALLATION_FAILED",
             "BITDEFENDER_DISABLED", "VIPREAV_DISABLED", "SENTINEL_ONE_AGENT_DISABLED",
             "VIPREAV_SCAN_THREAT_QUARANTINED", "VIPREAV_ACTIVEPROTECTION_THREAT_QUARANTINED",
             "WEBROOT_THREAT_DETECTED", "BDAS_BITDEFENDER_THREAT_PRESENT",
             "BDAS_BITDEFENDER_THREAT_QUARANTINED", "BDAS_BITDEFENDER_THREAT_BLOCKED",
             "GRAVITYZONE_THREAT_PRESENT", "GRAVITYZONE_THREAT_QUARANTINED",
             "GRAVITYZONE_THREAT_BLOCKED"),
    **_table(_RAISED, "security",
             "SENTINEL_ONE_THREAT_DETECTED", "CROWDSTRIKE_THREAT_DETECTED",
             "SENTINEL_ONE_MITIGATION_FAILED", "SENTINEL_ONE_REMEDIATION_FAILED"),
    **_table(_RESOLVED, "security",
             "SENTINEL_ONE_MITIGATION_SUCCEEDED", "SENTINEL_ONE_REMEDIATION_SUCCEEDED",
             "BDAS_BITDEFENDER_THREAT_CLEANED", "BDAS_BITDEFENDER_THREAT_DELETED",
             "GRAVITYZONE_THREAT_CLEANED", "GRAVITYZONE_THREAT_DELETED",
             "VIPREAV_QUARANTINED_THREAT_REMOVED"),
    "NODE_CREATED": Outcome(EventKind.DEVICE_ADDED),
    "NODE_DELETED": Outcome(EventKind.DEVICE_REMOVED),
}
# A condition's category from its machine-readable code (``data.message.code``, e.g.
# ``agent_cond_eventlog2``), source name or an alert's ``sourceType``, by keyword.
_KEYWORDS = (("backup", "backup"), ("shadowprotect", "backup"), ("imagemanager", "backup"),
             ("patch", "patch"), ("antivirus", "av"), ("av_", "av"), ("threat", "security"),
             ("ransom", "security"), ("bitlocker", "security"), ("offline", "online"),
             ("disk", "disk"), ("volume", "disk"), ("service", "service"),
             ("eventlog", "eventlog"), ("event_log", "eventlog"), ("process", "process"),
             ("cpu", "performance"), ("memory", "performance"), ("script", "script"),
             ("software", "software"), ("ping", "ping"), ("snmp", "snmp"),
             ("reboot", "other"))
_SEVERITY = {"CRITICAL": "Critical", "MAJOR": "High", "MODERATE": "Moderate",
             "MINOR": "Low"}
_PRIORITY = {"HIGH": "High", "MEDIUM": "Moderate", "LOW": "Low"}
_RANK = {"Critical": 4, "High": 3, "Moderate": 2, "Low": 1}


def keyword_category(*texts: Any) -> str:
    """The ``alert.category`` the first matching keyword in ``texts`` names, else other."""
    for text in texts:
        if not isinstance(text, str) or not text:
            continue
        low = text.lower()
        found = next((cat for word, cat in _KEYWORDS if word in low), None)
        if found:
            return found
    return "other"


def _text(value: Any, limit: int = 2000) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _dict(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_seconds(value: Any, field: str) -> datetime:
    """Epoch seconds (a float, a numeric string, or ISO text) as aware UTC.

    Raises:
        MalformedPayload: missing, a bool, not a number, or outside the sane window.
    """
    if isinstance(value, bool) or value is None or value == "":
        raise MalformedPayload(f"field '{field}' is missing or not a timestamp")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise MalformedPayload(f"field '{field}' is not a timestamp") from None
            return bounded.in_window(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC),
                                     field)
    if not isinstance(value, int | float) or not abs(value) < 1e13:
        raise MalformedPayload(f"field '{field}' is not epoch seconds")
    try:
        when = datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload(f"field '{field}' is outside the supported dates") from None
    return bounded.in_window(when, field)


def format_time(value: datetime) -> str:
    """Fixed-width UTC with milliseconds (``2024-07-16T12:00:00.000Z``)."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def activity_id(activity: Record) -> int:
    """The activity's int64 ``id``."""
    value = _int(activity.get("id"))
    if value is None or not 0 < value <= bounded.MAX_INT:
        raise MalformedPayload("field 'id' is missing or not an activity id")
    return value


def outcome(activity: Record) -> Outcome | None:
    """What the activity means for the hub, or None when it is not a fact we act on."""
    status = activity.get("statusCode")
    if not isinstance(status, str):
        return None
    if activity.get("activityType") == "CONDITION" and status in ("TRIGGERED", "RESET"):
        data = _dict(_dict(activity.get("data")).get("message"))
        cat = keyword_category(data.get("code"), activity.get("sourceName"),
                               activity.get("message"))
        return Outcome(_RAISED if status == "TRIGGERED" else _RESOLVED, cat)
    found = OUTCOMES.get(status)
    if found is not None and found.kind is _RESOLVED and activity.get("activityResult") in (
            "FAILURE", "UNCOMPLETED"):
        return Outcome(_RAISED, found.category)  # a "completed" job that says it failed
    return found


def priority(record: Record) -> str | None:
    """The higher of ``severity`` and ``priority`` in the mappings' words (Critical … Low)."""
    words = [w for w in (_SEVERITY.get(str(record.get("severity"))),
                         _PRIORITY.get(str(record.get("priority")))) if w]
    return max(words, key=lambda w: _RANK[w]) if words else None


def organization_ref(device: Record | None) -> ClientRef | None:
    """The device's organization as ``ClientRef(type="organization")``."""
    if not device:
        return None
    org_id = _int(device.get("organizationId"))
    if org_id is None:
        return None
    org = _dict(_dict(device.get("references")).get("organization"))
    return ClientRef(id=str(org_id), name=_text(org.get("name"), 300), type="organization")


def device_summary(device: Record | None, device_id: int | None) -> Record:
    """``{id, hostname, type}`` of a device record (or only its id)."""
    device = device or {}
    ident = _int(device.get("id")) or device_id
    hostname = _text(device.get("systemName"), 300) or _text(device.get("displayName"), 300) \
        or _text(device.get("dnsName"), 300)
    return {"id": str(ident) if ident is not None else None, "hostname": hostname,
            "type": _text(device.get("nodeClass"), 60)}


def _message(activity: Record, cat: str, hostname: str | None) -> str:
    text = _text(activity.get("message"))
    if text:
        return text.strip()
    where = f" on {hostname}" if hostname else ""
    return f"{cat} {activity.get('status') or activity.get('statusCode') or ''!s}{where}"


def normalize_activity(activity: Record, result: Outcome, device: Record | None) -> Record:
    """The ``alert`` fields mappings read, shaped like Datto RMM's (README)."""
    ident = activity_id(activity)
    series = activity.get("seriesUid")
    cat = result.category or "other"
    summary = device_summary(device, _int(activity.get("deviceId")))
    org = organization_ref(device)
    resolved = result.kind is _RESOLVED
    when = format_time(parse_seconds(activity.get("activityTime"), "activityTime"))
    params = _dict(_dict(_dict(activity.get("data")).get("message")).get("params"))
    return {
        "id": series if isinstance(series, str) and UUID.fullmatch(series) else f"activity-{ident}",
        "activity_id": str(ident),
        "category": cat,
        "type": f"{_text(activity.get('activityType'), 60)}/"
                f"{_text(activity.get('statusCode'), 100)}",
        "priority": priority(activity),
        "severity": _text(activity.get("severity"), 20),
        "message": _message(activity, cat, summary["hostname"]),
        "status": _text(activity.get("status"), 200),
        "result": _text(activity.get("activityResult"), 20),
        "source_name": _text(activity.get("sourceName"), 300),
        "resolved": resolved,
        "resolved_by": None,
        "raised_at": None if resolved else when,
        "resolved_at": when if resolved else None,
        "muted": False,
        "ticket_number": None,
        "context": params,
        "device": {"id": summary["id"], "hostname": summary["hostname"]},
        "organization": {"id": org.id if org else None, "name": org.name if org else None},
    }


def activity_event(source: str, activity: Record, device: Record | None) -> Event | None:
    """The event an activity proves (None when it is not one we act on).

    ``device`` is the API's record of ``activity.deviceId`` (its organization is the
    event's client); None leaves the event without a client.

    Raises:
        MalformedPayload: ``id`` or ``activityTime`` is missing or unreadable.
    """
    result = outcome(activity)
    if result is None:
        return None
    ident = activity_id(activity)
    occurred = parse_seconds(activity.get("activityTime"), "activityTime")
    client = organization_ref(device)
    if result.kind in (EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED):
        summary = device_summary(device, _int(activity.get("deviceId")))
        if summary["id"] is None:
            return None
        return Event(source=source, vendor=VENDOR, kind=result.kind,
                     dedupe_key=f"activity:{ident}", occurred_at=occurred, client=client,
                     subject=SubjectRef(type="device", id=summary["id"]),
                     data={"device": {**summary, "organization": client.id if client else None},
                           "activity": {"id": str(ident)}},
                     raw=activity)
    data = normalize_activity(activity, result, device)
    subject_type = "activity" if data["id"].startswith("activity-") else "alert"
    return Event(source=source, vendor=VENDOR, kind=result.kind, dedupe_key=f"activity:{ident}",
                 occurred_at=occurred, client=client,
                 subject=SubjectRef(type=subject_type, id=data["id"] if subject_type == "alert"
                                    else str(ident)),
                 data={"alert": data}, raw=activity)


# -- current state: /v2/alerts and directory records -----------------------------------


def alert_record(alert: Record) -> Record:
    """An active alert (``/v2/alerts``) in the ``alert`` shape (``id`` = its seriesUid)."""
    device = _dict(alert.get("device"))
    summary = device_summary(device, _int(alert.get("deviceId")))
    created = alert.get("createTime")
    data = _dict(_dict(alert.get("data")).get("message"))
    cat = keyword_category(alert.get("sourceType"), data.get("code"), alert.get("sourceName"))
    return {
        "id": _text(alert.get("uid"), 100),
        "category": cat,
        "type": _text(alert.get("sourceType"), 100),
        "message": _text(alert.get("message")) or f"{cat} alert",
        "resolved": False,
        "raised_at": format_time(parse_seconds(created, "createTime"))
        if created not in (None, "") else None,
        "psa_ticket_id": alert.get("psaTicketId"),
        "device": {"id": summary["id"], "hostname": summary["hostname"]},
    }


def organization_record(org: Record, *, psa_field: str | None = None) -> Record:
    """An organization as the client directory sees it (with a PSA company hint)."""
    fields = _dict(org.get("fields"))
    hint = fields.get(psa_field) if psa_field else None
    return {
        "type": "organization",
        "id": str(org["id"]) if _int(org.get("id")) is not None else None,
        "name": _text(org.get("name"), 300),
        "description": _text(org.get("description")),
        "approval_mode": _text(org.get("nodeApprovalMode"), 40),
        "tags": [t for t in org.get("tags") or [] if isinstance(t, str)][:50]
        if isinstance(org.get("tags"), list) else [],
        "psa_company_id": str(hint)[:100] if isinstance(hint, str | int) and hint != "" else None,
    }

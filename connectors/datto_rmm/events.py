"""Datto RMM payloads → normalized Events (pure functions, no I/O).

* An alert from the API (``Alert``) becomes ``alert.raised`` (open) or ``alert.resolved``
  (``resolved: true``). Dedupe keys are ``alert:{alertUid}:raised`` and
  ``alert:{alertUid}:resolved``: an alert is raised once and resolved once (Datto never
  reopens one; a recurrence is a new alert with a new UID), so a webhook and a poll that
  see the same change collide in the inbox.
* Timestamps (``timestamp``, ``resolvedOn``) are epoch **milliseconds** on the wire
  although the spec types them ``date-time``; ISO strings are accepted too.
* The monitor type is ``alertContext["@class"]`` (there is no ``alertType``); it is kept
  as ``alert.type`` and normalised to ``alert.category`` (:data:`CATEGORIES`).
* A webhook body is admin-authored from Datto's ``[variables]`` and unsigned: it only
  names an alert (``alertUid``), so it becomes one *thin* event that the connector
  re-reads from the API before anything acts on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors import payload as bounded
from connectors.base import THIN, MalformedPayload
from connectors.datto_rmm.config import UID
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "datto-rmm"
Record = dict[str, Any]

# alertContext @class → alert.category, in the vocabulary the shipped mappings read
# (backup, patch, av, security, online, disk, ...). Classes are from Datto's spec and from
# live-captured contexts (vendor notes §1.3); unknown classes fall back by keyword.
CATEGORIES: dict[str, str] = {
    "backup_management_ctx": "backup",
    "patch_ctx": "patch",
    "antivirus_ctx": "av",
    "endpoint_security_windows_defender_ctx": "av",
    "sec_center_ctx": "av",
    "sec_management_ctx": "security",
    "endpoint_security_threat_ctx": "security",
    "ransomware_ctx": "security",
    "online_offline_status_ctx": "online",
    "perf_disk_usage_ctx": "disk",
    "disk_health_ctx": "disk",
    "srvc_status_ctx": "service",
    "srvc_resource_usage_ctx": "service",
    "eventlog_ctx": "eventlog",
    "process_status_ctx": "process",
    "process_resource_usage_ctx": "process",
    "perf_resource_usage_ctx": "performance",
    "perf_mon_ctx": "performance",
    "comp_script_ctx": "script",
    "sw_action_ctx": "software",
    "ping_ctx": "ping",
    "custom_snmp_ctx": "snmp",
    "snmp_probe_ctx": "snmp",
    "wmi_ctx": "wmi",
    "fs_object_ctx": "filesystem",
    "network_monitor_ctx": "network",
    "fan_ctx": "hardware",
    "psu_ctx": "hardware",
    "temperature_ctx": "hardware",
    "printer_ctx": "hardware",
}
_KEYWORDS = (("backup", "backup"), ("patch", "patch"), ("antivirus", "av"),
             ("ransom", "security"), ("security", "security"), ("online", "online"),
             ("disk", "disk"), ("srvc", "service"), ("eventlog", "eventlog"))
_RAISED = frozenset({"triggered", "raised", "detected", "open", "opened"})
_RESOLVED = frozenset({"resolved", "cleared", "closed"})


def category(ctx_class: str | None) -> str:
    """The normalized ``alert.category`` of an ``alertContext`` ``@class``."""
    if not ctx_class:
        return "other"
    name = ctx_class.strip().lower()
    if name in CATEGORIES:
        return CATEGORIES[name]
    return next((cat for word, cat in _KEYWORDS if word in name), "other")


def parse_millis(value: Any, field: str) -> datetime:
    """An epoch-milliseconds number (or numeric string, or ISO text) as aware UTC.

    Raises:
        MalformedPayload: missing, a bool, not a number/ISO text, or outside the sane window.
    """
    if isinstance(value, bool) or value is None or value == "":
        raise MalformedPayload(f"field '{field}' is missing or not a timestamp")
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 16:
            value = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise MalformedPayload(f"field '{field}' is not a timestamp") from None
            return bounded.in_window(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC),
                                     field)
    if not isinstance(value, int | float) or not abs(value) < 1e16:
        raise MalformedPayload(f"field '{field}' is not epoch milliseconds")
    try:
        when = datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload(f"field '{field}' is outside the supported dates") from None
    return bounded.in_window(when, field)


def format_time(value: datetime) -> str:
    """Fixed-width UTC with milliseconds (``2024-07-16T12:00:00.000Z``); sorts in time order."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_position(value: str, field: str = "cursor.position") -> datetime:
    """A cursor position written by :func:`format_time`."""
    return parse_millis(value, field)


def _text(value: Any, limit: int = 2000) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _dict(value: Any) -> Record:
    return value if isinstance(value, dict) else {}


def alert_uid(alert: Record) -> str:
    """``alertUid``, checked to be a Datto UID."""
    uid = alert.get("alertUid")
    if not isinstance(uid, str) or not UID.fullmatch(uid):
        raise MalformedPayload("field 'alertUid' is missing or not a UID")
    return uid


def raised_at(alert: Record) -> datetime:
    """When the alert was raised (``timestamp``)."""
    return parse_millis(alert.get("timestamp"), "timestamp")


def resolved_at(alert: Record) -> datetime:
    """When the alert was resolved (``resolvedOn``; ``timestamp`` when Datto left it null)."""
    value = alert.get("resolvedOn")
    return parse_millis(value, "resolvedOn") if value not in (None, "") else raised_at(alert)


def change_time(alert: Record) -> datetime:
    """The vendor timestamp of the alert's latest state: resolution, else raising."""
    return resolved_at(alert) if alert.get("resolved") else raised_at(alert)


def site_ref(alert: Record) -> ClientRef | None:
    """The alert's Datto site as ``ClientRef(type="site")`` (admins link sites to clients)."""
    source = _dict(alert.get("alertSourceInfo"))
    uid = source.get("siteUid")
    if not isinstance(uid, str) or not uid:
        return None
    return ClientRef(id=uid[:200], name=_text(source.get("siteName"), 300), type="site")


def _message(alert: Record, cat: str, hostname: str | None) -> str:
    """``diagnostics`` when Datto filled it, else a short description from the context."""
    diagnostics = _text(alert.get("diagnostics"))
    if diagnostics:
        return diagnostics.strip()
    ctx = _dict(alert.get("alertContext"))
    detail = ", ".join(f"{k} {v}" for k, v in ctx.items()
                       if k != "@class" and isinstance(v, str | int | float) and v != "")[:300]
    where = f" on {hostname}" if hostname else ""
    return f"{cat} alert{where}" + (f": {detail}" if detail else "")


def normalize_alert(alert: Record) -> Record:
    """The ``alert`` fields mappings read (``alert.category``, ``alert.device.hostname``...)."""
    ctx = _dict(alert.get("alertContext"))
    ctx_class = ctx.get("@class") if isinstance(ctx.get("@class"), str) else None
    cat = category(ctx_class)
    source = _dict(alert.get("alertSourceInfo"))
    hostname = _text(source.get("deviceName"), 300)
    resolved = bool(alert.get("resolved"))
    return {
        "id": alert_uid(alert),
        "category": cat,
        "type": ctx_class,
        "priority": _text(alert.get("priority"), 40),
        "message": _message(alert, cat, hostname),
        "resolved": resolved,
        "resolved_by": _text(alert.get("resolvedBy"), 300),
        "raised_at": format_time(raised_at(alert)),
        "resolved_at": format_time(resolved_at(alert)) if resolved else None,
        "muted": bool(alert.get("muted")),
        "ticket_number": _text(alert.get("ticketNumber"), 100),
        "context": {k: v for k, v in ctx.items() if k != "@class"},
        "device": {"id": _text(source.get("deviceUid"), 200), "hostname": hostname},
        "site": {"id": _text(source.get("siteUid"), 200),
                 "name": _text(source.get("siteName"), 300)},
    }


def alert_event(source: str, alert: Record) -> Event:
    """The event for an alert's current state: raised while open, resolved once resolved.

    Raises:
        MalformedPayload: ``alertUid`` or a needed timestamp is missing or unreadable.
    """
    data = normalize_alert(alert)
    resolved = data["resolved"]
    return Event(
        source=source,
        vendor=VENDOR,
        kind=EventKind.ALERT_RESOLVED if resolved else EventKind.ALERT_RAISED,
        dedupe_key=f"alert:{data['id']}:{'resolved' if resolved else 'raised'}",
        occurred_at=resolved_at(alert) if resolved else raised_at(alert),
        client=site_ref(alert),
        subject=SubjectRef(type="alert", id=data["id"]),
        data={"alert": data},
        raw=alert,
    )


def alert_events(source: str, alert: Record) -> list[Event]:
    """Every state change an API alert proves: raised, plus resolved when it is resolved.

    A resolved alert yields both, so a thin "triggered" webhook whose alert resolved before
    we read it still records the raising (its key) and the resolution (a second event).
    """
    current = alert_event(source, alert)
    if current.kind is EventKind.ALERT_RAISED:
        return [current]
    raised = current.model_copy(update={
        "kind": EventKind.ALERT_RAISED, "dedupe_key": f"alert:{current.subject.id}:raised"
        if current.subject else current.dedupe_key, "occurred_at": raised_at(alert)})
    return [raised, current]


def site_record(site: Record) -> Record:
    """A Datto site as the client directory sees it (``autotaskCompanyId``: a PSA hint)."""
    status = _dict(site.get("devicesStatus"))
    return {
        "type": "site",
        "id": _text(site.get("uid"), 200),
        "name": _text(site.get("name"), 300),
        "description": _text(site.get("description")),
        "psa_company_id": str(site["autotaskCompanyId"])[:100]
        if site.get("autotaskCompanyId") not in (None, "") else None,
        "psa_company_name": _text(site.get("autotaskCompanyName"), 300),
        "devices": status.get("numberOfDevices"),
    }


# -- webhooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookAlert:
    """A parsed webhook body: which alert it names and what the admin's template claims."""

    alert_uid: str
    state: str | None  # "raised" | "resolved" | None (the template sends no event)
    site_uid: str | None
    site_name: str | None
    raw: Record
    digest: str


def _uid_field(raw: Record, *names: str) -> str | None:
    for name in names:
        value = raw.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_webhook(body: bytes) -> WebhookAlert:
    """Parse an alert webhook body (bounded); only ``alertUid`` is required.

    Accepted names follow the recommended template (README): ``alertUid`` (or
    ``alert_uid``), ``event`` (``triggered``/``resolved``), ``siteUid``, ``siteName``.

    Raises:
        MalformedPayload: not a JSON object, no usable ``alertUid``, or an unknown ``event``.
    """
    raw = bounded.loads(body)
    if not isinstance(raw, dict):
        raise MalformedPayload("body is not a JSON object")
    uid = _uid_field(raw, "alertUid", "alert_uid", "alertuid")
    if uid is None or not UID.fullmatch(uid):
        raise MalformedPayload("field 'alertUid' is missing or not a Datto UID")
    event = raw.get("event")
    state: str | None = None
    if isinstance(event, str) and event.strip():
        word = event.strip().lower()
        if word in _RAISED:
            state = "raised"
        elif word in _RESOLVED:
            state = "resolved"
        else:
            raise MalformedPayload("field 'event' must be 'triggered' or 'resolved'")
    site = _uid_field(raw, "siteUid", "site_uid")
    return WebhookAlert(
        alert_uid=uid, state=state,
        site_uid=site if site and UID.fullmatch(site) else None,
        site_name=_text(raw.get("siteName"), 300), raw=raw,
        digest=hashlib.sha256(body).hexdigest()[:16],
    )


def webhook_event(source: str, hook: WebhookAlert, *, received_at: datetime) -> Event:
    """One thin event naming the alert; nothing acts on it before ``enrich`` re-reads it.

    With a claimed state the key is the alert's own (``alert:{uid}:{state}``), so the
    webhook and the reconciliation poll collide; without one it is per delivery. The
    body's site is not trusted either: the event names no client until ``enrich``.
    """
    if hook.state is None:
        kind, key = EventKind.ALERT_RAISED, f"alert:{hook.alert_uid}:webhook:{hook.digest}"
    else:
        kind = EventKind.ALERT_RESOLVED if hook.state == "resolved" else EventKind.ALERT_RAISED
        key = f"alert:{hook.alert_uid}:{hook.state}"
    return Event(
        source=source,
        vendor=VENDOR,
        kind=kind,
        dedupe_key=key,
        occurred_at=received_at,
        subject=SubjectRef(type="alert", id=hook.alert_uid),
        data={THIN: True, "webhook": {"state": hook.state, "alert_uid": hook.alert_uid}},
        raw=hook.raw,
    )

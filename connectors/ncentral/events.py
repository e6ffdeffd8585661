"""N-central payloads → normalized Events (pure functions, no I/O).

* An active issue (``ActiveIssue``: ``taskId`` — the monitoring task, N-central's primary
  key — ``orgUnitId, deviceId, serviceName, serviceType, notificationState`` and
  ``_extra {deviceName, transitionTime, customerTree, …}``) that was not active at the
  previous poll becomes ``alert.raised``; one that is no longer listed becomes
  ``alert.resolved`` (N-central has no push and no "cleared" listing: the connector diffs).
* An issue *occurrence* is ``taskId`` plus its **marker**: ``_extra.transitionTime`` (when
  the task entered its failing state) as ``20240402T161533432Z``. The task of one monitor
  fails and clears many times; the marker tells the occurrences apart, and is the same in
  every poll that sees one, so keys are ``issue:{taskId}@{marker}:raised|resolved`` and a
  re-poll after a crash (or a cursor lost) collides in the inbox instead of doubling.
* ``alert.category`` comes from ``serviceName`` (the monitor's name, e.g. "Backup Manager",
  "Patch Status v2", "AV Defender Status") by keyword, in the vocabulary Datto RMM uses;
  per-server overrides come from the config.
* Timestamps are ISO-8601 (``2024-04-02T16:15:33.432Z``); N-central also writes
  ``2024-02-28 15:40:42.407`` with no zone, read as UTC (assumption, see README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors import payload as bounded
from connectors.base import MalformedPayload
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "ncentral"
Record = dict[str, Any]

# serviceName keywords → alert.category, first match wins (exact names are tried first).
# Names are N-central monitor/service names seen in its docs, spec examples and client code.
EXACT: dict[str, str] = {
    "backup manager": "backup", "cove data protection": "backup", "msp backup": "backup",
    "patch status": "patch", "patch status v2": "patch", "windows update": "patch",
    "av defender status": "av", "av status": "av", "security manager": "av",
    "windows defender": "av", "edr status": "security", "windows uac status": "security",
    "agent status": "online", "connectivity": "online", "disk": "disk",
    "disk space": "disk", "cpu": "performance", "memory": "performance",
}
KEYWORDS: tuple[tuple[str, str], ...] = (
    ("backup", "backup"), ("cove", "backup"), ("veeam", "backup"), ("replication", "backup"),
    ("patch", "patch"), ("windows update", "patch"),
    ("antivirus", "av"), ("anti-virus", "av"), ("av defender", "av"), ("defender", "av"),
    ("av ", "av"), ("malware", "av"),
    ("edr", "security"), ("ransom", "security"), ("threat", "security"),
    ("firewall", "security"), ("security", "security"), ("uac", "security"),
    ("agent", "online"), ("connectivity", "online"), ("heartbeat", "online"),
    ("offline", "online"), ("online", "online"),
    ("disk", "disk"), ("volume", "disk"), ("smart", "disk"),
    ("event log", "eventlog"), ("eventlog", "eventlog"),
    ("process", "process"), ("service", "service"),
    ("cpu", "performance"), ("memory", "performance"), ("performance", "performance"),
    ("script", "script"), ("software", "software"), ("ping", "ping"), ("snmp", "snmp"),
    ("wmi", "wmi"), ("file", "filesystem"), ("netpath", "network"), ("network", "network"),
    ("bandwidth", "network"), ("interface", "network"),
    ("fan", "hardware"), ("temperature", "hardware"), ("power supply", "hardware"),
    ("printer", "hardware"), ("hardware", "hardware"),
)
_SPACED = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)$")


def category(service_name: str | None, overrides: dict[str, str] | None = None) -> str:
    """The normalized ``alert.category`` of a monitor's ``serviceName``."""
    if not service_name:
        return "other"
    name = " ".join(service_name.strip().lower().split())
    if overrides and name in overrides:
        return overrides[name]
    if name in EXACT:
        return EXACT[name]
    padded = name + " "
    return next((cat for word, cat in KEYWORDS if word in padded), "other")


def parse_time(value: Any, field: str) -> datetime:
    """An N-central timestamp (ISO-8601 with a zone, or zone-less = UTC) as aware UTC.

    Raises:
        MalformedPayload: missing, not text, unreadable, or outside the sane window.
    """
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayload(f"field '{field}' is missing or not a timestamp")
    text = value.strip()
    spaced = _SPACED.match(text)
    if spaced:
        text = f"{spaced.group(1)}T{spaced.group(2)}"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"field '{field}' is not a timestamp") from None
    return bounded.in_window(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), field)


def format_time(value: datetime) -> str:
    """Fixed-width UTC with milliseconds (``2024-07-16T12:00:00.000Z``); sorts in time order."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def marker(when: datetime) -> str:
    """An occurrence marker from a transition time: ``20240402T161533432Z``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond // 1000:03d}Z"


def _text(value: Any, limit: int = 300) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def _int_id(value: Any) -> int | None:
    """A positive integer id (N-central sends ints; the spec's examples sometimes strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        value = int(value.strip())
    return value if isinstance(value, int) and 0 < value < 10**12 else None


def _extra(issue: Record) -> Record:
    extra = issue.get("_extra")
    return extra if isinstance(extra, dict) else {}


def task_id(issue: Record) -> int:
    """``taskId``, the issue's key.

    Raises:
        MalformedPayload: missing or not a positive integer.
    """
    value = _int_id(issue.get("taskId"))
    if value is None:
        raise MalformedPayload("field 'taskId' is missing or not an id")
    return value


def org_unit_id(record: Record, *names: str) -> int | None:
    """The first of ``names`` that holds a positive integer id."""
    return next((v for v in (_int_id(record.get(n)) for n in names) if v is not None), None)


def transition_time(issue: Record) -> datetime | None:
    """``_extra.transitionTime`` when present and readable, else None."""
    value = _extra(issue).get("transitionTime")
    if value in (None, ""):
        return None
    try:
        return parse_time(value, "_extra.transitionTime")
    except MalformedPayload:
        return None


@dataclass(frozen=True)
class Placement:
    """Where an issue's device sits: its customer (the hub's client) and maybe a site."""

    customer_id: int
    customer_name: str | None
    site_id: int | None = None
    site_name: str | None = None

    def client(self) -> ClientRef:
        """The customer as the event's client: ``ClientRef(type="customer")``."""
        return ClientRef(id=str(self.customer_id), name=self.customer_name, type="customer")


def normalize_issue(issue: Record, *, occurrence: str, placement: Placement,
                    raised_at: datetime, overrides: dict[str, str] | None = None,
                    priorities: dict[int, str] | None = None) -> Record:
    """The ``alert`` fields mappings read, for an issue occurrence seen active.

    ``priorities`` maps ``notificationState`` codes to ``alert.priority`` (the codes are
    undocumented: without a mapping the priority is None and the raw code is kept).
    """
    task = task_id(issue)
    extra = _extra(issue)
    service = _text(issue.get("serviceName"), 200)
    device_name = _text(extra.get("deviceName"))
    cat = category(service, overrides)
    where = f" on {device_name}" if device_name else ""
    state = issue.get("notificationState")
    state = state if isinstance(state, int) and not isinstance(state, bool) else None
    return {
        "id": f"{task}@{occurrence}",
        "task_id": str(task),
        "occurrence": occurrence,
        "category": cat,
        "type": service,
        "priority": (priorities or {}).get(state) if state is not None else None,
        "notification_state": state,
        "message": f"{service or 'monitor'} issue{where}",
        "resolved": False,
        "resolved_by": None,
        "raised_at": format_time(raised_at),
        "resolved_at": None,
        "muted": False,
        "ticket_number": _text(extra.get("psaTicketDetails"), 100),
        "context": {"service_id": issue.get("serviceId"), "service_type":
                    _text(issue.get("serviceType"), 100),
                    "service_item_id": issue.get("serviceItemId"),
                    "org_unit_id": issue.get("orgUnitId")},
        "device": {"id": str(issue["deviceId"]) if _int_id(issue.get("deviceId")) else None,
                   "hostname": device_name},
        "site": {"id": str(placement.site_id) if placement.site_id else None,
                 "name": placement.site_name},
        "customer": {"id": str(placement.customer_id), "name": placement.customer_name},
    }


def _client(alert: Record) -> ClientRef:
    customer = alert["customer"]
    return ClientRef(id=customer["id"], name=customer.get("name"), type="customer")


def raised_event(source: str, alert: Record, raw: Record) -> Event:
    """``alert.raised`` for a newly active issue occurrence (``normalize_issue`` output)."""
    return Event(
        source=source, vendor=VENDOR, kind=EventKind.ALERT_RAISED,
        dedupe_key=f"issue:{alert['id']}:raised",
        occurred_at=parse_time(alert["raised_at"], "raised_at"),
        client=_client(alert), subject=SubjectRef(type="alert", id=alert["id"]),
        data={"alert": alert}, raw=raw,
    )


def resolved_event(source: str, alert: Record, *, observed_at: datetime) -> Event:
    """``alert.resolved`` for a remembered occurrence no longer listed as active.

    N-central reports no clearing time: ``resolved_at`` (and ``occurred_at``) is the
    poll that first saw it gone, on N-central's clock.
    """
    raised = parse_time(alert["raised_at"], "raised_at")
    observed_at = max(observed_at.astimezone(UTC), raised)  # N-central's Date has seconds only
    seen = format_time(observed_at)
    cleared = {**alert, "resolved": True, "resolved_at": seen,
               "message": alert.get("message", "issue").replace(" issue", " cleared", 1)}
    return Event(
        source=source, vendor=VENDOR, kind=EventKind.ALERT_RESOLVED,
        dedupe_key=f"issue:{alert['id']}:resolved",
        occurred_at=observed_at, client=_client(alert),
        subject=SubjectRef(type="alert", id=alert["id"]),
        data={"alert": cleared}, raw={"taskId": alert.get("task_id"), "cleared": True,
                                      "observedAt": seen},
    )


# -- directory records -------------------------------------------------------------------


def customer_record(customer: Record) -> Record:
    """A customer as the client directory sees it (link it: type ``customer``)."""
    cid = org_unit_id(customer, "customerId", "orgUnitId")
    return {
        "type": "customer",
        "id": str(cid) if cid else None,
        "name": _text(customer.get("customerName")),
        "parent_id": str(p) if (p := org_unit_id(customer, "parentId")) else None,
        "external_id": _text(customer.get("externalId"), 100),
    }


def site_record(site: Record) -> Record:
    """A site with its customer (``parent_id``): sites roll up to customers in events."""
    sid = org_unit_id(site, "siteId", "orgUnitId")
    return {
        "type": "site",
        "id": str(sid) if sid else None,
        "name": _text(site.get("siteName")),
        "customer_id": str(p) if (p := org_unit_id(site, "parentId", "customerId")) else None,
        "external_id": _text(site.get("externalId"), 100),
    }


# -- devices -----------------------------------------------------------------------------


def device_data(device: Record) -> Record:
    """The ``device`` fields mappings read, from a ``Device`` record.

    Raises:
        MalformedPayload: ``deviceId`` is missing or not an id.
    """
    did = _int_id(device.get("deviceId"))
    if did is None:
        raise MalformedPayload("field 'deviceId' is missing or not an id")
    customer = _int_id(device.get("customerId"))
    site = _int_id(device.get("siteId"))
    return {
        "id": str(did),
        "hostname": _text(device.get("longName")) or _text(device.get("discoveredName")),
        "type": _text(device.get("deviceClass"), 100),
        "os": _text(device.get("supportedOs") or device.get("supportedOS"), 200),
        "probe": device.get("isProbe") is True,
        "last_checkin": _text(device.get("lastApplianceCheckinTime"), 40),
        "org_unit_id": str(o) if (o := _int_id(device.get("orgUnitId"))) else None,
        "site": {"id": str(site) if site and site != customer else None,
                 "name": _text(device.get("siteName")) if site and site != customer else None},
        "customer": {"id": str(customer) if customer else None,
                     "name": _text(device.get("customerName"))},
    }


def device_event(source: str, data: Record, kind: EventKind, *, observed_at: datetime,
                 raw: Record) -> Event:
    """``device.added`` (first listed) or ``device.removed`` (no longer listed).

    N-central's ``Device`` has no creation time: ``occurred_at`` is the poll that noticed.
    Keys are ``device:{deviceId}:added|removed`` (device ids are not reused).
    """
    word = "added" if kind is EventKind.DEVICE_ADDED else "removed"
    customer = data.get("customer") or {}
    client = ClientRef(id=customer["id"], name=customer.get("name"), type="customer") \
        if customer.get("id") else None
    return Event(
        source=source, vendor=VENDOR, kind=kind, dedupe_key=f"device:{data['id']}:{word}",
        occurred_at=observed_at.astimezone(UTC), client=client,
        subject=SubjectRef(type="device", id=data["id"]), data={"device": data}, raw=raw,
    )

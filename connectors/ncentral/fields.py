"""The normalised fields N-central events carry (``events.normalize_issue``,
``events.device_data``), for the catalog."""

from __future__ import annotations

from connectors.fields import FieldSpec, Row, for_kinds
from hub.core.events import EventKind

ALERT: tuple[Row, ...] = (
    ("alert.id", "string", "<taskId>@<occurrence>", "55500@20240501T120000000Z"),
    ("alert.task_id", "string", "The monitor task id", "55500"),
    ("alert.occurrence", "string", "When this occurrence began", "20240501T120000000Z"),
    ("alert.category", "string",
     "From the monitor's name: backup, patch, av, security, online, disk, ... or other",
     "backup"),
    ("alert.type", "string", "The monitor's serviceName", "Backup Manager"),
    ("alert.priority", "string", "From the source's priorities map; else empty", None),
    ("alert.notification_state", "integer", "N-central's raw notification state", 5),
    ("alert.message", "string", "What happened", "Backup Manager issue on ACME-FS01"),
    ("alert.resolved", "boolean", "True once the issue is no longer active", False),
    ("alert.resolved_by", "string", "Always empty", None),
    ("alert.raised_at", "datetime", "When raised (UTC)", "2024-05-01T12:00:00.000Z"),
    ("alert.resolved_at", "datetime", "When seen cleared (UTC)", None),
    ("alert.muted", "boolean", "Always false", False),
    ("alert.ticket_number", "string", "The PSA ticket N-central opened, if any", None),
    ("alert.context", "map", "Service ids of the issue (open)", {"service_id": 412}),
    ("alert.device.id", "string", "Device id", "987600"),
    ("alert.device.hostname", "string", "Device name", "ACME-FS01"),
    ("alert.site.id", "string", "Site id, when the device sits in a site", None),
    ("alert.site.name", "string", "Site name", None),
    ("alert.customer.id", "string", "Customer id", "100"),
    ("alert.customer.name", "string", "Customer name", "Acme Ltd"),
)
DEVICE: tuple[Row, ...] = (
    ("device.id", "string", "Device id", "987600"),
    ("device.hostname", "string", "Device name", "ACME-PC01"),
    ("device.type", "string", "Device class", "Workstations - Windows"),
    ("device.os", "string", "Operating system", "Microsoft Windows 11 Pro"),
    ("device.probe", "boolean", "True for a probe", False),
    ("device.last_checkin", "datetime", "Last appliance check-in", "2024-05-01T12:00:00Z"),
    ("device.org_unit_id", "string", "The org unit it belongs to", "100"),
    ("device.site.id", "string", "Site id, when in a site", None),
    ("device.site.name", "string", "Site name", None),
    ("device.customer.id", "string", "Customer id", "100"),
    ("device.customer.name", "string", "Customer name", "Acme Ltd"),
)

FIELDS: dict[EventKind, tuple[FieldSpec, ...]] = {
    **for_kinds((EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED), ALERT),
    **for_kinds((EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED), DEVICE),
}

"""The normalised fields NinjaOne events carry (``events.activity_event``), for the catalog."""

from __future__ import annotations

from connectors.fields import FieldSpec, Row, for_kinds
from hub.core.events import EventKind

ALERT: tuple[Row, ...] = (
    ("alert.id", "string", "The activity series (a condition's or backup job's uid)",
     "f0aabf28-e997-4662-9bc6-c5cef28b4099"),
    ("alert.activity_id", "string", "Activity id", "170006"),
    ("alert.category", "string",
     "backup, patch, av, security, online, disk, performance, ... or other", "backup"),
    ("alert.type", "string", "<activityType>/<statusCode>",
     "NINJA_BACKUP/NINJA_BACKUP_BACKUPJOB_COMPLETED"),
    ("alert.priority", "string", "Critical, High, Moderate or Low", "High"),
    ("alert.severity", "string", "NinjaOne's severity", None),
    ("alert.message", "string", "What happened", "Backup job 'Nightly image' completed"),
    ("alert.status", "string", "Activity status text", "Ninja Backup Backupjob Completed"),
    ("alert.result", "string", "Activity result (SUCCESS, FAILURE, ...)", "SUCCESS"),
    ("alert.source_name", "string", "The condition's or job's name", "Nightly image"),
    ("alert.resolved", "boolean", "True for a clearing or a proof of success", True),
    ("alert.resolved_by", "string", "Always empty", None),
    ("alert.raised_at", "datetime", "When raised (alert.raised)", None),
    ("alert.resolved_at", "datetime", "When resolved (alert.resolved)",
     "2024-05-01T12:00:00.000Z"),
    ("alert.muted", "boolean", "Always false", False),
    ("alert.ticket_number", "string", "Always empty", None),
    ("alert.context", "map", "The activity's message parameters (open)", {}),
    ("alert.device.id", "string", "Device id", "1003"),
    ("alert.device.hostname", "string", "Device name", "ACME-FS01"),
    ("alert.organization.id", "string", "Organization id", "1001"),
    ("alert.organization.name", "string", "Organization name", "Acme Ltd"),
)
DEVICE: tuple[Row, ...] = (
    ("device.id", "string", "Device id", "1003"),
    ("device.hostname", "string", "Device name", "ACME-FS01"),
    ("device.type", "string", "Node class", "WINDOWS_SERVER"),
    ("device.organization", "string", "Organization id", "1001"),
    ("activity.id", "string", "The activity that reported it", "170003"),
)

FIELDS: dict[EventKind, tuple[FieldSpec, ...]] = {
    **for_kinds((EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED), ALERT),
    **for_kinds((EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED), DEVICE),
}

"""The normalised fields Datto RMM events carry (``events.normalize_alert``), for the catalog."""

from __future__ import annotations

from connectors.fields import FieldSpec, Row, for_kinds
from hub.core.events import EventKind

ALERT: tuple[Row, ...] = (
    ("alert.id", "string", "Alert UID", "d2d1e56d-e363-4ab9-b6b2-86e1f84ce25a"),
    ("alert.category", "string",
     "Monitor category: backup, patch, av, security, online, disk, service, performance, "
     "... or other", "backup"),
    ("alert.type", "string", "The alert context's @class", "backup_management_ctx"),
    ("alert.priority", "string", "Critical, High, Moderate, Low or Information", "High"),
    ("alert.message", "string", "Diagnostics, else a short description", "Backup failed"),
    ("alert.resolved", "boolean", "True once resolved", False),
    ("alert.resolved_by", "string", "Who resolved it", None),
    ("alert.raised_at", "datetime", "When it was raised (UTC)", "2024-05-01T12:00:00.000Z"),
    ("alert.resolved_at", "datetime", "When it was resolved (UTC)", None),
    ("alert.muted", "boolean", "True when muted in Datto", False),
    ("alert.ticket_number", "string", "The PSA ticket Datto opened for it", None),
    ("alert.context", "map", "The monitor's own details (open: keys vary by monitor)",
     {"errorMessage": "Backup failed"}),
    ("alert.device.id", "string", "Device UID", "2bf1ae58-c6d3-4e04-8ee0-819944af4d43"),
    ("alert.device.hostname", "string", "Device name", "ACME-FS01"),
    ("alert.site.id", "string", "Site UID", "58bcc8dd-d5e0-46fa-a326-89f0676f1614"),
    ("alert.site.name", "string", "Site name", "Acme Ltd"),
)

FIELDS: dict[EventKind, tuple[FieldSpec, ...]] = for_kinds(
    (EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED), ALERT)

"""The normalised fields HaloPSA events carry (``events.normalize_*``), for the catalog."""

from __future__ import annotations

from connectors.fields import FieldSpec, Row, for_kinds
from hub.core.events import EventKind

TICKET: tuple[Row, ...] = (
    ("ticket.id", "integer", "Ticket id", 4821),
    ("ticket.summary", "string", "Ticket summary", "Leaver: Jane Doe"),
    ("ticket.board", "string", "Team name", "Service Desk"),
    ("ticket.type", "string", "Ticket type name", "Leaver"),
    ("ticket.subType", "string", "First category (category_1)", "HR"),
    ("ticket.item", "string", "Second category (category_2)", None),
    ("ticket.status", "string", "Status name", "New"),
    ("ticket.priority", "string", "Priority name, else its number", "3"),
    ("ticket.closed", "boolean", "True once the ticket is closed", False),
    ("ticket.contact.id", "integer", "End user id", 81),
    ("ticket.contact.name", "string", "End user name", "Jane Doe"),
    ("ticket.contact.email", "string", "End user email", "jane@acme.example"),
    ("ticket.company.id", "integer", "Client id", 11),
    ("ticket.company.name", "string", "Client name", "Acme Ltd"),
    ("ticket.site.id", "integer", "Site id", 110),
    ("ticket.site.name", "string", "Site name", "Main"),
    ("ticket.initial_description", "string", "Ticket details", None),
    ("ticket.custom_fields", "map", "Custom fields by label and by name (open)",
     {"Last Day": "2024-05-31"}),
)
AGREEMENT: tuple[Row, ...] = (
    ("agreement.id", "integer", "Client contract id", 301),
    ("agreement.name", "string", "Contract ref", "ACME-MS"),
    ("agreement.type", "string", "Contract type name", "Managed Services"),
    ("agreement.status", "string", "Contract status", "Active"),
    ("agreement.start_date", "date", "Start date", "2024-05-01"),
    ("agreement.end_date", "date", "End date, when set", None),
    ("agreement.cancelled", "boolean", "True once cancelled", False),
    ("agreement.active", "boolean", "Halo's active flag", True),
    ("agreement.expired", "boolean", "Halo's expired flag", False),
    ("agreement.company.id", "integer", "Client id", 11),
    ("agreement.company.name", "string", "Client name", "Acme Ltd"),
    ("agreement.custom_fields", "map", "Custom fields by label and by name (open)", {}),
)

FIELDS: dict[EventKind, tuple[FieldSpec, ...]] = {
    **for_kinds((EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED, EventKind.TICKET_CLOSED),
                TICKET),
    **for_kinds((EventKind.AGREEMENT_CREATED, EventKind.AGREEMENT_UPDATED), AGREEMENT),
}

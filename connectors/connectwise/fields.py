"""The normalised fields ConnectWise events carry (``events.normalize_*``), for the catalog."""

from __future__ import annotations

from connectors.fields import FieldSpec, Row, for_kinds
from hub.core.events import EventKind

TICKET: tuple[Row, ...] = (
    ("ticket.id", "integer", "Ticket number", 1234),
    ("ticket.summary", "string", "Ticket summary line", "Leaver: Jane Doe"),
    ("ticket.board", "string", "Service board name", "Service Desk"),
    ("ticket.type", "string", "Ticket type name", "Leaver"),
    ("ticket.subType", "string", "Ticket subtype name", "Standard"),
    ("ticket.item", "string", "Ticket item name", None),
    ("ticket.status", "string", "Status name", "New"),
    ("ticket.priority", "string", "Priority name", "Priority 3 - Normal"),
    ("ticket.closed", "boolean", "True once the ticket is closed", False),
    ("ticket.contact.id", "integer", "Contact id", 42),
    ("ticket.contact.name", "string", "Contact name", "Jane Doe"),
    ("ticket.contact.email", "string", "Contact email address", "jane@acme.example"),
    ("ticket.company.id", "integer", "Company record id", 250),
    ("ticket.company.identifier", "string", "Company identifier", "ACME"),
    ("ticket.company.name", "string", "Company name", "Acme Ltd"),
    ("ticket.initial_description", "string", "The ticket's first description", None),
    ("ticket.custom_fields", "map", "Custom fields by caption (open: any caption)",
     {"Last Day": "2024-05-31"}),
)
AGREEMENT: tuple[Row, ...] = (
    ("agreement.id", "integer", "Agreement id", 77),
    ("agreement.name", "string", "Agreement name", "Acme managed services"),
    ("agreement.type", "string", "Agreement type name", "Managed Services"),
    ("agreement.status", "string", "Agreement status", "Active"),
    ("agreement.start_date", "date", "Start date", "2024-05-01"),
    ("agreement.end_date", "date", "End date, when set", None),
    ("agreement.cancelled", "boolean", "True once cancelled", False),
    ("agreement.company.id", "integer", "Company record id", 250),
    ("agreement.company.identifier", "string", "Company identifier", "ACME"),
    ("agreement.company.name", "string", "Company name", "Acme Ltd"),
)
COMPANY: tuple[Row, ...] = (
    ("company.id", "integer", "Company record id", 250),
    ("company.identifier", "string", "Company identifier", "ACME"),
    ("company.name", "string", "Company name", "Acme Ltd"),
    ("company.status", "string", "Status name", "Active"),
    ("company.types", "list", "Company type names", ["Client"]),
)

FIELDS: dict[EventKind, tuple[FieldSpec, ...]] = {
    **for_kinds((EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED, EventKind.TICKET_CLOSED),
                TICKET),
    **for_kinds((EventKind.AGREEMENT_CREATED, EventKind.AGREEMENT_UPDATED), AGREEMENT),
    **for_kinds((EventKind.COMPANY_CREATED,), COMPANY),
}

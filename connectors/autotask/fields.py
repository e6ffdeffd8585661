"""The normalised fields Autotask events carry (``events.normalize_*``), for the catalog."""

from __future__ import annotations

from connectors.fields import FieldSpec, Row, for_kinds
from hub.core.events import EventKind

TICKET: tuple[Row, ...] = (
    ("ticket.id", "integer", "Ticket id", 29000004),
    ("ticket.number", "string", "Ticket number", "T20240501.0004"),
    ("ticket.summary", "string", "Ticket title", "Leaver: Jane Doe"),
    ("ticket.board", "string", "Queue name (the same as ticket.queue)", "HR Requests"),
    ("ticket.queue", "string", "Queue name", "HR Requests"),
    ("ticket.type", "string", "Issue type name", "User Management"),
    ("ticket.subType", "string", "Sub-issue type name", "Leaver"),
    ("ticket.status", "string", "Status name", "New"),
    ("ticket.priority", "string", "Priority name", "Medium"),
    ("ticket.ticket_type", "string", "Ticket type name", "Service Request"),
    ("ticket.category", "string", "Ticket category name", "Standard"),
    ("ticket.origin", "string", "Ticket source name", "Phone"),
    ("ticket.item", "string", "Always empty (ConnectWise's item)", None),
    ("ticket.closed", "boolean", "True once the ticket is completed", False),
    ("ticket.contact.id", "integer", "Contact id", 30000001),
    ("ticket.contact.name", "string", "Contact name", "Jane Doe"),
    ("ticket.contact.email", "string", "Contact email address", "jane@acme.example"),
    ("ticket.company.id", "integer", "Company id", 29000003),
    ("ticket.company.identifier", "string", "Always empty (ConnectWise's identifier)", None),
    ("ticket.company.name", "string", "Company name", "Acme Ltd"),
    ("ticket.initial_description", "string", "Ticket description", ""),
    ("ticket.custom_fields", "map", "User-defined fields by name (open)",
     {"Last Day": "2024-05-31"}),
)
AGREEMENT: tuple[Row, ...] = (
    ("agreement.id", "integer", "Contract id", 29000016),
    ("agreement.number", "string", "Contract number", "C29000016"),
    ("agreement.name", "string", "Contract name", "Acme managed services"),
    ("agreement.type", "string", "Contract category, else contract type", "Managed Services"),
    ("agreement.category", "string", "Contract category name", "Managed Services"),
    ("agreement.contract_type", "string", "Contract type name", "Recurring Service"),
    ("agreement.status", "string", "Active or Inactive", "Active"),
    ("agreement.start_date", "date", "Start date", "2024-05-01"),
    ("agreement.end_date", "date", "End date, when set", None),
    ("agreement.cancelled", "boolean", "True when the contract is inactive", False),
    ("agreement.default", "boolean", "True for the company's default contract", False),
    ("agreement.contact.id", "integer", "Contact id", None),
    ("agreement.contact.name", "string", "Contact name", None),
    ("agreement.company.id", "integer", "Company id", 29000003),
    ("agreement.company.identifier", "string", "Always empty", None),
    ("agreement.company.name", "string", "Company name", "Acme Ltd"),
    ("agreement.custom_fields", "map", "User-defined fields by name (open)", {}),
)

FIELDS: dict[EventKind, tuple[FieldSpec, ...]] = {
    **for_kinds((EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED, EventKind.TICKET_CLOSED),
                TICKET),
    **for_kinds((EventKind.AGREEMENT_CREATED, EventKind.AGREEMENT_UPDATED), AGREEMENT),
}

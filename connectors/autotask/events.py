"""Autotask payloads → normalized Events (pure functions, no I/O).

Autotask records carry picklist *values* (``queueID: 29683482``); mappings read names
(``ticket.queue: HR Requests``). The connector resolves the values first and hands the
labels in as :class:`Names`, so everything here stays pure.

Dedupe keys follow the change they describe, so a webhook and a poll that see the same
change collide in the inbox (the same shapes as the ConnectWise connector):

* ``ticket:{id}:created`` / ``agreement:{id}:created``: one per record;
* ``ticket:{id}:closed:{completedDate}``: one per completion;
* ``ticket:{id}:{lastActivityDate}``: one per change marker;
* ``agreement:{id}:state:{digest}``: contracts have no change marker, so an update is
  a new digest of the fields mappings read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors import payload as bounded
from connectors.base import THIN, MalformedPayload
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "autotask"
Record = dict[str, Any]
COMPLETE_STATUS = 5  # Autotask's built-in "Complete" ticket status

# Ticket picklist fields resolved to labels, and the normalized name each gets.
TICKET_PICKLISTS = {
    "queueID": "queue",
    "issueType": "type",
    "subIssueType": "subType",
    "status": "status",
    "priority": "priority",
    "ticketType": "ticket_type",
    "ticketCategory": "category",
    "source": "origin",
}
CONTRACT_PICKLISTS = {"contractType": "contract_type", "contractCategory": "category",
                      "status": "status"}

_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class Names:
    """What the connector looked up for one record: picklist labels by field, the
    company's name and the contact (``id``, ``name``, ``email``)."""

    labels: Mapping[str, str | None] = field(default_factory=dict)
    company_name: str | None = None
    contact: Mapping[str, Any] | None = None


def parse_time(value: Any, field_name: str) -> datetime:
    """Parse an Autotask timestamp (``2024-05-01T12:00:01.44Z``; any fraction length).

    Raises:
        MalformedPayload: naming ``field_name`` when the value is missing or not a time.
    """
    if not isinstance(value, str) or not value or len(value) > 40:
        raise MalformedPayload(f"field '{field_name}' is missing or not a timestamp")
    match = _FRACTION.match(value.strip())
    if match is None:
        raise MalformedPayload(f"field '{field_name}' is not an ISO-8601 timestamp")
    head, fraction, zone = match.groups()
    text = head + (f".{(fraction + '000000')[:6]}" if fraction else "")
    text += "+00:00" if zone in (None, "Z") else zone
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedPayload(f"field '{field_name}' is not an ISO-8601 timestamp") from None
    return bounded.in_window(parsed, field_name).astimezone(UTC)


def format_time(value: datetime) -> str:
    """Fixed-width UTC with milliseconds (``2024-05-01T12:00:01.440Z``): sorts in time order
    and is what the ``lastActivityDate`` filter accepts."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def record_id(record: Mapping[str, Any], field_name: str = "id") -> int:
    """A record's id as a bounded ASCII-digit integer."""
    return bounded.digits(record.get(field_name), field_name)


def _optional_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def _date(value: Any) -> str | None:
    """``2024-06-01T00:00:00Z`` → ``2024-06-01``; other strings pass through."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value, "date").date().isoformat()
    except MalformedPayload:
        return value[:40]


def udfs(record: Mapping[str, Any]) -> dict[str, Any]:
    """User-defined fields by name (``[{"name": ..., "value": ...}]`` on the wire)."""
    out: dict[str, Any] = {}
    for item in record.get("userDefinedFields") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            out[item["name"][:200]] = item.get("value")
    return out


def picklist_values(record: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """The raw picklist values of ``record`` for ``fields`` (what the connector resolves)."""
    return {name: record.get(name) for name in fields if record.get(name) not in (None, "")}


def completed_at(ticket: Mapping[str, Any]) -> datetime | None:
    """When the ticket was completed, or None while it is open."""
    completed = ticket.get("completedDate")
    if completed:
        return parse_time(completed, "completedDate")
    if ticket.get("status") == COMPLETE_STATUS:
        return parse_time(ticket.get("lastActivityDate"), "lastActivityDate")
    return None


def activity_at(record: Mapping[str, Any]) -> datetime:
    """``lastActivityDate``, the change marker (and poll cursor) of a ticket."""
    return parse_time(record.get("lastActivityDate"), "lastActivityDate")


def created_at(record: Mapping[str, Any]) -> datetime | None:
    """``createDate`` of a ticket, if present."""
    value = record.get("createDate")
    return parse_time(value, "createDate") if value else None


def normalize_ticket(ticket: Mapping[str, Any], names: Names) -> dict[str, Any]:
    """The ``ticket`` fields mappings read (names, not ids) — ConnectWise's shapes, with
    ``board`` = ``queue`` (the queue's name), ``type`` = issue type, ``subType`` =
    sub-issue type, ``summary`` = title."""
    labels = {out: names.labels.get(src) for src, out in TICKET_PICKLISTS.items()}
    contact = dict(names.contact) if names.contact else {}
    company_id = _optional_id(ticket.get("companyID"))
    return {
        "id": record_id(ticket),
        "number": ticket.get("ticketNumber"),
        "summary": ticket.get("title"),
        "board": labels["queue"],
        **labels,
        "item": None,
        "closed": completed_at(ticket) is not None,
        "contact": {"id": _optional_id(ticket.get("contactID")),
                    "name": contact.get("name"), "email": contact.get("email")},
        "company": {"id": company_id, "identifier": None, "name": names.company_name}
        if company_id is not None else None,
        "initial_description": ticket.get("description"),
        "custom_fields": udfs(ticket),
    }


def normalize_contract(contract: Mapping[str, Any], names: Names) -> dict[str, Any]:
    """The ``agreement`` fields mappings read. ``type`` is the contract *category* (the
    MSP's own list: "Managed Services" …) when set, else the contract type (Recurring
    Service, Block Hours …); both are also given as ``category`` and ``contract_type``.
    ``cancelled`` means the contract is inactive (Autotask has no cancelled flag)."""
    labels = {out: names.labels.get(src) for src, out in CONTRACT_PICKLISTS.items()}
    status = contract.get("status")
    company_id = _optional_id(contract.get("companyID"))
    contact = dict(names.contact) if names.contact else {}
    return {
        "id": record_id(contract),
        "number": contract.get("contractNumber"),
        "name": contract.get("contractName"),
        "type": labels["category"] or labels["contract_type"],
        "category": labels["category"],
        "contract_type": labels["contract_type"],
        "status": labels["status"] or (None if status is None else str(status)),
        "start_date": _date(contract.get("startDate")),
        "end_date": _date(contract.get("endDate")),
        "cancelled": status == 0,
        "default": bool(contract.get("isDefaultContract")),
        "contact": {"id": _optional_id(contract.get("contactID")),
                    "name": contact.get("name") or contract.get("contactName") or None},
        "company": {"id": company_id, "identifier": None, "name": names.company_name}
        if company_id is not None else None,
        "custom_fields": udfs(contract),
    }


def client_ref(record: Mapping[str, Any], names: Names) -> ClientRef | None:
    """The record's company as ``ClientRef(type="company", id=<companyID>)``."""
    company_id = _optional_id(record.get("companyID"))
    if company_id is None:
        return None
    name = names.company_name[:300] if names.company_name else None
    return ClientRef(type="company", id=str(company_id), name=name)


def _event(source: str, kind: EventKind, key: str, when: datetime, subject: str,
           record: Mapping[str, Any], names: Names, data: dict[str, Any],
           raw: Mapping[str, Any]) -> Event:
    return Event(source=source, vendor=VENDOR, kind=kind, dedupe_key=key[:255],
                 occurred_at=when, client=client_ref(record, names),
                 subject=SubjectRef(type=subject, id=str(record_id(record)), source=source),
                 data={subject: data}, raw=dict(raw))


def ticket_events(source: str, ticket: Mapping[str, Any], names: Names, *, is_new: bool,
                  raw: Mapping[str, Any] | None = None) -> list[Event]:
    """Events for one ticket snapshot.

    Args:
        is_new: the ticket was created inside the window this snapshot covers (a Create
            webhook, or a poll whose window contains ``createDate``).
        raw: what to keep as ``Event.raw`` (the webhook body); defaults to ``ticket``.

    Raises:
        MalformedPayload: ``id`` or ``lastActivityDate`` is missing or malformed.
    """
    data, tid = normalize_ticket(ticket, names), record_id(ticket)
    changed, entered = activity_at(ticket), created_at(ticket)
    raw = ticket if raw is None else raw
    events: list[Event] = []
    if is_new:
        events.append(_event(source, EventKind.TICKET_CREATED, f"ticket:{tid}:created",
                             entered or changed, "ticket", ticket, names, data, raw))
    closed = completed_at(ticket)
    if closed is not None:
        events.append(_event(source, EventKind.TICKET_CLOSED,
                             f"ticket:{tid}:closed:{format_time(closed)}", closed, "ticket",
                             ticket, names, data, raw))
    elif not is_new or (entered is not None and changed != entered):
        events.append(_event(source, EventKind.TICKET_UPDATED,
                             f"ticket:{tid}:{format_time(changed)}", changed, "ticket",
                             ticket, names, data, raw))
    return events


def contract_digest(data: Mapping[str, Any]) -> str:
    """A short digest of the normalized contract: a new one means the contract changed."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def contract_created(source: str, contract: Mapping[str, Any], names: Names, *,
                     seen_at: datetime) -> Event:
    """``agreement.created`` for a contract first seen at ``seen_at`` (contracts carry
    no creation time)."""
    data = normalize_contract(contract, names)
    return _event(source, EventKind.AGREEMENT_CREATED, f"agreement:{data['id']}:created",
                  seen_at, "agreement", contract, names, data, contract)


def contract_state(source: str, contract: Mapping[str, Any], names: Names, *,
                   seen_at: datetime) -> Event:
    """``agreement.updated`` for the contract's current state (keyed by its digest, so
    the inbox keeps one event per distinct state)."""
    data = normalize_contract(contract, names)
    key = f"agreement:{data['id']}:state:{contract_digest(data)}"
    return _event(source, EventKind.AGREEMENT_UPDATED, key, seen_at, "agreement", contract,
                  names, data, contract)


@dataclass(frozen=True)
class Webhook:
    """A parsed Autotask webhook delivery (keys matched case-insensitively)."""

    action: str
    entity_type: str
    id: int
    guid: str | None
    sequence: int | None
    person_id: int | None
    event_time: datetime | None
    fields: dict[str, Any]
    raw: Record
    digest: str


def _ci(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in raw.items()}


def parse_webhook(body: bytes) -> Webhook:
    """Parse a delivery: ``Action, Guid, EntityType, Id, Fields, EventTime, SequenceNumber,
    PersonID`` (the casing varies between sources, so keys are matched case-insensitively).

    Raises:
        MalformedPayload: naming the field that is missing or has the wrong shape.
    """
    raw = bounded.loads(body)
    if not isinstance(raw, dict):
        raise MalformedPayload("body is not a JSON object")
    keys = _ci(raw)
    for name in ("action", "entitytype"):
        if not isinstance(keys.get(name), str) or not keys[name]:
            raise MalformedPayload(f"field '{name}' is missing or not a string")
    fields = keys.get("fields")
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise MalformedPayload("field 'Fields' is not an object")
    sequence, person = keys.get("sequencenumber"), keys.get("personid")
    when = keys.get("eventtime")
    guid = keys.get("guid")
    return Webhook(
        action=keys["action"].strip().lower(),
        entity_type=keys["entitytype"].strip().lower(),
        id=bounded.digits(keys.get("id"), "Id"),
        guid=str(guid)[:64] if guid not in (None, "") else None,
        sequence=bounded.digits(sequence, "SequenceNumber") if sequence not in (None, "")
        else None,
        person_id=bounded.digits(person, "PersonID") if person not in (None, "") else None,
        event_time=parse_time(when, "EventTime") if when else None,
        fields={str(k)[:100]: v for k, v in fields.items()},
        raw=raw,
        digest=hashlib.sha256(body).hexdigest()[:16],
    )


def webhook_events(source: str, hook: Webhook, *, received_at: datetime) -> list[Event]:
    """One thin event for a ticket Create/Update (the webhook only hints: the connector
    reads the ticket before any rule runs); deletes and other entities yield none."""
    if hook.entity_type != "ticket" or hook.action not in ("create", "update"):
        return []
    kind = EventKind.TICKET_CREATED if hook.action == "create" else EventKind.TICKET_UPDATED
    # a redelivery repeats the sequence number; without one, the body's digest
    marker = f"{hook.guid}:{hook.sequence}" if hook.sequence is not None else hook.digest
    return [Event(
        source=source, vendor=VENDOR, kind=kind,
        dedupe_key=f"ticket:{hook.id}:webhook:{marker}"[:255],
        occurred_at=hook.event_time or received_at,
        subject=SubjectRef(type="ticket", id=str(hook.id), source=source),
        data={THIN: True, "webhook": {"action": hook.action, "fields": hook.fields}},
        raw=hook.raw,
    )]

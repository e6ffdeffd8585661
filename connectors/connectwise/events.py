"""ConnectWise payloads → normalized Events (pure functions, no I/O).

Dedupe keys follow the change they describe, so a callback and a poll that see the same
change collide in the inbox:

* ``ticket.created`` / ``agreement.created`` / ``company.created``: ``{type}:{id}:created``
  (one per record, however many edits happened before we saw it: never two launches);
* ``ticket.closed``: ``ticket:{id}:closed:{closedDate}`` (one per closure);
* ``*.updated``: ``{type}:{id}:{_info.lastUpdated}`` (one per change marker).

A record seen for the first time after later edits yields its ``created`` event *and* an
``updated`` (or ``closed``) event, whether it came by poll or by callback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors import payload as bounded
from connectors.base import THIN, MalformedPayload
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "connectwise"
Record = dict[str, Any]

_KINDS: dict[tuple[str, str], EventKind] = {
    ("ticket", "created"): EventKind.TICKET_CREATED,
    ("ticket", "updated"): EventKind.TICKET_UPDATED,
    ("agreement", "created"): EventKind.AGREEMENT_CREATED,
    ("agreement", "updated"): EventKind.AGREEMENT_UPDATED,
    ("company", "created"): EventKind.COMPANY_CREATED,
}


def parse_time(value: Any, field: str) -> datetime:
    """Parse a ConnectWise UTC timestamp (``2016-03-08T21:59:20Z``); names ``field`` if bad."""
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"field '{field}' is missing or not a timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"field '{field}' is not an ISO-8601 timestamp") from None
    # a sane window, so converting to UTC never overflows (0001-01-01T00:00:00+05:00)
    return bounded.in_window(parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed,
                             field)


def format_time(value: datetime) -> str:
    """Format as ConnectWise does (whole seconds, ``Z``); the strings sort in time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _info(record: Record) -> dict[str, Any]:
    info = record.get("_info")
    return info if isinstance(info, dict) else {}


def _name(ref: Any) -> str | None:
    return ref.get("name") if isinstance(ref, dict) else None


def _id(record: Record, field: str = "id") -> int:
    # ASCII digits, bounded: str.isdigit() accepts '¹', and int() of 5,000 digits fails
    return bounded.digits(record.get(field), field)


def updated_at(record: Record) -> datetime:
    """``_info.lastUpdated``, the change marker of every record."""
    return parse_time(_info(record).get("lastUpdated"), "_info.lastUpdated")


def entered_at(record: Record) -> datetime | None:
    """When the record was created (``_info.dateEntered`` or ``dateEntered``), if known."""
    value = _info(record).get("dateEntered") or record.get("dateEntered")
    return parse_time(value, "_info.dateEntered") if value else None


def updated_by(record: Record) -> str | None:
    """Identifier of the member who made the last change."""
    value = _info(record).get("updatedBy")
    return value if isinstance(value, str) else None


def is_new_since(record: Record, since: datetime) -> bool:
    """True when the record was created after ``since`` (the poll window's lower bound)."""
    entered = entered_at(record)
    return entered is not None and entered > since


def is_echo(member: str | None, api_member: str | None) -> bool:
    """True when ``member`` is our own API member (its changes are our write-back)."""
    return bool(member and api_member and member.casefold() == api_member.casefold())


def board_allowed(ticket: Record, boards: tuple[str, ...] | None) -> bool:
    """True when no board filter is set or the ticket's board is in it (case-insensitive)."""
    if boards is None:
        return True
    name = _name(ticket.get("board")) or ""
    return name.casefold() in {b.casefold() for b in boards}


def client_ref(company: Any) -> ClientRef | None:
    """The PSA company as a ``ClientRef`` (identifier preferred over the numeric id)."""
    if not isinstance(company, dict) or company.get("id") is None:
        return None
    name = company.get("name")
    return ClientRef(id=str(company.get("identifier") or company["id"])[:200],
                     name=name[:300] if isinstance(name, str) else None)


def _company(company: Any) -> dict[str, Any] | None:
    if not isinstance(company, dict):
        return None
    return {k: company.get(k) for k in ("id", "identifier", "name")}


def _date(value: Any) -> str | None:
    """``2024-05-01T00:00:00Z`` → ``2024-05-01``; other strings pass through."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value, "date").date().isoformat()
    except MalformedPayload:
        return value


def normalize_ticket(ticket: Record) -> dict[str, Any]:
    """The ``ticket`` fields mappings read (names, not ids, for board/type/status ...)."""
    contact = ticket.get("contact") if isinstance(ticket.get("contact"), dict) else None
    fields = ticket.get("customFields")
    custom = {
        f["caption"]: f.get("value")
        for f in (fields if isinstance(fields, list) else [])  # any other shape: none
        if isinstance(f, dict) and isinstance(f.get("caption"), str) and f["caption"]
    }
    return {
        "id": _id(ticket),
        "summary": ticket.get("summary"),
        "board": _name(ticket.get("board")),
        "type": _name(ticket.get("type")),
        "subType": _name(ticket.get("subType")),
        "item": _name(ticket.get("item")),
        "status": _name(ticket.get("status")),
        "priority": _name(ticket.get("priority")),
        "closed": bool(ticket.get("closedFlag")),
        "contact": {
            "id": contact.get("id") if contact else None,
            "name": (contact.get("name") if contact else None) or ticket.get("contactName"),
            "email": ticket.get("contactEmailAddress"),
        },
        "company": _company(ticket.get("company")),
        "initial_description": ticket.get("initialDescription"),
        "custom_fields": custom,
    }


def normalize_agreement(agreement: Record) -> dict[str, Any]:
    """The ``agreement`` fields mappings read."""
    return {
        "id": _id(agreement),
        "name": agreement.get("name"),
        "type": _name(agreement.get("type")),
        "status": agreement.get("agreementStatus"),
        "start_date": _date(agreement.get("startDate")),
        "end_date": _date(agreement.get("endDate")),
        "cancelled": bool(agreement.get("cancelledFlag")),
        "company": _company(agreement.get("company")),
    }


def normalize_company(company: Record) -> dict[str, Any]:
    """The ``company`` fields mappings read."""
    types = company.get("types") or ([company["type"]] if company.get("type") else [])
    return {
        "id": _id(company),
        "identifier": company.get("identifier"),
        "name": company.get("name"),
        "status": _name(company.get("status")),
        "types": [n for n in (_name(t) for t in types) if n],
    }


def _event(
    source: str,
    kind: EventKind,
    key: str,
    when: datetime,
    record_type: str,
    record: Record,
    data: dict[str, Any],
    raw: Record,
) -> Event:
    company = record if record_type == "company" else record.get("company")
    return Event(
        source=source,
        vendor=VENDOR,
        kind=kind,
        dedupe_key=key,
        occurred_at=when,
        client=client_ref(company),
        subject=SubjectRef(type=record_type, id=str(record["id"])),
        data={record_type: data},
        raw=raw,
    )


def record_events(
    source: str, record_type: str, record: Record, *, is_new: bool, raw: Record | None = None
) -> list[Event]:
    """Events for one ticket / agreement / company snapshot.

    Args:
        is_new: the record was created in the window this snapshot covers (callback
            ``added``, or a poll where ``dateEntered`` falls inside the poll window).
        raw: what to keep as ``Event.raw`` (the callback body); defaults to ``record``.

    Raises:
        MalformedPayload: a required field (``id``, ``_info.lastUpdated``) is missing.
    """
    normalize = {
        "ticket": normalize_ticket,
        "agreement": normalize_agreement,
        "company": normalize_company,
    }.get(record_type)
    if normalize is None:
        return []
    data, rid = normalize(record), _id(record)
    changed, entered = updated_at(record), entered_at(record)
    raw = record if raw is None else raw
    events: list[Event] = []
    if is_new:
        kind = _KINDS[(record_type, "created")]
        events.append(
            _event(
                source,
                kind,
                f"{record_type}:{rid}:created",
                entered or changed,
                record_type,
                record,
                data,
                raw,
            )
        )
    if record_type == "company":
        return events  # the vocabulary has no company.updated
    edited_after_creation = entered is not None and changed != entered
    if record_type == "ticket" and record.get("closedFlag"):
        closed = record.get("closedDate")
        closed_at = parse_time(closed, "closedDate") if closed else changed
        events.append(
            _event(
                source,
                EventKind.TICKET_CLOSED,
                f"ticket:{rid}:closed:{format_time(closed_at)}",
                closed_at,
                record_type,
                record,
                data,
                raw,
            )
        )
    elif not is_new or edited_after_creation:
        kind = _KINDS[(record_type, "updated")]
        events.append(
            _event(
                source,
                kind,
                f"{record_type}:{rid}:{format_time(changed)}",
                changed,
                record_type,
                record,
                data,
                raw,
            )
        )
    return events


@dataclass(frozen=True)
class Callback:
    """A parsed callback delivery (``Entity`` decoded when present)."""

    id: int
    type: str
    action: str
    member_id: str | None
    message_id: str | None
    entity: Record | None
    key_url: str | None
    raw: Record
    digest: str


def parse_callback(body: bytes) -> Callback:
    """Parse a callback body; ``Entity`` is a JSON *string* (or absent for thin callbacks).

    Raises:
        MalformedPayload: naming the field that is missing or has the wrong shape.
    """
    raw = bounded.loads(body)
    if not isinstance(raw, dict):
        raise MalformedPayload("body is not a JSON object")
    for field in ("Type", "Action"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise MalformedPayload(f"field '{field}' is missing or not a string")
    rid = _id(raw, "ID")
    entity = raw.get("Entity")
    if isinstance(entity, str) and entity.strip():
        try:
            entity = bounded.loads(entity)
        except MalformedPayload as exc:
            raise MalformedPayload(f"field 'Entity': {exc}") from None
    elif entity in (None, "") or (isinstance(entity, str) and not entity.strip()):
        entity = None
    if entity is not None and not isinstance(entity, dict):
        raise MalformedPayload("field 'Entity' is not a JSON object")
    if entity is not None and str(entity.get("id")) != str(rid):
        raise MalformedPayload("field 'Entity.id' does not match 'ID'")
    metadata = raw.get("Metadata")
    key_url = metadata.get("key_url") if isinstance(metadata, dict) else None
    member = raw.get("MemberId")
    message = raw.get("MessageId")
    return Callback(
        id=rid,
        type=raw["Type"].lower(),
        action=raw["Action"].lower(),
        member_id=str(member) if member not in (None, "") else None,
        message_id=str(message) if message not in (None, "") else None,
        entity=entity,
        key_url=key_url if isinstance(key_url, str) else None,
        raw=raw,
        digest=hashlib.sha256(body).hexdigest()[:16],
    )


def callback_events(source: str, callback: Callback, *, received_at: datetime) -> list[Event]:
    """Events for one callback: full events from ``Entity``, or one thin event to enrich."""
    if callback.action not in ("added", "updated"):
        return []  # deletions have no normalized kind
    if callback.entity is not None:
        return record_events(
            source,
            callback.type,
            callback.entity,
            is_new=callback.action == "added",
            raw=callback.raw,
        )
    verb = "created" if callback.action == "added" else "updated"
    kind = _KINDS.get((callback.type, verb))
    if kind is None:
        return []
    marker = callback.message_id or callback.digest
    return [
        Event(
            source=source,
            vendor=VENDOR,
            kind=kind,
            dedupe_key=f"{callback.type}:{callback.id}:callback:{marker}"[:255],
            occurred_at=received_at,
            subject=SubjectRef(type=callback.type, id=str(callback.id)),
            data={THIN: True, "callback": {"action": callback.action, "type": callback.type}},
            raw=callback.raw,
        )
    ]

"""HaloPSA payloads → normalized Events (pure functions, no I/O).

The normalized fields are those the ConnectWise connector produces, so the shipped
mappings work with ``from: halopsa``:

* ``ticket.board`` is the Halo **team** (``team``), ``ticket.type`` the ticket type's
  name, ``ticket.subType`` the first category (``category_1``), ``ticket.item`` the
  second; ``ticket.status`` the status name; ``ticket.contact`` the ticket's end user;
  ``ticket.custom_fields`` maps each custom field's label *and* name to its value.
* ``agreement`` is a ``ClientContract`` (``ContractHeader``): ``name`` = ``ref``,
  ``type`` = ``contracttype_name``, ``status`` = ``contract_status``.
* ``client`` is the Halo client: ``ClientRef(type="customer", id=<client_id>)``. Halo's
  API calls the record ``Client``, its UI and scopes "customers"; the hub's link
  vocabulary (``hub/config/clients.py`` ``OBJECT_TYPES``) has ``customer`` and no
  ``client``, so links read ``{source: halo, type: customer, id: <client_id>}``.

Dedupe keys follow the change they describe, so a webhook and a poll that see the same
change collide in the inbox: ``ticket:{id}:created``, ``ticket:{id}:closed:{when}``,
``ticket:{id}:{last_update}``; ``agreement:{id}:created``, ``agreement:{id}:{marker}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors import payload as bounded
from connectors.base import THIN, MalformedPayload
from connectors.writeback import has_hub_marker
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "halopsa"
CLIENT_TYPE = "customer"  # see the module docstring
Record = dict[str, Any]
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True)
class Names:
    """Id → name lookups of the tenant (``/TicketType``, ``/Status``): records may carry
    only ids, and rules compare names."""

    ticket_types: Mapping[int, str] = field(default_factory=dict)
    statuses: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    """What the instance's configuration says about names (closed and cancelled)."""

    closed_statuses: tuple[str, ...] = ("Closed",)
    cancelled_statuses: tuple[str, ...] = ("Cancelled", "Canceled", "Terminated")


def parse_time(value: Any, field: str) -> datetime:
    """A Halo timestamp (``2024-05-01T12:00:01``, no offset: UTC) → aware UTC datetime.

    .NET may send seven fractional digits; they are cut to six.
    """
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"field '{field}' is missing or not a timestamp")
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedPayload(f"field '{field}' is not an ISO-8601 timestamp") from None
    return bounded.in_window(parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed,
                             field).astimezone(UTC)


def optional_time(value: Any, field: str) -> datetime | None:
    """A timestamp that may be absent: empty, or Halo's "no date" (1900-01-01) → None."""
    if value in (None, "") or (isinstance(value, str) and value[:4] <= "1901"):
        return None
    return parse_time(value, field)


def format_time(value: datetime) -> str:
    """Fixed width with microseconds and ``Z``: cursor positions sort in time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def halo_time(value: datetime) -> str:
    """The form Halo's date filters take: UTC, whole seconds, no offset."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _id(record: Mapping[str, Any], name: str = "id") -> int:
    return bounded.digits(record.get(name), name)


def _text(value: Any, limit: int = 300) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def updated_at(ticket: Record) -> datetime:
    """``last_update``, the change marker of a ticket."""
    return parse_time(ticket.get("last_update"), "last_update")


def created_at(ticket: Record) -> datetime | None:
    """When the ticket was logged (``datecreated``, else ``dateoccurred``), if known."""
    return optional_time(ticket.get("datecreated") or ticket.get("dateoccurred"), "datecreated")


def team_allowed(ticket: Record, teams: tuple[str, ...] | None) -> bool:
    """True when no team filter is set or the ticket's team is in it (case-insensitive)."""
    if teams is None:
        return True
    return str(ticket.get("team") or "").casefold() in {t.casefold() for t in teams}


def client_ref(record: Record) -> ClientRef | None:
    """The Halo client of a ticket or contract (``client_id`` 0 or missing: none)."""
    cid = _int(record.get("client_id"))
    if not cid:
        return None
    return ClientRef(type=CLIENT_TYPE, id=str(cid), name=_text(record.get("client_name")))


def custom_fields(record: Record) -> dict[str, Any]:
    """Custom fields by label and by name; a selection's display text beats its id."""
    out: dict[str, Any] = {}
    for item in record.get("customfields") or []:
        if not isinstance(item, dict):
            continue
        value = item.get("value")
        display = item.get("display")
        if not (isinstance(value, str) and value) and isinstance(display, str) and display:
            value = display
        for key in (item.get("name"), item.get("label")):
            if isinstance(key, str) and key and key not in out:
                out[key[:200]] = value
    return out


def ticket_type(ticket: Record, names: Names) -> str | None:
    """The ticket type's name: the tenant's lookup first, then the record's own."""
    tid = _int(ticket.get("tickettype_id"))
    return names.ticket_types.get(tid or -1) or _text(ticket.get("tickettype_name"))


def status_name(ticket: Record, names: Names) -> str | None:
    """The status's name: the tenant's lookup first, then the record's own."""
    sid = _int(ticket.get("status_id"))
    return names.statuses.get(sid or -1) or _text(ticket.get("status_name"))


def is_closed(ticket: Record, names: Names, policy: Policy) -> bool:
    """True when the ticket's status is one of the configured closed statuses."""
    status = (status_name(ticket, names) or "").casefold()
    return bool(status) and status in {s.casefold() for s in policy.closed_statuses}


def normalize_ticket(ticket: Record, names: Names, policy: Policy) -> dict[str, Any]:
    """The ``ticket`` fields mappings read (names, not ids)."""
    return {
        "id": _id(ticket),
        "summary": ticket.get("summary"),
        "board": _text(ticket.get("team")),
        "type": ticket_type(ticket, names),
        "subType": _text(ticket.get("category_1")),
        "item": _text(ticket.get("category_2")),
        "status": status_name(ticket, names),
        "priority": _text(ticket.get("priority_name")) or _int(ticket.get("priority_id")),
        "closed": is_closed(ticket, names, policy),
        "contact": {
            "id": _int(ticket.get("user_id")),
            "name": _text(ticket.get("user_name")),
            "email": _text(ticket.get("user_email")),
        },
        "company": {"id": _int(ticket.get("client_id")),
                    "name": _text(ticket.get("client_name"))},
        "site": {"id": _int(ticket.get("site_id")), "name": _text(ticket.get("site_name"))},
        "initial_description": ticket.get("details"),
        "custom_fields": custom_fields(ticket),
    }


def _date(value: Any) -> str | None:
    """``2024-06-01T00:00:00`` → ``2024-06-01``; Halo's empty date (year 1900) → None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        day = optional_time(value, "date")
    except MalformedPayload:
        return value[:40]
    return None if day is None else day.date().isoformat()


def normalize_contract(contract: Record, policy: Policy) -> dict[str, Any]:
    """The ``agreement`` fields mappings read, from a ``ContractHeader``."""
    status = _text(contract.get("contract_status"))
    cancelled = bool(status) and str(status).casefold() in {
        s.casefold() for s in policy.cancelled_statuses}
    return {
        "id": _id(contract),
        "name": _text(contract.get("ref")),
        "type": _text(contract.get("contracttype_name")),
        "status": status,
        "start_date": _date(contract.get("start_date")),
        "end_date": _date(contract.get("end_date")),
        "cancelled": cancelled,
        "active": contract.get("active") if isinstance(contract.get("active"), bool) else None,
        "expired": bool(contract.get("expired")),
        "company": {"id": _int(contract.get("client_id")),
                    "name": _text(contract.get("client_name"))},
        "custom_fields": custom_fields(contract),
    }


def _event(source: str, kind: EventKind, key: str, when: datetime, subject: str,
           record: Record, data: dict[str, Any], raw: Record) -> Event:
    return Event(source=source, vendor=VENDOR, kind=kind, dedupe_key=key[:255],
                 occurred_at=when, client=client_ref(record),
                 subject=SubjectRef(type=subject, id=str(data["id"]), source=source),
                 data={subject: data}, raw=raw)


def ticket_events(source: str, ticket: Record, *, is_new: bool, names: Names,
                  policy: Policy, raw: Record | None = None) -> list[Event]:
    """Events for one ticket snapshot.

    Args:
        is_new: the ticket was logged inside the window this snapshot covers.

    Raises:
        MalformedPayload: ``id`` or ``last_update`` is missing or malformed.
    """
    data = normalize_ticket(ticket, names, policy)
    rid, changed, logged = data["id"], updated_at(ticket), created_at(ticket)
    raw = ticket if raw is None else raw
    events: list[Event] = []
    if is_new:
        events.append(_event(source, EventKind.TICKET_CREATED, f"ticket:{rid}:created",
                             logged or changed, "ticket", ticket, data, raw))
    if data["closed"]:
        closed_at = optional_time(ticket.get("dateclosed"), "dateclosed") or changed
        events.append(_event(source, EventKind.TICKET_CLOSED,
                             f"ticket:{rid}:closed:{format_time(closed_at)}", closed_at,
                             "ticket", ticket, data, raw))
    elif not is_new or (logged is not None and changed != logged):
        events.append(_event(source, EventKind.TICKET_UPDATED,
                             f"ticket:{rid}:{format_time(changed)}", changed, "ticket",
                             ticket, data, raw))
    return events


def contract_marker(contract: Record, data: Mapping[str, Any]) -> str:
    """``last_modified`` when Halo sends it, else a digest of the normalized fields."""
    modified = optional_time(contract.get("last_modified"), "last_modified")
    if modified is not None:
        return format_time(modified)
    text = json.dumps(dict(data), sort_keys=True, default=str)
    return "v" + hashlib.sha256(text.encode()).hexdigest()[:16]


def contract_events(source: str, contract: Record, *, is_new: bool, changed: bool,
                    now: datetime, policy: Policy) -> list[Event]:
    """``agreement.created`` for a new contract, ``agreement.updated`` for a change."""
    data = normalize_contract(contract, policy)
    rid = data["id"]
    when = optional_time(contract.get("last_modified"), "last_modified") or now
    events: list[Event] = []
    if is_new:
        events.append(_event(source, EventKind.AGREEMENT_CREATED, f"agreement:{rid}:created",
                             when, "agreement", contract, data, contract))
    elif changed:
        events.append(_event(source, EventKind.AGREEMENT_UPDATED,
                             f"agreement:{rid}:{contract_marker(contract, data)}", when,
                             "agreement", contract, data, contract))
    return events


# -- webhooks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookItem:
    """One ticket (and action) a Halo webhook delivery names."""

    ticket_id: int
    ticket: Record | None
    action: Record | None
    raw: Record


def _ticket_id(item: Record, ticket: Record | None, action: Record | None) -> int:
    for holder, name in ((ticket, "id"), (item, "ticket_id"), (action, "ticket_id"),
                         (item, "faultid"), (ticket, "faultid")):
        if isinstance(holder, dict) and holder.get(name) not in (None, "", 0):
            return bounded.digits(holder.get(name), name)
    raise MalformedPayload("no ticket id (ticket.id, ticket_id, action.ticket_id, faultid)")


def parse_webhook(body: bytes) -> list[WebhookItem]:
    """The tickets a delivery names: one object, or an array when Halo batches.

    An object carries the ticket under ``ticket`` (or is the ticket itself) and, for
    action events, the action under ``action``.

    Raises:
        MalformedPayload: not JSON objects, or an item names no ticket.
    """
    parsed = bounded.loads(body)
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items or len(items) > 500:
        raise MalformedPayload("body holds no items, or more than 500")
    out: list[WebhookItem] = []
    for item in items:
        if not isinstance(item, dict):
            raise MalformedPayload("body is not a JSON object (or an array of them)")
        ticket = item.get("ticket") if isinstance(item.get("ticket"), dict) else None
        if ticket is None and ("summary" in item or "last_update" in item):
            ticket = item
        action = item.get("action") if isinstance(item.get("action"), dict) else None
        out.append(WebhookItem(_ticket_id(item, ticket, action), ticket, action, item))
    return out


def action_agent(action: Mapping[str, Any]) -> int | None:
    """The agent who made an action (``who_agentid``, else ``actionby_agent_id``)."""
    for name in ("who_agentid", "actionby_agent_id"):
        agent = _int(action.get(name))
        if agent:
            return agent
    return None


def is_echo(item: WebhookItem, api_agent_id: int | None) -> bool:
    """True when the delivery is about an action of our own (marker or our API agent)."""
    action = item.action
    if action is None:
        return False
    if has_hub_marker(action.get("note")) or has_hub_marker(action.get("note_html")):
        return True
    agent = action_agent(action)
    return bool(api_agent_id and agent == api_agent_id)


def webhook_event(source: str, item: WebhookItem, *, received_at: datetime,
                  digest: str) -> Event:
    """A thin event for one webhook item: the ticket is read back before any rule runs."""
    change = item.ticket.get("last_update") if item.ticket else None
    marker = digest
    if isinstance(change, str) and change:
        # a display-format date (Halo can send display values) falls back to the digest
        with contextlib.suppress(MalformedPayload):
            marker = format_time(parse_time(change, "ticket.last_update"))
    return Event(
        source=source, vendor=VENDOR, kind=EventKind.TICKET_UPDATED,
        dedupe_key=f"ticket:{item.ticket_id}:webhook:{marker}"[:255],
        occurred_at=received_at,
        subject=SubjectRef(type="ticket", id=str(item.ticket_id), source=source),
        data={THIN: True, "webhook": {"ticket_id": item.ticket_id}},
        raw=item.raw,
    )

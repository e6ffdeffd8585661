"""Vendor-shaped Halo payloads → normalized Events (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import THIN, MalformedPayload
from connectors.halopsa.events import (
    Names,
    Policy,
    contract_events,
    is_echo,
    normalize_contract,
    normalize_ticket,
    parse_time,
    parse_webhook,
    ticket_events,
    webhook_event,
)
from hub.core.events import ClientRef, EventKind, SubjectRef

from .conftest import fixture_bytes, load_fixture

NAMES = Names(ticket_types={27: "Leaver", 1: "Incident"}, statuses={1: "New", 9: "Closed"})
POLICY = Policy()
NOW = datetime(2024, 5, 1, 12, 10, tzinfo=UTC)


def test_a_ticket_normalizes_to_the_connectwise_field_names() -> None:
    """board = team, type = ticket type name, subType = category_1, custom fields by
    label and name (a selection's display text), contact = the end user."""
    data = normalize_ticket(load_fixture("ticket_4821.json"), NAMES, POLICY)

    assert data["board"] == "Service Desk"
    assert (data["type"], data["subType"], data["status"]) == ("Leaver", "User Admin", "New")
    assert data["summary"] == "Leaver: John Smith"
    assert data["contact"] == {"id": 88, "name": "Jane Manager",
                               "email": "jane.manager@acme.example"}
    assert data["custom_fields"]["Leaver Name"] == "John Smith"
    assert data["custom_fields"]["CFLeaverName"] == "John Smith"
    assert data["custom_fields"]["Last Day"] == "2024-05-31"
    assert data["custom_fields"]["Department"] == "Finance"  # value 3 is the option id
    assert data["closed"] is False


def test_names_come_from_the_lookups_before_the_record() -> None:
    """A tenant that renamed a type: the lookup wins; without one the record's own name."""
    ticket = {**load_fixture("ticket_4821.json"), "tickettype_name": "Old name"}
    assert normalize_ticket(ticket, NAMES, POLICY)["type"] == "Leaver"
    assert normalize_ticket(ticket, Names(), POLICY)["type"] == "Old name"


def test_ticket_events_client_subject_and_keys() -> None:
    """client = the Halo client; the subject names the source; keys per change."""
    ticket = load_fixture("ticket_4821.json")

    created, updated = ticket_events("halo", ticket, is_new=True, names=NAMES, policy=POLICY)

    assert created.kind == EventKind.TICKET_CREATED
    assert created.dedupe_key == "ticket:4821:created"
    assert created.occurred_at == datetime(2024, 5, 1, 11, 59, 2, tzinfo=UTC)
    assert created.client == ClientRef(type="customer", id="12", name="Acme Ltd")
    assert created.subject == SubjectRef(type="ticket", id="4821", source="halo")
    assert created.vendor == "halopsa" and created.raw == ticket
    assert updated.kind == EventKind.TICKET_UPDATED
    assert updated.dedupe_key == "ticket:4821:2024-05-01T12:00:01.123456Z"


def test_a_closed_status_yields_ticket_closed_once_per_closure() -> None:
    """Closed statuses are configurable; the key carries dateclosed."""
    ticket = {**load_fixture("ticket_4821.json"), "status_id": 9,
              "dateclosed": "2024-05-02T09:00:00"}
    [closed] = ticket_events("halo", ticket, is_new=False, names=NAMES, policy=POLICY)
    assert closed.kind == EventKind.TICKET_CLOSED
    assert closed.dedupe_key == "ticket:4821:closed:2024-05-02T09:00:00.000000Z"
    resolved = Policy(closed_statuses=("Closed", "Resolved"))
    ticket = {**ticket, "status_id": 99, "status_name": "Resolved"}
    assert ticket_events("halo", ticket, is_new=False, names=NAMES,
                         policy=resolved)[0].kind == EventKind.TICKET_CLOSED


def test_halo_timestamps_are_utc_without_offset() -> None:
    """No offset means UTC; seven fractional digits are cut to six."""
    assert parse_time("2024-05-01T12:00:01.1234567", "t") == datetime(
        2024, 5, 1, 12, 0, 1, 123456, tzinfo=UTC)
    with pytest.raises(MalformedPayload, match="last_update"):
        ticket_events("halo", {"id": 1, "last_update": "yesterday"}, is_new=False,
                      names=NAMES, policy=POLICY)


def test_a_contract_normalizes_to_the_agreement_fields() -> None:
    """name = ref, type = contracttype_name, Halo's empty end date (1900) → None."""
    contract = load_fixture("contracts.json")["contracts"][0]

    data = normalize_contract(contract, POLICY)

    assert data == {
        "id": 301, "name": "ACME-MS-2024", "type": "Managed Services", "status": "Active",
        "start_date": "2024-06-01", "end_date": None, "cancelled": False, "active": True,
        "expired": False, "company": {"id": 12, "name": "Acme Ltd"}, "custom_fields": {}}
    [event] = contract_events("halo", contract, is_new=True, changed=True, now=NOW,
                              policy=POLICY)
    assert (event.kind, event.dedupe_key) == (EventKind.AGREEMENT_CREATED,
                                              "agreement:301:created")
    assert event.subject == SubjectRef(type="agreement", id="301", source="halo")


def test_a_contract_without_last_modified_is_keyed_by_its_content() -> None:
    """No change marker from Halo: the key is a digest, equal until a field changes."""
    contract = {**load_fixture("contracts.json")["contracts"][0]}
    contract.pop("last_modified")

    def key(c: dict[str, object]) -> str:
        return contract_events("halo", c, is_new=False, changed=True, now=NOW,
                               policy=POLICY)[0].dedupe_key

    assert key(contract) == key(dict(contract))
    assert key(contract) != key({**contract, "contract_status": "Cancelled"})


def test_webhook_shapes_object_and_batched_array() -> None:
    """The ticket under ``ticket`` (or ``ticket_id``), the action under ``action``."""
    [single] = parse_webhook(fixture_bytes("webhook_new_ticket.json"))
    assert single.ticket_id == 4821 and single.action is None
    first, second = parse_webhook(fixture_bytes("webhook_batch.json"))
    assert (first.ticket_id, second.ticket_id) == (4790, 4821)
    with pytest.raises(MalformedPayload, match="no ticket id"):
        parse_webhook(b'{"event": "New Ticket Logged"}')
    with pytest.raises(MalformedPayload):
        parse_webhook(b"[1, 2]")


def test_echoes_are_actions_with_our_marker_or_by_our_agent() -> None:
    """Our own notes come back as "Action Added" webhooks: dropped."""
    [echo] = parse_webhook(fixture_bytes("webhook_action_echo.json"))
    assert is_echo(echo, None)
    phone, ours = parse_webhook(fixture_bytes("webhook_batch.json"))
    assert not is_echo(phone, 7) and is_echo(ours, 7) and not is_echo(ours, None)
    [new] = parse_webhook(fixture_bytes("webhook_new_ticket.json"))
    assert not is_echo(new, 7)


def test_a_webhook_becomes_a_thin_event_keyed_by_the_change() -> None:
    """The ticket is read back before rules run; the key follows ``last_update``."""
    [item] = parse_webhook(fixture_bytes("webhook_new_ticket.json"))

    event = webhook_event("halo", item, received_at=NOW, digest="d1")

    assert event.data[THIN] is True
    assert event.dedupe_key == "ticket:4821:webhook:2024-05-01T12:00:01.000000Z"
    assert event.subject == SubjectRef(type="ticket", id="4821", source="halo")
    [bare] = parse_webhook(b'{"ticket_id": 9}')
    assert webhook_event("halo", bare, received_at=NOW,
                         digest="d1").dedupe_key == "ticket:9:webhook:d1"
    [shown] = parse_webhook(b'{"ticket": {"id": 9, "last_update": "01/05/2024 12:00"}}')
    assert webhook_event("halo", shown, received_at=NOW,
                         digest="d2").dedupe_key == "ticket:9:webhook:d2"

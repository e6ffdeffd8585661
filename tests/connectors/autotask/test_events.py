"""Autotask payloads → Events: the ConnectWise field names, picklist names, dedupe keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.autotask.events import (
    Names,
    contract_created,
    contract_state,
    format_time,
    parse_time,
    parse_webhook,
    ticket_events,
    webhook_events,
)
from connectors.base import THIN, MalformedPayload
from hub.core.events import ClientRef, EventKind, SubjectRef
from tests.connectors.autotask.conftest import fixture_bytes, load_fixture

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LEAVER_NAMES = Names(
    labels={"queueID": "HR Requests", "issueType": "User Management", "subIssueType": "Leaver",
            "status": "New", "priority": "Medium", "ticketType": "Service Request"},
    company_name="Acme Manufacturing",
    contact={"id": 30682, "name": "Maria López", "email": "maria.lopez@acme.example"})


def _leaver() -> dict:
    return load_fixture("tickets_page1.json")["items"][0]


def test_a_new_ticket_is_created_with_names_not_ids() -> None:
    """A ticket first seen in its creation window: one ticket.created with the names the
    shipped mappings read (board = queue name, type = issue type, subType = sub-issue)."""
    [event] = ticket_events("at", _leaver(), LEAVER_NAMES, is_new=True)

    assert event.kind == EventKind.TICKET_CREATED
    assert event.dedupe_key == "ticket:351181:created"
    assert event.vendor == "autotask" and event.source == "at"
    assert event.occurred_at == datetime(2024, 5, 1, 11, 59, 2, 250000, tzinfo=UTC)
    assert event.client == ClientRef(type="company", id="174", name="Acme Manufacturing")
    assert event.subject == SubjectRef(type="ticket", id="351181", source="at")
    ticket = event.data["ticket"]
    assert ticket["board"] == ticket["queue"] == "HR Requests"
    assert (ticket["type"], ticket["subType"], ticket["status"]) == (
        "User Management", "Leaver", "New")
    assert ticket["summary"] == "Leaver - John Smith"
    assert ticket["contact"] == {"id": 30682, "name": "Maria López",
                                 "email": "maria.lopez@acme.example"}
    assert ticket["custom_fields"] == {"Leaver Name": "John Smith", "Last Day": "2024-05-31"}
    assert ticket["company"] == {"id": 174, "identifier": None, "name": "Acme Manufacturing"}
    assert ticket["closed"] is False and ticket["number"] == "T20240501.0012"
    assert event.raw == _leaver()


def test_an_edited_ticket_is_updated_keyed_by_its_activity_date() -> None:
    """A known ticket with new activity: ticket.updated, one per lastActivityDate."""
    ticket = load_fixture("tickets_page1.json")["items"][1]

    [event] = ticket_events("at", ticket, Names(), is_new=False)

    assert event.kind == EventKind.TICKET_UPDATED
    assert event.dedupe_key == "ticket:351190:2024-05-01T11:58:30.500Z"
    assert event.data["ticket"]["board"] is None  # unresolved names stay None, never ids


def test_a_ticket_created_and_edited_in_one_window_yields_both() -> None:
    """Seen first after an edit: created (by record) and updated (by change marker)."""
    ticket = {**_leaver(), "lastActivityDate": "2024-05-01T11:59:30Z"}

    kinds = [e.kind for e in ticket_events("at", ticket, LEAVER_NAMES, is_new=True)]

    assert kinds == [EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED]


def test_a_completed_ticket_is_closed_once_per_completion() -> None:
    """status Complete with completedDate → ticket.closed keyed by the completion."""
    ticket = load_fixture("tickets_page2.json")["items"][0]

    [event] = ticket_events("at", ticket, Names(labels={"status": "Complete"}), is_new=False)

    assert event.kind == EventKind.TICKET_CLOSED
    assert event.dedupe_key == "ticket:351200:closed:2024-05-01T11:59:40.000Z"
    assert event.data["ticket"]["closed"] is True


def test_a_managed_contract_becomes_an_agreement_created() -> None:
    """Contract → agreement with the category as ``type`` (what client-onboarding reads)."""
    contract = load_fixture("contracts.json")["items"][0]
    names = Names(labels={"contractType": "Recurring Service",
                          "contractCategory": "Managed Services", "status": "Active"},
                  company_name="Acme Manufacturing")

    event = contract_created("at", contract, names, seen_at=NOW)

    assert event.kind == EventKind.AGREEMENT_CREATED
    assert event.dedupe_key == "agreement:88:created"
    assert event.subject == SubjectRef(type="agreement", id="88", source="at")
    assert event.client == ClientRef(type="company", id="174", name="Acme Manufacturing")
    agreement = event.data["agreement"]
    assert agreement["type"] == "Managed Services"
    assert agreement["contract_type"] == "Recurring Service"
    assert (agreement["start_date"], agreement["end_date"]) == ("2024-06-01", "2025-05-31")
    assert agreement["status"] == "Active" and agreement["cancelled"] is False
    assert agreement["custom_fields"] == {"Endpoint Count": "42"}


def test_an_inactive_contract_is_cancelled_and_its_state_key_follows_its_fields() -> None:
    """Inactive = cancelled; a change of any normalized field makes a new state key."""
    contract = load_fixture("contracts.json")["items"][1]
    names = Names(labels={"contractType": "Block Hours", "status": "Inactive"})

    first = contract_state("at", contract, names, seen_at=NOW)
    same = contract_state("at", dict(contract), names, seen_at=NOW)
    renamed = contract_state("at", {**contract, "contractName": "Globex - 20h"}, names,
                             seen_at=NOW)

    assert first.kind == EventKind.AGREEMENT_UPDATED
    assert first.data["agreement"]["cancelled"] is True
    assert first.data["agreement"]["type"] == "Block Hours"  # no category: the contract type
    assert first.dedupe_key == same.dedupe_key != renamed.dedupe_key
    assert first.dedupe_key.startswith("agreement:89:state:")


def test_webhook_keys_are_matched_case_insensitively() -> None:
    """Nango writes PersonId, n8n PersonID: both parse; Fields keep their keys."""
    hook = parse_webhook(b'{"action":"Update","entitytype":"Ticket","id":"7","Fields":{},'
                         b'"sequenceNumber":9,"PersonId":12,"guid":"g"}')

    assert (hook.action, hook.entity_type, hook.id, hook.sequence, hook.person_id) == (
        "update", "ticket", 7, 9, 12)


def test_a_ticket_webhook_is_a_thin_hint() -> None:
    """Create/Update → one thin event keyed by webhook guid and sequence number."""
    hook = parse_webhook(fixture_bytes("webhook_ticket_update.json"))

    [event] = webhook_events("at", hook, received_at=NOW)

    assert event.kind == EventKind.TICKET_UPDATED
    assert event.dedupe_key == "ticket:351181:webhook:a1da62a4-2c49-40a8-8183-69994ce5b3eb:3"
    assert event.data[THIN] is True and event.data["webhook"]["action"] == "update"
    assert event.occurred_at == datetime(2024, 5, 1, 14, 57, 50, tzinfo=UTC)
    assert event.client is None  # the body is not trusted for routing


@pytest.mark.parametrize("body", [
    b'{"Action":"Delete","EntityType":"Ticket","Id":1}',
    b'{"Action":"Update","EntityType":"Company","Id":1}',
    b'{"Action":"Deactivated","EntityType":"Ticket","Id":1}',
])
def test_deletes_other_entities_and_deactivations_yield_nothing(body: bytes) -> None:
    """Only ticket Create/Update are events."""
    assert webhook_events("at", parse_webhook(body), received_at=NOW) == []


@pytest.mark.parametrize(("body", "field"), [
    (b"[]", "object"),
    (b'{"EntityType":"Ticket","Id":1}', "action"),
    (b'{"Action":"Update","EntityType":"Ticket","Id":"x1"}', "Id"),
    (b'{"Action":"Update","EntityType":"Ticket","Id":1,"Fields":[]}', "Fields"),
    (b'{"Action":"Update","EntityType":"Ticket","Id":1,"EventTime":"yesterday"}', "EventTime"),
])
def test_malformed_webhooks_name_the_field(body: bytes, field: str) -> None:
    """A bad body is a 400 naming what is wrong."""
    with pytest.raises(MalformedPayload, match=field):
        parse_webhook(body)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T12:00:01.44Z", datetime(2024, 5, 1, 12, 0, 1, 440000, tzinfo=UTC)),
    ("2024-05-01T12:00:01.1234567Z", datetime(2024, 5, 1, 12, 0, 1, 123456, tzinfo=UTC)),
    ("2024-05-01T12:00:01", datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)),
    ("2024-05-01T14:00:01+02:00", datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)),
])
def test_timestamps_of_any_fraction_length_parse(text: str, expected: datetime) -> None:
    """.NET writes 0-7 fraction digits; a time without zone is UTC."""
    assert parse_time(text, "t") == expected


def test_formatted_times_are_fixed_width_and_sort() -> None:
    """Cursor positions compare as strings in time order."""
    early = format_time(datetime(2024, 5, 1, 9, 0, 0, 5000, tzinfo=UTC))
    late = format_time(datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC))

    assert early == "2024-05-01T09:00:00.005Z" and early < late and len(early) == len(late)

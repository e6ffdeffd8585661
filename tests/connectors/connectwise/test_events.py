"""ConnectWise payloads → normalized Events (pure functions, recorded payloads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.base import THIN, MalformedPayload, is_thin
from connectors.connectwise.events import (
    callback_events,
    format_time,
    parse_callback,
    parse_time,
    record_events,
)
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

from .conftest import fixture_bytes, load_fixture

RECEIVED = datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC)

TICKET_69_DATA = {
    "ticket": {
        "id": 69,
        "summary": "Leaver: Alex Example",
        "board": "Service Desk",
        "type": "Leaver",
        "subType": "Standard user",
        "item": "Account",
        "status": "New",
        "priority": "Priority 3 - Normal",
        "closed": False,
        "contact": {"id": 2, "name": "Alex Example", "email": "alex.example@example.test"},
        "company": {"id": 24, "identifier": "ACME", "name": "Acme Ltd"},
        "initial_description": "Please offboard Alex Example. Last day 31 May.",
        "custom_fields": {
            "Leaver name": "Alex Example",
            "Last day": "2024-05-31T00:00:00Z",
            "Unset": None,
        },
    }
}


def test_ticket_added_callback_becomes_ticket_created() -> None:
    """A recorded ``added`` callback yields exactly the expected ticket.created Event."""
    body = fixture_bytes("callback_ticket_added.json")

    events = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)

    assert events == [
        Event(
            source="cw-prod",
            vendor="connectwise",
            kind=EventKind.TICKET_CREATED,
            dedupe_key="ticket:69:created",
            occurred_at=datetime(2024, 5, 1, 11, 55, tzinfo=UTC),
            client=ClientRef(id="ACME", name="Acme Ltd"),
            subject=SubjectRef(type="ticket", id="69"),
            data=TICKET_69_DATA,
            raw=json.loads(body),
        )
    ]


def test_raw_keeps_the_callback_untouched() -> None:
    """``raw`` is the delivered body as parsed, with ``Entity`` still a JSON string."""
    body = fixture_bytes("callback_ticket_added.json")

    (event,) = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)

    assert isinstance(event.raw["Entity"], str)
    assert event.raw == json.loads(body)


def test_polled_new_ticket_has_the_same_key_as_its_callback() -> None:
    """A poll and a callback that see the same creation collide in the inbox."""
    row = load_fixture("tickets_page1.json")[0]
    body = fixture_bytes("callback_ticket_added.json")

    polled = record_events("cw-prod", "ticket", row, is_new=True)
    pushed = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)

    assert [e.dedupe_key for e in polled] == [e.dedupe_key for e in pushed]
    assert polled[0].data == pushed[0].data


def test_existing_ticket_change_is_ticket_updated_keyed_by_last_updated() -> None:
    """A change to an older ticket is ticket.updated keyed ``ticket:{id}:{lastUpdated}``."""
    row = load_fixture("tickets_page1.json")[1]

    (event,) = record_events("cw-prod", "ticket", row, is_new=False)

    assert event.kind is EventKind.TICKET_UPDATED
    assert event.dedupe_key == "ticket:70:2024-05-01T11:52:30Z"
    assert event.occurred_at == datetime(2024, 5, 1, 11, 52, 30, tzinfo=UTC)
    assert event.data["ticket"]["status"] == "In Progress"
    assert event.raw == row


def test_closed_ticket_is_ticket_closed_keyed_by_closure() -> None:
    """closedFlag yields ticket.closed, one per closure (keyed by closedDate)."""
    row = load_fixture("tickets_page2.json")[0]

    (event,) = record_events("cw-prod", "ticket", row, is_new=False)

    assert event.kind is EventKind.TICKET_CLOSED
    assert event.dedupe_key == "ticket:71:closed:2024-05-01T11:58:00Z"
    assert event.data["ticket"]["closed"] is True


def test_new_ticket_edited_since_creation_yields_created_and_updated() -> None:
    """First seen after an edit: created (per record) and updated (per change)."""
    row = load_fixture("ticket_69.json")  # entered 11:55:00, last updated 11:56:10

    events = record_events("cw-prod", "ticket", row, is_new=True)

    assert [(e.kind, e.dedupe_key) for e in events] == [
        (EventKind.TICKET_CREATED, "ticket:69:created"),
        (EventKind.TICKET_UPDATED, "ticket:69:2024-05-01T11:56:10Z"),
    ]


def test_new_and_already_closed_ticket_yields_created_and_closed() -> None:
    """A ticket created and closed between two polls still launches and closes."""
    row = load_fixture("tickets_page2.json")[0]

    kinds = [e.kind for e in record_events("cw-prod", "ticket", row, is_new=True)]

    assert kinds == [EventKind.TICKET_CREATED, EventKind.TICKET_CLOSED]


def test_agreement_added_callback_becomes_agreement_created() -> None:
    """An agreement callback yields agreement.created with the normalized fields."""
    body = fixture_bytes("callback_agreement_added.json")

    (event,) = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)

    assert event.kind is EventKind.AGREEMENT_CREATED
    assert event.dedupe_key == "agreement:501:created"
    assert event.subject == SubjectRef(type="agreement", id="501")
    assert event.client == ClientRef(id="ACME", name="Acme Ltd")
    assert event.data == {
        "agreement": {
            "id": 501,
            "name": "Managed Services - Acme",
            "type": "Managed Services",
            "status": "Active",
            "start_date": "2024-05-01",
            "end_date": None,
            "cancelled": False,
            "company": {"id": 24, "identifier": "ACME", "name": "Acme Ltd"},
        }
    }


def test_polled_agreement_change_is_agreement_updated() -> None:
    """An older agreement that changed is agreement.updated keyed by lastUpdated."""
    row = load_fixture("agreements.json")[1]

    (event,) = record_events("cw-prod", "agreement", row, is_new=False)

    assert (event.kind, event.dedupe_key) == (
        EventKind.AGREEMENT_UPDATED,
        "agreement:480:2024-05-01T11:49:00Z",
    )


def test_company_created_and_company_updates_ignored() -> None:
    """Companies only have a created kind; their updates yield nothing."""
    company = {
        "id": 24,
        "identifier": "ACME",
        "name": "Acme Ltd",
        "status": {"id": 1, "name": "Active"},
        "types": [{"id": 1, "name": "Client"}],
        "_info": {"dateEntered": "2024-05-01T11:00:00Z", "lastUpdated": "2024-05-01T11:00:00Z"},
    }

    created = record_events("cw-prod", "company", company, is_new=True)
    updated = record_events("cw-prod", "company", company, is_new=False)

    assert [(e.kind, e.dedupe_key) for e in created] == [
        (EventKind.COMPANY_CREATED, "company:24:created")
    ]
    assert created[0].data["company"]["types"] == ["Client"]
    assert created[0].client == ClientRef(id="ACME", name="Acme Ltd")
    assert updated == []


def test_thin_callback_becomes_one_thin_event_keyed_by_message_id() -> None:
    """No Entity: one thin event that names the record and must be enriched."""
    body = fixture_bytes("callback_ticket_updated_thin.json")

    (event,) = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)

    assert is_thin(event)
    assert event.kind is EventKind.TICKET_UPDATED
    assert event.subject == SubjectRef(type="ticket", id="70")
    assert event.dedupe_key == "ticket:70:callback:6d1f0000-0000-4000-8000-000000000002"
    assert event.occurred_at == RECEIVED
    assert event.data == {THIN: True, "callback": {"action": "updated", "type": "ticket"}}


def test_thin_callback_without_message_id_is_keyed_by_body_digest() -> None:
    """Redeliveries of the same body collide even without a MessageId."""
    payload = json.loads(fixture_bytes("callback_ticket_updated_thin.json"))
    del payload["MessageId"]
    body = json.dumps(payload).encode()

    first = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)
    again = callback_events("cw-prod", parse_callback(body), received_at=RECEIVED)

    assert first[0].dedupe_key == again[0].dedupe_key
    assert first[0].dedupe_key.startswith("ticket:70:callback:")


@pytest.mark.parametrize("action", ["deleted", "merged"])
def test_deletions_and_unknown_actions_yield_nothing(action: str) -> None:
    """Actions without a normalized kind are accepted and ignored."""
    payload = json.loads(fixture_bytes("callback_ticket_added.json"))
    payload["Action"] = action

    callback = parse_callback(json.dumps(payload).encode())

    assert callback_events("cw-prod", callback, received_at=RECEIVED) == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("ID"), "'ID'"),
        (lambda p: p.update(ID="abc"), "'ID'"),
        (lambda p: p.pop("Type"), "'Type'"),
        (lambda p: p.update(Action=None), "'Action'"),
        (lambda p: p.update(Entity="{not json"), "'Entity'"),
        (lambda p: p.update(Entity="[1, 2]"), "'Entity'"),
        (lambda p: p.update(ID=70), "'Entity.id'"),
    ],
)
def test_malformed_callbacks_name_the_bad_field(mutate: object, field: str) -> None:
    """Each malformed body raises MalformedPayload (HTTP 400) naming its field."""
    payload = json.loads(fixture_bytes("callback_ticket_added.json"))
    mutate(payload)  # type: ignore[operator]

    with pytest.raises(MalformedPayload) as info:
        parse_callback(json.dumps(payload).encode())

    assert field in str(info.value)
    assert info.value.status == 400


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    """Bodies that are not a JSON object are rejected as malformed."""
    with pytest.raises(MalformedPayload):
        parse_callback(body)


def test_record_without_last_updated_is_malformed() -> None:
    """The change marker is required: without it no dedupe key can be built."""
    row = load_fixture("tickets_page1.json")[1]
    del row["_info"]["lastUpdated"]

    with pytest.raises(MalformedPayload, match=r"_info\.lastUpdated"):
        record_events("cw-prod", "ticket", row, is_new=False)


def test_timestamps_parse_to_utc_and_format_sortably() -> None:
    """Vendor timestamps (Z, offsets, fractions) normalize to whole-second UTC strings."""
    assert format_time(parse_time("2024-05-01T13:00:00.123+01:00", "x")) == ("2024-05-01T12:00:00Z")
    assert parse_time("2016-03-08T21:59:20Z", "x").tzinfo is UTC
    with pytest.raises(MalformedPayload, match="'when'"):
        parse_time("yesterday", "when")

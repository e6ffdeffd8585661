"""The HaloPSA connector's requests, over respx: auth, polling, paging and write-back."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from pydantic import ValidationError

from connectors.base import (
    AuthFailed,
    Cursor,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.halopsa import HaloPSAConnector
from connectors.http import MemoryBudget, RetryPolicy
from hub.core.events import EventKind, SubjectRef

from .conftest import NOW, load_fixture, make_config, sent_json

TICKET = SubjectRef(type="ticket", id="4821", source="halo-test")
SINCE = Cursor(position="2024-05-01T11:58:00.000000Z")
CONTRACTS_SINCE = Cursor(position="2024-05-01T10:30:00.000000Z|000000000295")


def _query(call: respx.models.Call) -> dict[str, str]:
    return dict(parse_qsl(call.request.url.query.decode()))


def test_token_request_uses_client_credentials_and_the_tenant(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """POST {url}/auth/token?tenant=acme with the client-credentials form, once."""
    list(connector.poll("tickets", SINCE))

    [call] = halo_api["token"].calls
    assert str(call.request.url) == "https://acme.halopsa.com/auth/token?tenant=acme"
    assert dict(parse_qsl(call.request.content.decode())) == {
        "grant_type": "client_credentials", "client_id": "5f1c0b9e-client",
        "client_secret": "halo-client-secret-0123456789", "scope": "all"}
    assert all(c.request.headers["authorization"] == "Bearer eyJhbGciOiJSUzI1NiJ9.halo-test-token"
               for c in halo_api["tickets"].calls)


def test_auth_server_from_authinfo_is_used_when_configured(halo_api: respx.MockRouter) -> None:
    """A separate authorisation server (``auth_url``) gets the token request."""
    route = halo_api.post("https://auth.halo.example/auth/token").respond(
        json=load_fixture("token.json"))
    with HaloPSAConnector("halo-test", make_config(auth_url="https://auth.halo.example/auth",
                                                   tenant=None)) as connector:
        list(connector.poll("tickets", SINCE))
    assert route.call_count == 1 and not halo_api["token"].called
    assert route.calls[0].request.url.query == b""


def test_ticket_poll_sends_exactly_halo_s_parameter_names(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """Halo ignores unknown parameters (and then returns every ticket): the request
    carries exactly the documented names, ``pageinate`` spelt Halo's way."""
    list(connector.poll("tickets", SINCE))

    first, second = halo_api["tickets"].calls
    assert _query(first) == {
        "lastupdatefromdate": "2024-05-01T11:56:00", "order": "id", "orderdesc": "false",
        "pageinate": "true", "page_size": "2", "page_no": "1"}
    assert _query(second) == {**_query(first), "page_no": "2"}


def test_ticket_poll_yields_created_updated_and_closed_with_names(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """New ticket → created (+ updated, it changed since), with custom fields from the
    detail read; type and status names from the tenant's lookups; Closed → closed."""
    pages = list(connector.poll("tickets", SINCE))

    events = [e for p in pages for e in p.events]
    assert [(e.kind, e.dedupe_key) for e in events] == [
        (EventKind.TICKET_CREATED, "ticket:4821:created"),
        (EventKind.TICKET_UPDATED, "ticket:4821:2024-05-01T12:00:01.123456Z"),
        (EventKind.TICKET_UPDATED, "ticket:4790:2024-05-01T11:59:30.000000Z"),
        (EventKind.TICKET_CLOSED, "ticket:4795:closed:2024-05-01T11:58:40.000000Z"),
    ]
    leaver = events[0].data["ticket"]
    assert leaver["type"] == "Leaver" and leaver["status"] == "New"
    assert leaver["custom_fields"]["Leaver Name"] == "John Smith"
    assert events[3].data["ticket"]["status"] == "Closed"
    assert halo_api["ticket"].call_count == 1  # details only for the new ticket
    assert halo_api["types"].call_count == 1 and halo_api["statuses"].call_count == 1
    # every page but the last keeps the starting cursor; the last has the newest change
    assert [p.cursor.position for p in pages] == [
        "2024-05-01T11:58:00.000000Z", "2024-05-01T12:00:01.123456Z"]


def test_first_poll_starts_at_halo_s_newest_change_minus_backfill(
    halo_api: respx.MockRouter,
) -> None:
    """No cursor: one newest-first row gives Halo's "now" (the hub's clock, a day ahead
    here, never decides); the window opens ``backfill`` + lookback before it."""
    newest = {"record_count": 3, "tickets": [load_fixture("tickets_page1.json")["tickets"][0]]}
    halo_api["tickets"].side_effect = [
        httpx.Response(200, json=newest), httpx.Response(200, json={"tickets": []})]
    with HaloPSAConnector("halo-test", make_config(backfill=timedelta(hours=1)),
                          clock=lambda: NOW + timedelta(days=1)) as connector:
        pages = list(connector.poll("tickets", None))
    probe, walk = halo_api["tickets"].calls
    assert _query(probe) == {"order": "last_update", "orderdesc": "true", "pageinate": "true",
                             "page_size": "1", "page_no": "1"}
    assert _query(walk)["lastupdatefromdate"] == "2024-05-01T10:58:01"
    assert pages[-1].cursor.position == "2024-05-01T11:00:01.123456Z"


def test_an_empty_halo_starts_at_the_epoch(halo_api: respx.MockRouter) -> None:
    """No ticket at all: every ticket that appears later is new."""
    halo_api["tickets"].side_effect = None
    halo_api["tickets"].respond(json={"record_count": 0, "tickets": []})
    with HaloPSAConnector("halo-test", make_config()) as connector:
        [page] = list(connector.poll("tickets", None))
    assert page.cursor.position == "1970-01-01T00:00:00.000000Z"


def test_page_size_is_capped_at_halo_s_maximum() -> None:
    """Halo pages hold at most 100 records; a bigger page_size is a config error."""
    with pytest.raises(ValidationError):
        make_config(page_size=101)
    assert make_config(page_size=100).page_size == 100


def test_a_page_longer_than_page_size_means_paging_was_ignored(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """If Halo answers with every record (a parameter it did not know), the poll stops
    with an error instead of taking the whole table as one page."""
    everything = load_fixture("tickets_page1.json")
    everything["tickets"] += load_fixture("tickets_page2.json")["tickets"]
    halo_api["tickets"].mock(side_effect=None).respond(json=everything)

    with pytest.raises(PermanentError, match="ignored the paging"):
        list(connector.poll("tickets", SINCE))


def test_a_repeated_page_stops_the_walk(halo_api: respx.MockRouter) -> None:
    """``page_no`` ignored (the same full page again and again) ends with an error."""
    page = load_fixture("tickets_page1.json")
    page.pop("record_count")
    halo_api["tickets"].mock(side_effect=None).respond(json=page)
    with HaloPSAConnector("halo-test", make_config(),
                          clock=lambda: NOW) as connector, pytest.raises(PermanentError):
        list(connector.poll("tickets", SINCE))
    assert halo_api["tickets"].call_count == 2


def test_429_with_retry_after_pauses_the_whole_source(halo_api: respx.MockRouter) -> None:
    """Halo's per-tenant limit: a 429's Retry-After pauses every request of the source."""
    budget = MemoryBudget(1000, 60)
    halo_api["tickets"].mock(side_effect=None).respond(
        429, text="Too Many Requests", headers={"Retry-After": "90"})
    with HaloPSAConnector("halo-test", make_config(), budget=budget,
                          retry=RetryPolicy(sleep=lambda _s: None)) as connector:
        with pytest.raises(RateLimited) as info:
            list(connector.poll("tickets", SINCE))
        with pytest.raises(RateLimited):
            connector.find_note(TICKET, "k")
    assert info.value.retry_after == 90
    assert 80 < budget.paused_for() <= 90
    assert halo_api["tickets"].call_count == 1 and not halo_api["actions"].called


def test_a_short_429_is_waited_out_and_retried(halo_api: respx.MockRouter) -> None:
    """Retry-After within the inline bound: wait, then the same request succeeds."""
    waits: list[float] = []
    halo_api["contracts"].side_effect = [
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(200, json=load_fixture("contracts.json")),
    ]
    with HaloPSAConnector("halo-test", make_config(page_size=100),
                          retry=RetryPolicy(sleep=waits.append)) as connector:
        list(connector.poll("contracts", CONTRACTS_SINCE))
    assert waits == [2.0] and halo_api["contracts"].call_count == 2


def test_a_refused_token_is_refreshed_once(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """401 from the API: one new token, the request resent once; a second 401 fails."""
    halo_api["contracts"].side_effect = [httpx.Response(401),
                                         httpx.Response(200, json=load_fixture("contracts.json"))]
    list(connector.poll("contracts", CONTRACTS_SINCE))
    assert halo_api["token"].call_count == 2

    halo_api["contracts"].side_effect = None
    halo_api["contracts"].respond(401)
    with pytest.raises(AuthFailed):
        list(connector.poll("contracts", CONTRACTS_SINCE))


def test_bad_client_credentials_are_auth_failed(halo_api: respx.MockRouter) -> None:
    """The token endpoint's 401 (invalid_client) → AuthFailed, no API call."""
    halo_api["token"].respond(401, json={"error": "invalid_client"})
    with HaloPSAConnector("halo-test", make_config()) as connector, pytest.raises(AuthFailed):
        list(connector.poll("tickets", None))
    assert not halo_api["tickets"].called


def test_contract_poll_parameters_and_events(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """ClientContract has no date filter: the walk is by id; a contract above the
    cursor's id is created, older ones changed inside the window are updated."""
    pages = list(connector.poll("contracts", CONTRACTS_SINCE))

    assert _query(halo_api["contracts"].calls[0]) == {
        "order": "id", "orderdesc": "false", "includeinactive": "true",
        "pageinate": "true", "page_size": "2", "page_no": "1"}
    events = [e for p in pages for e in p.events]
    assert [(e.kind, e.dedupe_key) for e in events] == [
        (EventKind.AGREEMENT_CREATED, "agreement:301:created"),
        (EventKind.AGREEMENT_UPDATED, "agreement:290:2024-05-01T11:00:00.000000Z"),
    ]
    assert events[1].data["agreement"]["cancelled"] is True
    assert pages[-1].cursor.position == "2024-05-01T11:59:00.000000Z|000000000301"


def test_the_first_contract_poll_reports_only_contracts_in_halo_s_window(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """No cursor: Halo's newest ``last_modified`` (11:59) opens the window, so only the
    contract modified inside it is new; existing ones never launch onboarding."""
    newest = {"contracts": [load_fixture("contracts.json")["contracts"][0]]}
    halo_api["contracts"].side_effect = [httpx.Response(200, json=newest),
                                         httpx.Response(200, json=load_fixture("contracts.json"))]

    pages = list(connector.poll("contracts", None))

    assert [e.dedupe_key for p in pages for e in p.events] == ["agreement:301:created"]


def test_post_note_is_an_array_with_the_marker_private_and_no_email(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """POST /Actions takes an array; the private flag is ``hiddenfromuser``."""
    ref = connector.post_note(TICKET, "Step done.", key="abc123")

    assert ref.id == "90013"
    assert sent_json(halo_api["add_action"].calls[0]) == [{
        "ticket_id": 4821, "outcome": "Private Note", "note": "Step done.\n\n[msphub:abc123]",
        "hiddenfromuser": True, "sendemail": False}]
    assert connector.api_agent_id == 7  # learned from our own action


def test_visible_notes_and_a_configured_outcome(halo_api: respx.MockRouter) -> None:
    """note_visibility: visible → shown to the end user; outcome name and id as set."""
    config = make_config(note_visibility="visible", note_outcome="Update", note_outcome_id=23)
    with HaloPSAConnector("halo-test", config) as connector:
        connector.post_note(TICKET, "Hello", key="k1")
    [body] = sent_json(halo_api["add_action"].calls[0])
    assert body["hiddenfromuser"] is False
    assert (body["outcome"], body["outcome_id"]) == ("Update", 23)


def test_a_note_post_that_failed_after_sending_is_not_retried(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """500 on POST: maybe applied → raised at once for the hub to look for the marker."""
    halo_api["add_action"].respond(500)
    with pytest.raises(TransientError) as info:
        connector.post_note(TICKET, "Step done.", key="abc123")
    assert info.value.maybe_applied and halo_api["add_action"].call_count == 1


def test_find_note_reads_recent_actions_and_matches_the_marker(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """GET /Actions?ticket_id=&excludesys=true (every action: the order ``count`` cuts
    in is undocumented); the marker finds the action."""
    found = connector.find_note(TICKET, "0b9e6c1a")

    assert found is not None and found.id == "90012"
    assert _query(halo_api["actions"].calls[0]) == {
        "ticket_id": "4821", "excludesys": "true"}
    assert connector.find_note(TICKET, "ffff") is None


def test_attach_once_per_key(connector: HaloPSAConnector, halo_api: respx.MockRouter) -> None:
    """An attachment whose description carries the key's marker is not posted again."""
    assert connector.attach(TICKET, "e.txt", b"evidence", title="Evidence",
                            key="0b9e6c1a") == "501"
    assert not halo_api["add_attachment"].called

    assert connector.attach(TICKET, "e.txt", b"evidence", title="Evidence", key="new1") == "502"
    assert sent_json(halo_api["add_attachment"].calls[0]) == [{
        "ticket_id": 4821, "filename": "e.txt", "data_base64": "ZXZpZGVuY2U=",
        "desc": "Evidence [msphub:new1]", "isimage": False}]


def test_set_status_is_an_action_with_new_status(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """The status name is resolved for the ticket's type; the change is a marked action."""
    connector.set_status(TICKET, "completed")

    assert _query(halo_api["statuses"].calls[-1]) == {"tickettype_id": "27"}
    [body] = sent_json(halo_api["add_action"].calls[0])
    assert body["new_status"] == 8 and body["hiddenfromuser"] is True
    assert "[msphub:status-4821-8]" in body["note"]


def test_set_status_is_a_no_op_when_already_there_and_unknown_names_fail(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """Already New → nothing posted; a status the type lacks → NotFound."""
    connector.set_status(TICKET, "New")
    assert not halo_api["add_action"].called
    with pytest.raises(PermanentError, match="not found"):
        connector.set_status(TICKET, "Archived")


def test_write_back_refuses_other_sources_and_bad_ids(connector: HaloPSAConnector) -> None:
    """A ticket of another source, or an id that is not a number, never reaches Halo."""
    with pytest.raises(PermanentError):
        connector.post_note(SubjectRef(type="ticket", id="1", source="cw"), "x", key="k")
    with pytest.raises(PermanentError):
        connector.post_note(SubjectRef(type="ticket", id="../Agent"), "x", key="k")


def test_a_malformed_ticket_is_skipped_not_the_poll(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """A row without a usable last_update is logged and skipped; the rest still count."""
    page = load_fixture("tickets_page2.json")
    page["tickets"].insert(0, {"id": "not-an-id", "last_update": "never"})
    halo_api["tickets"].mock(side_effect=None).respond(json={**page, "record_count": 2})

    events = [e for p in connector.poll("tickets", SINCE) for e in p.events]

    assert [e.dedupe_key for e in events] == ["ticket:4795:closed:2024-05-01T11:58:40.000000Z"]

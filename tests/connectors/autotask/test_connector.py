"""The connector against vendor-shaped payloads: polls, webhooks, enrichment, write-back,
webhook registration."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx

from connectors.autotask import AutotaskConnector
from connectors.autotask.sandbox import dotnet_body
from connectors.autotask.signing import sign
from connectors.base import Cursor, NotFound, RateLimited, WebhookRejected, WebhookRequest
from connectors.writeback import marker
from hub.core.events import EventKind, SubjectRef
from tests.connectors.autotask.conftest import (
    API,
    API_RESOURCE,
    HOOK_URL,
    NOW,
    SECRET,
    body_of,
    fixture_bytes,
    load_fixture,
    make_config,
    page,
)

TICKET = SubjectRef(type="ticket", id="351181", source="at-test")


def _events(connector: AutotaskConnector, stream: str, cursor: Cursor | None = None) -> list:
    return [e for p in connector.poll(stream, cursor) for e in p.events]


# -- polling -------------------------------------------------------------------------------


def test_polled_tickets_carry_names_and_the_last_page_moves_the_cursor(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Queue/issue/status names from the field metadata, company and contact names from
    one batched query each; only the last page advances the cursor."""
    pages = list(connector.poll("tickets", Cursor(position="2024-05-01T11:58:00.000Z")))

    events = [e for p in pages for e in p.events]
    leaver = next(e for e in events if e.subject.id == "351181")
    assert leaver.kind == EventKind.TICKET_CREATED
    assert leaver.data["ticket"]["board"] == "HR Requests"
    assert leaver.data["ticket"]["subType"] == "Leaver"
    assert leaver.data["ticket"]["contact"]["name"] == "Maria López"
    assert leaver.client.name == "Acme Manufacturing"
    assert [p.cursor.position for p in pages] == [
        "2024-05-01T11:58:00.000Z", "2024-05-01T11:59:50.123Z"]
    assert autotask_api["ticket_fields"].call_count == 1  # cached across pages
    [companies] = autotask_api["companies"].calls[:1]
    assert body_of(companies)["filter"] == [{"op": "in", "field": "id", "value": [174, 175]}]


def test_our_own_activity_yields_no_update(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Ticket 351201's last activity is our API resource (a note we posted): no event."""
    events = _events(connector, "tickets", Cursor(position="2024-05-01T11:58:00.000Z"))

    assert "351201" not in {e.subject.id for e in events}
    assert {e.kind for e in events if e.subject.id == "351200"} == {EventKind.TICKET_CLOSED}


def test_a_queue_filter_is_sent_as_ids_and_applied(autotask_api: respx.MockRouter) -> None:
    """queues: [HR Requests] → queueID in [29683482] in the query, by name in config."""
    with AutotaskConnector("at-test", make_config(queues=["hr requests"]),
                           clock=lambda: NOW) as connector:
        events = _events(connector, "tickets")

    query = body_of(autotask_api["tickets"].calls.last)["filter"]
    assert {"op": "in", "field": "queueID", "value": [29683482]} in query
    assert {e.data["ticket"]["queue"] for e in events} == {"HR Requests"}


def test_the_first_contract_poll_reads_contracts_starting_today_then_by_id(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """No cursor: startDate ≥ today; the cursor is then the highest id seen."""
    pages = list(connector.poll("contracts", None))
    first_filter = body_of(autotask_api["contracts"].calls.last)["filter"]
    autotask_api["contracts"].respond(json=page([]))
    again = list(connector.poll("contracts", pages[-1].cursor))

    assert first_filter == [{"op": "gte", "field": "startDate",
                             "value": "2024-05-01T00:00:00.000Z"}]
    assert [e.kind for e in pages[0].events] == [EventKind.AGREEMENT_CREATED] * 2
    assert pages[-1].cursor.position == "00000000000000000089"
    assert body_of(autotask_api["contracts"].calls.last)["filter"] == [
        {"op": "gt", "field": "id", "value": 89}]
    assert again[-1].cursor.position == "00000000000000000089"
    managed = pages[0].events[0].data["agreement"]
    assert (managed["type"], managed["status"]) == ("Managed Services", "Active")


def test_contract_states_report_each_state_once(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Two polls of unchanged contracts give the same keys (the inbox keeps one)."""
    first = _events(connector, "contract_states")
    second = _events(connector, "contract_states")

    assert [e.kind for e in first] == [EventKind.AGREEMENT_UPDATED] * 2
    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in second]
    assert first[1].data["agreement"]["cancelled"] is True


# -- webhooks ------------------------------------------------------------------------------


def _request(body: bytes, signature: str | None, **query: str) -> WebhookRequest:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hook-Signature"] = signature
    return WebhookRequest(headers=headers, body=body, query=query)


def test_a_signed_webhook_verifies_and_parses_to_a_thin_event(
        connector: AutotaskConnector) -> None:
    """Signed over the .NET-escaped form (non-ASCII title): accepted, parsed."""
    body = fixture_bytes("webhook_ticket_update.json")
    request = _request(body, sign(dotnet_body(json.loads(body)), SECRET))

    connector.verify(request)
    [event] = connector.parse(request)

    assert event.kind == EventKind.TICKET_UPDATED and event.subject == TICKET


@pytest.mark.parametrize("signature", [None, "sha1=bm9wZQ==", sign(b"other body", SECRET)])
def test_a_bad_signature_is_rejected(connector: AutotaskConnector,
                                     signature: str | None) -> None:
    """Missing or wrong X-Hook-Signature → 401."""
    with pytest.raises(WebhookRejected):
        connector.verify(_request(fixture_bytes("webhook_ticket_update.json"), signature))


def test_a_deactivation_notice_is_not_trusted(connector: AutotaskConnector) -> None:
    """Our deactivation URL's calls are refused (and logged for the admin)."""
    body = b'{"Action":"Deactivated","EntityType":"Ticket","Id":0}'
    with pytest.raises(WebhookRejected, match="deactivation"):
        connector.verify(_request(body, sign(body, SECRET), deactivated="1"))


def test_an_update_by_our_api_user_is_dropped(autotask_api: respx.MockRouter) -> None:
    """PersonID = our resource: our own change, no event."""
    body = fixture_bytes("webhook_ticket_update.json").replace(b"29682885",
                                                              str(API_RESOURCE).encode())
    with AutotaskConnector("at-test", make_config(api_resource_id=API_RESOURCE)) as c:
        assert c.parse(_request(body, None)) == []


def test_enrichment_reads_the_ticket_and_produces_full_events(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """The webhook is a hint: the ticket is read, names resolved, keys by record."""
    ticket = load_fixture("tickets_page1.json")["items"][0]
    autotask_api.get(f"{API}/Tickets/351181", name="ticket").respond(json={"item": ticket})
    [thin] = connector.parse(_request(fixture_bytes("webhook_ticket_create.json"), None))

    [event] = connector.enrich(thin)

    assert event.kind == EventKind.TICKET_CREATED
    assert event.dedupe_key == "ticket:351181:created"  # what the poll would produce too
    assert event.data["ticket"]["board"] == "HR Requests"


def test_enrichment_of_a_deleted_ticket_yields_nothing(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """{"item": null}: the ticket is gone, nothing to do."""
    autotask_api.get(f"{API}/Tickets/351181").respond(json={"item": None})
    [thin] = connector.parse(_request(fixture_bytes("webhook_ticket_create.json"), None))

    assert connector.enrich(thin) == []


# -- write-back ----------------------------------------------------------------------------


def test_a_note_is_posted_with_type_publish_title_and_marker(
        autotask_api: respx.MockRouter) -> None:
    """Note type and publish given by label are sent as picklist values."""
    route = autotask_api.post(f"{API}/Tickets/351181/Notes").respond(json={"itemId": 99876543})
    config = make_config(note_type="Summary", note_publish="All Autotask Users",
                         note_title="msphub progress")
    with AutotaskConnector("at-test", config) as connector:
        ref = connector.post_note(TICKET, "Step done", key="k1")

    body = body_of(route.calls.last)
    assert ref.id == "99876543"
    assert (body["noteType"], body["publish"], body["title"]) == (3, 1, "msphub progress")
    assert body["description"].endswith(marker("k1")) and body["ticketID"] == 351181


def test_a_note_is_found_by_its_marker(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """TicketNotes/query by ticketID and description contains the marker."""
    route = autotask_api.post(f"{API}/TicketNotes/query").respond(json=page([
        {"id": 5, "ticketID": 351181, "description": f"x\n\n{marker('k1')}"}]))

    found = connector.find_note(TICKET, "k1")

    assert found is not None and found.id == "5"
    assert {"op": "contains", "field": "description", "value": marker("k1")} in \
        body_of(route.calls.last)["filter"]


def test_the_completion_record_is_attached_once_and_within_the_size_limit(
        autotask_api: respx.MockRouter) -> None:
    """Over max_attachment_bytes the file is cut with a notice; a second call finds the
    first attachment by the marker in its title and uploads nothing."""
    listed = autotask_api.post(f"{API}/TicketAttachments/query").mock(side_effect=[
        httpx.Response(200, json=page([])),
        httpx.Response(200, json=page([{"id": 7, "title": f"Completion {marker('k2')}"}]))])
    upload = autotask_api.post(f"{API}/Tickets/351181/Attachments").respond(json={"itemId": 7})
    with AutotaskConnector("at-test", make_config(max_attachment_bytes=2048)) as connector:
        first = connector.attach(TICKET, "record.txt", b"x" * 5000, title="Completion",
                                 key="k2")
        second = connector.attach(TICKET, "record.txt", b"x" * 5000, title="Completion",
                                  key="k2")

    body = body_of(upload.calls.last)
    data = base64.b64decode(body["data"])
    assert first == second == "7" and upload.call_count == 1 and listed.call_count == 2
    assert len(data) <= 2048 and b"truncated by msphub" in data
    assert body["title"].endswith(marker("k2")) and len(body["title"]) <= 128
    assert body["attachmentType"] == "FILE_ATTACHMENT" and body["parentID"] == 351181


def test_the_attachment_byte_window_is_waited_for(autotask_api: respx.MockRouter) -> None:
    """Past 10,000,000 bytes in 5 minutes Autotask refuses uploads: we wait instead."""
    autotask_api.post(f"{API}/TicketAttachments/query").respond(json=page([]))
    autotask_api.post(f"{API}/Tickets/351181/Attachments").respond(json={"itemId": 1})
    config = make_config(max_attachment_bytes=4096, attachment_window_bytes=6000)
    with AutotaskConnector("at-test", config) as connector:
        connector.attach(TICKET, "a.txt", b"a" * 4000, title="A", key="a")
        with pytest.raises(RateLimited) as info:
            connector.attach(TICKET, "b.txt", b"b" * 4000, title="B", key="b")

    assert 250 < (info.value.retry_after or 0) <= 300


def test_the_status_is_set_by_name_once(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """PATCH Tickets {id, status: 5} for "Complete"; no PATCH when already complete."""
    ticket = load_fixture("tickets_page1.json")["items"][0]
    read = autotask_api.get(f"{API}/Tickets/351181").mock(side_effect=[
        httpx.Response(200, json={"item": ticket}),
        httpx.Response(200, json={"item": {**ticket, "status": 5}})])
    patch = autotask_api.patch(f"{API}/Tickets").respond(json={"itemId": 351181})

    connector.set_status(TICKET, "complete")
    connector.set_status(TICKET, "Complete")

    assert patch.call_count == 1 and read.call_count == 2
    assert body_of(patch.calls.last) == {"id": 351181, "status": 5}
    with pytest.raises(NotFound):
        connector.set_status(TICKET, "Archived")


# -- webhook registration ------------------------------------------------------------------


def test_registration_creates_inactive_adds_fields_and_exclusion_then_activates(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Create (inactive) → Fields → ExcludedResources (our API user) → activate."""
    autotask_api.post(f"{API}/TicketWebhooks/query").respond(json=page([]))
    created = autotask_api.post(f"{API}/TicketWebhooks").respond(json={"itemId": 17})
    fields = autotask_api.post(f"{API}/TicketWebhooks/17/Fields").respond(json={"itemId": 1})
    excluded = autotask_api.post(f"{API}/TicketWebhooks/17/ExcludedResources").respond(
        json={"itemId": 2})
    activate = autotask_api.patch(f"{API}/TicketWebhooks").respond(json={"itemId": 17})

    assert connector.register_webhooks(HOOK_URL) == ["17"]

    hook = body_of(created.calls.last)
    assert hook["isActive"] is False and hook["secretKey"] == SECRET
    assert hook["webhookUrl"] == HOOK_URL and hook["deactivationUrl"].endswith("deactivated=1")
    assert len(hook["name"]) <= 50
    sent = {(b["fieldID"], b["isSubscribedField"], b["isDisplayAlwaysField"])
            for b in map(body_of, fields.calls)}
    assert (1, True, False) in sent and (6, False, True) in sent and len(sent) == 7
    assert body_of(excluded.calls.last) == {"webhookID": 17, "resourceID": API_RESOURCE}
    assert body_of(activate.calls.last) == {"id": 17, "isActive": True}
    order = [c.request.url.path for c in autotask_api.calls
             if "TicketWebhooks" in c.request.url.path and "query" not in c.request.url.path]
    assert order.index("/atservicesrest/V1.0/TicketWebhooks/17/ExcludedResources") < len(
        order) - 1 and order[-1] == "/atservicesrest/V1.0/TicketWebhooks"


def test_registration_keeps_a_good_webhook_and_replaces_a_broken_one(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Idempotent: an active, ready entry is kept; an inactive duplicate is deleted."""
    autotask_api.post(f"{API}/TicketWebhooks/query").respond(json=page([
        {"id": 17, "name": "msphub at-test", "isActive": True, "isReady": True},
        {"id": 18, "name": "msphub at-test", "isActive": False, "isReady": True}]))
    deleted = autotask_api.delete(f"{API}/TicketWebhooks/18").respond(json={"itemId": 18})
    created = autotask_api.post(f"{API}/TicketWebhooks")

    assert connector.register_webhooks(HOOK_URL) == ["17"]
    assert deleted.call_count == 1 and created.call_count == 0


def test_removal_deletes_every_webhook_for_the_url(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """remove_webhooks counts what it deleted; one already gone is not an error."""
    autotask_api.post(f"{API}/TicketWebhooks/query").respond(json=page([{"id": 17},
                                                                        {"id": 18}]))
    autotask_api.delete(f"{API}/TicketWebhooks/17").respond(json={"itemId": 17})
    autotask_api.delete(f"{API}/TicketWebhooks/18").respond(404, json={"errors": ["gone"]})

    assert connector.remove_webhooks(HOOK_URL) == 1

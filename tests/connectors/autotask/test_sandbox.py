"""The sandbox behaves like Autotask where the connector depends on it: signed webhook
deliveries (raw UTF-8 on the wire, signature over the .NET form), the excluded resource,
the 3-thread limit, the zone lookup and POSTed paging."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from connectors.autotask import AutotaskConfig, AutotaskConnector
from connectors.autotask.sandbox import SandboxServer
from connectors.autotask.signing import sign, signature_ok
from connectors.base import Directory, Linkable, WebhookRequest
from connectors.loopback import LoopbackServer
from hub.core.events import EventKind, SubjectRef
from tests.e2e.harness import wait_until

SECRET = "sandbox-webhook-secret-0123456789"


class Receiver:
    """A loopback endpoint that records every delivery."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            request = Request(scope, receive)
            body = await request.body()
            with self._lock:
                self.got.append((body, dict(request.headers)))
            await Response(status_code=200)(scope, receive, send)

        self.server = LoopbackServer(app)

    def deliveries(self) -> list[tuple[bytes, dict[str, str]]]:
        with self._lock:
            return list(self.got)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        yield srv


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


def _connector(server: SandboxServer) -> AutotaskConnector:
    return AutotaskConnector("at", AutotaskConfig.model_validate(server.connector_config()))


def test_webhooks_are_signed_over_the_dotnet_form_and_skip_our_own_changes(
        server: SandboxServer, receiver: Receiver) -> None:
    """A technician's new ticket with an accented title is delivered and verifies; the
    status change our API user makes is not delivered (it is an excluded resource)."""
    # Given our webhook registered through the connector (fields, exclusion, activation)
    connector = _connector(server)
    connector.register_webhooks(f"{receiver.server.url}/hook")
    store = server.sandbox.store
    company = store.create_company("Société Générale & Fils")
    # When a technician opens a ticket, and then our API user completes it
    ticket = store.create_ticket("Départ: José Müller + 😀", company_id=company["id"])
    wait_until(lambda: receiver.deliveries(), timeout=10, what="the Create delivery")
    connector.set_status(SubjectRef(type="ticket", id=str(ticket["id"]), source="at"),
                         "Complete")
    # and the technician changes the title (a subscribed field)
    store.update_ticket(ticket["id"], title="Départ: José Müller (done)")
    wait_until(lambda: len(receiver.deliveries()) >= 2, timeout=10, what="the Update delivery")
    server.sandbox.wait_for_webhooks()

    deliveries = receiver.deliveries()
    assert len(deliveries) == 2  # the API user's status change was not delivered
    body, headers = deliveries[0]
    assert "José".encode() in body  # raw UTF-8 on the wire …
    assert headers["x-hook-signature"] != sign(body, SECRET)  # … signed over the .NET form
    assert signature_ok(body, headers["x-hook-signature"], SECRET)
    request = WebhookRequest(headers=headers, body=body)
    connector.verify(request)
    [event] = connector.parse(request)
    assert event.kind == EventKind.TICKET_CREATED and event.subject.id == str(ticket["id"])
    connector.close()


def test_a_fourth_concurrent_request_on_one_endpoint_is_refused(server: SandboxServer) -> None:
    """Without our limiter, 6 parallel queries: some are refused with Itgenatr005."""
    at = server.sandbox
    at.faults.set_delay(200)
    url = f"{at.zone_url()}V1.0/Tickets/query"
    headers = {"ApiIntegrationCode": at.integration_code, "UserName": at.username,
               "Secret": at.secret}
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        answer = httpx.post(url, headers=headers, timeout=10, json={
            "filter": [{"op": "gt", "field": "id", "value": 0}], "MaxRecords": 10})
        with lock:
            statuses.append(answer.status_code)
            if answer.status_code == 500:
                assert "Itgenatr005" in answer.text

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses.count(200) >= 3 and 500 in statuses
    assert at.thread_refusals == statuses.count(500)


def test_the_zone_lookup_refuses_an_unknown_user_and_paging_needs_the_same_body(
        server: SandboxServer) -> None:
    """zoneInformation: 500 for a user it does not know; a next page requested with a
    different body is refused."""
    at = server.sandbox
    lookup = httpx.get(f"{server.url}/atservicesrest/v1.0/zoneInformation",
                       params={"user": "nobody@example"}, timeout=10)
    assert lookup.status_code == 500
    server.seed("tickets", 3)
    headers = {"ApiIntegrationCode": at.integration_code, "UserName": at.username,
               "Secret": at.secret}
    query = {"filter": [{"op": "gt", "field": "id", "value": 0}], "MaxRecords": 1}
    first = httpx.post(f"{at.zone_url()}V1.0/Tickets/query", headers=headers, json=query,
                       timeout=10).json()
    next_url = first["pageDetails"]["nextPageUrl"]
    same = httpx.post(next_url, headers=headers, json=query, timeout=10)
    other = httpx.post(next_url, headers=headers, json={**query, "MaxRecords": 2}, timeout=10)
    assert same.status_code == 200 and len(same.json()["items"]) == 1
    assert same.json()["items"][0]["id"] > first["items"][0]["id"]
    assert other.status_code == 400


def test_a_tenant_moved_to_another_zone_is_followed(server: SandboxServer) -> None:
    """After a zone move the old zone answers 401; the connector looks the zone up again
    and carries on there (one extra lookup, no error)."""
    server.seed("tickets", 2)
    connector = _connector(server)
    assert sum(len(p.events) for p in connector.poll("tickets", None)) == 2

    server.sandbox.move_zone()
    pages = list(connector.poll("tickets", None))

    assert sum(len(p.events) for p in pages) == 2
    assert connector.client.zone_lookups == 2
    assert connector.client.api_root.startswith(server.sandbox.zone_url().rstrip("/"))
    connector.close()


def test_active_companies_are_offered_for_linking(server: SandboxServer) -> None:
    """linkables(): each active company as a ``company`` record (Directory protocol)."""
    store = server.sandbox.store
    acme = store.create_company("Acme Ltd")
    store.create_company("Gone Ltd", isActive=False)
    connector = _connector(server)

    assert isinstance(connector, Directory)
    records = connector.linkables()

    assert Linkable(type="company", id=str(acme["id"]), name="Acme Ltd") in records
    assert "Gone Ltd" not in {r.name for r in records}
    connector.close()

"""Every request the HaloPSA connector sends is checked against Halo's OpenAPI document."""

from __future__ import annotations

import httpx
import pytest
import respx

from connectors.base import Cursor, WebhookRequest
from connectors.halopsa import HaloPSAConnector
from connectors.halopsa.sandbox import SandboxServer
from hub.core.events import SubjectRef

from .conftest import API, NOW, fixture_bytes, make_config
from .spec_check import NOT_IN_SPEC, SpecChecker, load_spec

TICKET = SubjectRef(type="ticket", id="4821")


def _exercise(connector: HaloPSAConnector) -> None:
    """Call every connector operation that talks to Halo."""
    list(connector.poll("tickets", Cursor(position="2024-05-01T11:58:00.000000Z")))
    list(connector.poll("contracts", None))
    list(connector.poll("contracts", Cursor(position="2024-05-01T10:00:00.000000Z|000000000001")))
    request = WebhookRequest(headers={}, body=fixture_bytes("webhook_new_ticket.json"))
    for event in connector.parse(request):
        connector.enrich(event)
    connector.post_note(TICKET, "Step done.", key="k1")
    connector.find_note(TICKET, "k1")
    connector.attach(TICKET, "evidence.txt", b"evidence", title="Evidence", key="k2")
    connector.set_status(TICKET, "Completed")
    connector.linkables()


def test_every_request_matches_the_openapi_document(halo_api: respx.MockRouter) -> None:
    """Paths under /api, methods, query parameter names and types, array bodies whose
    fields the schema declares, bearer auth; the token request as allow-listed."""
    checker = SpecChecker(load_spec())

    with HaloPSAConnector("halo-spec", make_config(), clock=lambda: NOW) as connector:
        _exercise(connector)
    for call in halo_api.calls:
        checker.check(call.request)

    assert checker.problems == []
    in_spec = {
        ("GET", "/Tickets"), ("GET", "/Tickets/{id}"), ("GET", "/TicketType"),
        ("GET", "/Status"), ("GET", "/ClientContract"), ("GET", "/Actions"),
        ("POST", "/Actions"), ("GET", "/Attachment"), ("POST", "/Attachment"),
        ("GET", "/Client"),
    }
    assert checker.checked == in_spec | set(NOT_IN_SPEC)


@pytest.mark.parametrize(
    ("method", "url", "body", "problem"),
    [
        ("GET", f"{API}/Tickets?paginate=true", None, "not declared"),
        ("GET", f"{API}/Tickets?pagesize=50", None, "not declared"),
        ("GET", f"{API}/Tickets?page_no=one", None, "not a int"),
        ("GET", f"{API}/Tickets?pageinate=yes", None, "not a bool"),
        ("GET", f"{API}/Tickets?lastupdatefromdate=true", None, "not a bool"),
        ("GET", f"{API}/Widgets", None, "not in the spec"),
        ("PATCH", f"{API}/Tickets/1", None, "not in the spec"),
        ("POST", f"{API}/Actions", b'{"ticket_id": 1}', "must be an array"),
        ("POST", f"{API}/Actions", b'[{"ticket_id": 1, "private": true}]', "fields not in"),
        ("GET", "https://acme.halopsa.com/Tickets", None, "outside"),
    ],
)
def test_the_checker_catches_departures(method: str, url: str, body: bytes | None,
                                        problem: str) -> None:
    """The validator itself: each kind of mismatch is reported."""
    checker = SpecChecker(load_spec())

    checker.check(httpx.Request(method, url, content=body,
                                headers={"Authorization": "Bearer t"}))

    assert any(problem in p for p in checker.problems), checker.problems


class _Recording(httpx.BaseTransport):
    """A real HTTP transport that keeps every request it sent."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)


def test_requests_to_the_sandbox_match_the_openapi_document_too() -> None:
    """The same operations against the sandbox over real HTTP: what the sandbox accepts
    is what the spec describes (first polls with Halo's-clock probes included)."""
    checker = SpecChecker(load_spec())
    recording = _Recording()
    with SandboxServer() as server:
        server.seed("tickets", 3)
        server.seed("contracts", 3)
        store = server.sandbox.store
        ticket = store.create_ticket("Leaver", client_id=next(iter(store.clients)),
                                     ticket_type="Leaver", notify=False)
        subject = SubjectRef(type="ticket", id=str(ticket["id"]))
        with HaloPSAConnector("halo-sbx", make_config(**server.connector_config()),
                              transport=recording) as connector:
            list(connector.poll("tickets", None))
            list(connector.poll("contracts", None))
            connector.post_note(subject, "Step done.", key="k1")
            assert connector.find_note(subject, "k1") is not None
            connector.attach(subject, "evidence.txt", b"evidence", title="Evidence", key="k2")
            connector.set_status(subject, "Completed")
            assert [x.name for x in connector.linkables()] == ["Seed client"]
    for request in recording.requests:
        checker.check(request)
    assert checker.problems == []
    assert ("POST", "/auth/token") in checker.checked and len(checker.checked) >= 9

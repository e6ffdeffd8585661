"""Every request the ConnectWise connector sends is checked against the legacy swagger."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from connectors.base import Cursor, WebhookRequest
from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.signing import sign
from hub.core.events import SubjectRef

from .conftest import API, HOOK_URL, SECRET, fixture_bytes, load_fixture
from .spec_check import NOT_IN_2015_SPEC, SpecChecker, load_spec

TICKET = SubjectRef(type="ticket", id="69")


def _exercise(connector: ConnectWiseConnector, cw_api: respx.MockRouter) -> None:
    """Call every connector operation that talks to ConnectWise."""
    cw_api.get(f"{API}/service/tickets/70").respond(json=load_fixture("tickets_page1.json")[1])
    cw_api.get(f"{API}/company/companies/24").respond(
        json={
            "id": 24,
            "identifier": "ACME",
            "name": "Acme Ltd",
            "_info": {"dateEntered": "2024-05-01T11:00:00Z", "lastUpdated": "2024-05-01T11:00:00Z"},
        }
    )
    list(connector.poll("tickets", Cursor(position="2024-05-01T11:50:00Z")))
    list(connector.poll("agreements", None))
    connector.post_note(TICKET, "Launched.", key="k-1")
    connector.find_note(TICKET, "k-1")
    connector.attach(TICKET, "evidence.pdf", b"%PDF", title="Evidence", key="k-2")
    connector.set_status(TICKET, "Completed")
    connector.register_webhooks(HOOK_URL)
    connector.remove_webhooks(HOOK_URL)
    key = load_fixture("callback_key.json")["signing_key"]
    body = fixture_bytes("callback_ticket_updated_thin.json")
    request = WebhookRequest(
        headers={"x-content-signature": sign(body, key)}, body=body, query={"token": SECRET}
    )
    connector.verify(request)
    for event in connector.parse(request):
        connector.enrich(event)
    for kind in ("agreement", "company"):
        payload = json.loads(body)
        payload.update(Type=kind, ID=501 if kind == "agreement" else 24, Action="added")
        thin = WebhookRequest(headers={}, body=json.dumps(payload).encode())
        for event in connector.parse(thin):
            connector.enrich(event)


def test_every_request_matches_the_legacy_spec_or_the_allow_list(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Paths under basePath, methods, query parameters and JSON body fields all exist."""
    checker = SpecChecker(load_spec())

    _exercise(connector, cw_api)
    for call in cw_api.calls:
        checker.check(call.request)

    assert checker.problems == []
    in_spec = {
        ("GET", "/service/tickets"),
        ("GET", "/service/tickets/{id}"),
        ("PATCH", "/service/tickets/{id}"),
        ("GET", "/service/tickets/{id}/notes"),
        ("POST", "/service/tickets/{id}/notes"),
        ("GET", "/service/boards/{id}/statuses"),
    }
    assert in_spec | set(NOT_IN_2015_SPEC) | {("GET", "callbackkey")} == checker.checked


@pytest.mark.parametrize(
    ("method", "url", "body", "problem"),
    [
        ("GET", f"{API}/service/tickets?fields=id", None, "query fields not declared"),
        ("POST", f"{API}/service/tickets/1/notes", {"txt": "x"}, "body fields not declared"),
        ("POST", f"{API}/service/tickets/1/notes", {"text": "x", "dateCreated": "y"}, "read-only"),
        ("PATCH", f"{API}/service/tickets/1", [{"op": "replace", "path": "colour"}], "unknown"),
        ("GET", f"{API}/service/widgets", None, "not in the spec"),
        (
            "GET",
            "https://api-na.myconnectwise.net/v2020/apis/3.0/service/tickets",
            None,
            "basePath",
        ),
    ],
)
def test_the_checker_catches_departures(method: str, url: str, body: object, problem: str) -> None:
    """The validator itself: each kind of mismatch is reported."""
    checker = SpecChecker(load_spec())
    request = (
        httpx.Request(method, url, json=body, headers={"Authorization": "Basic eA=="})
        if body is not None
        else httpx.Request(method, url, headers={"Authorization": "Basic eA=="})
    )

    checker.check(request)

    assert any(problem in p for p in checker.problems), checker.problems

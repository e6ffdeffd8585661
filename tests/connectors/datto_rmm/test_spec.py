"""Every request the Datto RMM connector sends is checked against Datto's OpenAPI document."""

from __future__ import annotations

import httpx
import pytest
import respx

from connectors.base import Cursor, WebhookRequest
from connectors.datto_rmm import DattoRMMConnector

from .conftest import API, SECRET, fixture_bytes, make_config
from .spec_check import NOT_IN_SPEC, SpecChecker, load_spec


def _exercise(connector: DattoRMMConnector, datto_api: respx.MockRouter) -> None:
    """Call every connector operation that talks to Datto."""
    empty = {"pageDetails": {"nextPageUrl": None}, "devices": []}
    datto_api.get(f"{API}/v2/account/devices").respond(json=empty)
    datto_api.get(f"{API}/v2/site/site-uid-1/devices").respond(json=empty)
    datto_api.get(f"{API}/v2/device/device-uid-1").respond(json={"uid": "device-uid-1"})
    list(connector.poll("alerts_open", None))
    list(connector.poll("alerts_resolved", Cursor(position="2024-07-16T00:00:00.000Z")))
    connector.sites()
    connector.devices()
    connector.devices("site-uid-1")
    connector.client.device("device-uid-1")
    request = WebhookRequest(headers={}, body=fixture_bytes("webhook_resolved.json"),
                             path_secret=SECRET)
    connector.verify(request)
    for event in connector.parse(request):
        connector.enrich(event)
    per_site = DattoRMMConnector("datto-sites", make_config(sites=["site-uid-1"]))
    for stream in ("alerts_open", "alerts_resolved"):
        list(per_site.poll(stream, Cursor(position="2024-07-16T00:00:00.000Z")))
    per_site.close()


def test_every_request_matches_the_openapi_document(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Paths under /api, methods, query parameter names and types, bearer auth."""
    checker = SpecChecker(load_spec())

    _exercise(connector, datto_api)
    for call in datto_api.calls:
        checker.check(call.request)

    assert checker.problems == []
    in_spec = {
        ("GET", "/v2/account/alerts/open"),
        ("GET", "/v2/account/alerts/resolved"),
        ("GET", "/v2/site/{siteUid}/alerts/open"),
        ("GET", "/v2/site/{siteUid}/alerts/resolved"),
        ("GET", "/v2/alert/{alertUid}"),
        ("GET", "/v2/account/sites"),
        ("GET", "/v2/account/devices"),
        ("GET", "/v2/site/{siteUid}/devices"),
        ("GET", "/v2/device/{deviceUid}"),
    }
    assert checker.checked == in_spec | set(NOT_IN_SPEC)


@pytest.mark.parametrize(
    ("method", "url", "headers", "problem"),
    [
        ("GET", f"{API}/v2/account/alerts/open?since=1", {}, "not declared"),
        ("GET", f"{API}/v2/account/alerts/open?max=lots", {}, "not an integer"),
        ("GET", f"{API}/v2/account/widgets", {}, "not in the spec"),
        ("DELETE", f"{API}/v2/alert/abc", {}, "not in the spec"),
        ("GET", "https://merlot-api.centrastage.net/v2/account/sites", {}, "outside"),
        ("GET", f"{API}/v2/account/sites", {"Authorization": "Basic eA=="}, "bearer"),
    ],
)
def test_the_checker_catches_departures(
    method: str, url: str, headers: dict[str, str], problem: str
) -> None:
    """The validator itself: each kind of mismatch is reported."""
    checker = SpecChecker(load_spec())

    checker.check(httpx.Request(method, url, headers=headers or {"Authorization": "Bearer t"}))

    assert any(problem in p for p in checker.problems), checker.problems

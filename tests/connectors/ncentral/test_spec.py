"""Every request the N-central connector sends is checked against the OpenAPI facts."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from connectors.base import Cursor
from connectors.ncentral import NcentralConnector

from .conftest import API, JWT, NO_WAIT, NOW, load_fixture, make_config
from .spec_check import OPERATIONS, SHARED, SpecChecker


def _exercise(connector: NcentralConnector, api: respx.MockRouter) -> None:
    """Call every connector operation that talks to N-central, the token refresh included."""
    first = list(connector.poll("active_issues", None))
    list(connector.poll("devices", None))
    connector.customers()
    connector.sites()
    connector.devices()
    connector.devices(101)
    # an API 401 makes the flow renew with the refresh token (a text/plain body)
    api.get(f"{API}/customers").mock(side_effect=[
        httpx.Response(401, json=load_fixture("error_401.json")),
        httpx.Response(200, json=load_fixture("customers.json"))])
    list(connector.poll("active_issues", Cursor(position=first[-1].cursor.position)))


def test_every_request_matches_the_documented_operations(
    connector: NcentralConnector, ncentral_api: respx.MockRouter
) -> None:
    """Paths, methods, query names and ranges, JWT only on authenticate, bodies."""
    checker = SpecChecker()

    _exercise(connector, ncentral_api)
    for call in ncentral_api.calls:
        checker.check(call.request)

    assert checker.problems == []
    assert checker.checked == set(OPERATIONS)


def test_the_checker_catches_departures() -> None:
    """The checker is not a rubber stamp: each kind of departure is reported."""
    checker = SpecChecker()
    bad = [
        httpx.Request("GET", f"{API}/org-units/100/active-issues?pageSize=5000",
                      headers={"Authorization": "Bearer access"}),
        httpx.Request("GET", f"{API}/customers?page=2",
                      headers={"Authorization": "Bearer access"}),
        httpx.Request("GET", f"{API}/customers", headers={"Authorization": f"Bearer {JWT}"}),
        httpx.Request("POST", f"{API}/auth/authenticate",
                      headers={"Authorization": "Bearer someone-else"}),
        httpx.Request("POST", f"{API}/auth/refresh", json={"refresh": "x"}),
        httpx.Request("GET", f"{API}/alerts", headers={"Authorization": "Bearer access"}),
        httpx.Request("GET", f"{API}/devices?pageNumber=first",
                      headers={"Authorization": "Bearer access"}),
    ]

    for request in bad:
        checker.check(request)

    assert len(checker.problems) == len(bad), checker.problems


def _shared_spec() -> dict[str, Any]:
    """An OpenAPI document in shared/vendor-specs/n-able/, when one has been added."""
    for path in sorted(SHARED.glob("*.json")) if SHARED.is_dir() else []:
        document = json.loads(path.read_text())
        if isinstance(document, dict) and "openapi" in document:
            return document
    pytest.skip("no N-central OpenAPI document in shared/vendor-specs/n-able/")


def test_the_table_agrees_with_a_shared_document_when_there_is_one() -> None:
    """Every operation we call exists there, with the query parameters we send."""
    spec = _shared_spec()

    for (method, path), op in OPERATIONS.items():
        operation = spec["paths"].get(path, {}).get(method.lower())
        assert operation is not None, (method, path)
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        assert op.query <= declared, (method, path)


def test_a_first_poll_sends_only_documented_requests() -> None:
    """Against the respx router alone: no surprise endpoints on a cold start."""
    checker = SpecChecker()
    with respx.mock(assert_all_mocked=True) as api:
        api.post(f"{API}/auth/authenticate").respond(json=load_fixture("auth_tokens.json"))
        api.get(f"{API}/customers").respond(json={"data": [], "totalItems": 0})
        api.get(f"{API}/sites").respond(json={"data": [], "totalItems": 0})
        with NcentralConnector("nc-cold", make_config(), retry=NO_WAIT,
                               clock=lambda: NOW) as connector:
            pages = list(connector.poll("active_issues", None))
        for call in api.calls:
            checker.check(call.request)

    assert checker.problems == []
    assert [len(p.events) for p in pages] == [0]

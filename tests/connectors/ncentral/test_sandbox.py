"""The N-central sandbox over real HTTP: strict where the spec is, and the connector on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import AuthFailed, build_connector
from connectors.ncentral import NcentralConnector
from connectors.ncentral.sandbox import SandboxServer
from connectors.ncentral.tracking import decode
from hub.core.events import ClientRef

STREAM = "active_issues"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A running sandbox on 127.0.0.1."""
    with SandboxServer() as running:
        yield running


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    """A plain client on the sandbox."""
    with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
        yield client


def _access(http: httpx.Client, server: SandboxServer) -> dict[str, str]:
    answer = http.post("/api/auth/authenticate",
                       headers={"Authorization": f"Bearer {server.sandbox.user_api_token}"})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['tokens']['access']['token']}"}


def _connector(server: SandboxServer, **overrides: Any) -> NcentralConnector:
    connector = build_connector("ncentral", "nc-sandbox", server.connector_config(**overrides))
    assert isinstance(connector, NcentralConnector)
    return connector


def test_the_auth_endpoints_take_only_what_the_spec_says(server: SandboxServer,
                                                         http: httpx.Client) -> None:
    """JWT as Bearer on authenticate; the refresh token as a text/plain body, once."""
    jwt = server.sandbox.user_api_token
    assert http.post("/api/auth/authenticate").status_code == 401
    assert http.post("/api/auth/authenticate",
                     headers={"Authorization": "Bearer nope"}).status_code == 401
    tokens = http.post("/api/auth/authenticate",
                       headers={"Authorization": f"Bearer {jwt}",
                                "X-ACCESS-EXPIRY-OVERRIDE": "120s"}).json()["tokens"]
    assert tokens["access"]["expirySeconds"] == 120 and tokens["refresh"]["type"] == "Body"
    refresh = tokens["refresh"]["token"]
    as_json = http.post("/api/auth/refresh", json={"refresh": refresh})
    assert as_json.status_code == 400
    renewed = http.post("/api/auth/refresh", content=refresh,
                        headers={"Content-Type": "text/plain"})
    assert renewed.status_code == 200
    reused = http.post("/api/auth/refresh", content=refresh,
                       headers={"Content-Type": "text/plain"})
    assert reused.status_code == 401
    assert reused.json()["status"] == 401 and "UNAUTHORIZED" in reused.json()["message"]


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/api/customers", {"pageSize": "0"}, 400),
    ("/api/customers", {"pageSize": "1001"}, 400),
    ("/api/customers", {"pageSize": "-1"}, 400),
    ("/api/customers", {"pageNumber": "0"}, 400),
    ("/api/customers", {"page": "1"}, 400),
    ("/api/customers", {"pageNumber": "one"}, 400),
    ("/api/org-units/50/active-issues", {}, 400),
    ("/api/org-units/abc/active-issues", {}, 400),
    ("/api/org-units/999999/active-issues", {}, 404),
    ("/api/org-units/999999/devices", {}, 404),
    ("/api/customers", {"pageNumber": "1", "pageSize": "1000", "sortOrder": "asc"}, 200),
])
def test_listings_are_strict_about_their_parameters(
        server: SandboxServer, http: httpx.Client, path: str, params: dict[str, str],
        status: int) -> None:
    """Paging bounds, unknown parameters, the SO and unknown org units, as documented."""
    answer = http.get(path, params=params, headers=_access(http, server))

    assert answer.status_code == status, answer.text


def test_the_api_needs_a_live_access_token(server: SandboxServer, http: httpx.Client) -> None:
    """No token, the JWT itself, or an expired token: 401 in N-central's error shape."""
    assert http.get("/api/customers").status_code == 401
    jwt = {"Authorization": f"Bearer {server.sandbox.user_api_token}"}
    assert http.get("/api/customers", headers=jwt).status_code == 401
    access = _access(http, server)
    assert http.get("/api/customers", headers=access).status_code == 200
    server.sandbox.expire_access_tokens()
    assert http.get("/api/customers", headers=access).status_code == 401


def test_envelopes_differ_by_listing(server: SandboxServer, http: httpx.Client) -> None:
    """customers: data + totalItems only; active issues: the paged QueryResponse."""
    store = server.sandbox.store
    acme = store.create_customer("Acme Corp")
    device = store.create_device(acme["customerId"], "ACME-DC01")
    store.raise_issue(device["deviceId"], "Disk")
    access = _access(http, server)

    customers = http.get("/api/customers", headers=access).json()
    issues = http.get(f"/api/org-units/{acme['customerId']}/active-issues",
                      headers=access).json()

    assert set(customers) == {"data", "totalItems"}
    assert {"data", "pageNumber", "pageSize", "itemCount", "totalItems", "totalPages",
            "_links"} <= set(issues)
    assert issues["data"][0]["_extra"]["transitionTime"].endswith("Z")


def test_issues_raised_and_cleared_on_a_site_reach_the_customer(server: SandboxServer) -> None:
    """Over HTTP: raised → alert.raised for the customer; cleared → alert.resolved."""
    store = server.sandbox.store
    acme = store.create_customer("Acme Corp")
    hq = store.create_site(acme["customerId"], "Acme HQ")
    fs01 = store.create_device(hq["siteId"], "ACME-FS01")
    dc01 = store.create_device(acme["customerId"], "ACME-DC01")
    backup = store.raise_issue(fs01["deviceId"], "Backup Manager")
    store.raise_issue(dc01["deviceId"], "Patch Status v2")
    with _connector(server) as connector:
        # When the hub polls, then the backup monitor clears and it polls again
        first = list(connector.poll(STREAM, None))
        store.clear_issue(backup["taskId"])
        second = list(connector.poll(STREAM, first[-1].cursor))

    raised = {e.data["alert"]["category"]: e for p in first for e in p.events}
    assert set(raised) == {"backup", "patch"}
    assert raised["backup"].client == ClientRef(id=str(acme["customerId"]), name="Acme Corp",
                                                type="customer")
    assert raised["backup"].data["alert"]["site"]["name"] == "Acme HQ"
    [resolved] = [e for p in second for e in p.events]
    assert resolved.kind == "alert.resolved"
    assert resolved.subject == raised["backup"].subject
    remembered = set(decode(second[-1].cursor.position).issues)
    assert remembered == {int(raised["patch"].data["alert"]["task_id"])}


def test_the_same_monitor_failing_again_is_a_new_occurrence(server: SandboxServer) -> None:
    """One task, two failures: two raisings and two resolutions under distinct keys."""
    store = server.sandbox.store
    acme = store.create_customer("Acme Corp")
    dc01 = store.create_device(acme["customerId"], "ACME-DC01")
    keys: list[str] = []
    with _connector(server) as connector:
        cursor = None
        for _ in range(2):
            issue = store.raise_issue(dc01["deviceId"], "Disk")
            pages = list(connector.poll(STREAM, cursor))
            store.clear_issue(issue["taskId"])
            pages += list(connector.poll(STREAM, pages[-1].cursor))
            cursor = pages[-1].cursor
            keys += [e.dedupe_key for p in pages for e in p.events]

    assert len(keys) == len(set(keys)) == 4
    assert len({k.split("@")[0] for k in keys}) == 1  # one taskId


def test_expired_access_tokens_are_refreshed_and_revoked_ones_re_authenticated(
        server: SandboxServer) -> None:
    """The connector renews through /auth/refresh, and falls back to the JWT."""
    with _connector(server) as connector:
        list(connector.poll(STREAM, None))
        server.sandbox.expire_access_tokens()
        list(connector.poll(STREAM, None))
        server.sandbox.revoke_tokens()
        list(connector.poll(STREAM, None))

    assert server.sandbox.stats()["refresh"] == 2  # one good, one refused after revoke
    assert server.sandbox.stats()["authenticate"] == 2


def test_a_wrong_jwt_is_auth_failed(server: SandboxServer) -> None:
    """The contract's 401 → AuthFailed, at the token exchange."""
    with _connector(server, user_api_token="eyJ.wrong.token") as connector, \
            pytest.raises(AuthFailed):
        list(connector.poll(STREAM, None))


def test_paging_over_http_with_pages_of_ten(server: SandboxServer) -> None:
    """25 issues: three pages, all raised once; a second poll raises nothing."""
    server.seed(STREAM, 25)
    with _connector(server) as connector:
        first = list(connector.poll(STREAM, None))
        second = list(connector.poll(STREAM, first[-1].cursor))

    assert sum(len(p.events) for p in first) == 25
    assert sum(len(p.events) for p in second) == 0
    [unit] = list(server.sandbox.store.customers)
    assert server.sandbox.request_count("GET", f"/api/org-units/{unit}/active-issues") == 6


def test_devices_added_and_removed_over_http(server: SandboxServer) -> None:
    """The devices stream: a new agent → device.added; a deleted device → device.removed."""
    store = server.sandbox.store
    acme = store.create_customer("Acme Corp")
    hq = store.create_site(acme["customerId"], "Acme HQ")
    store.create_device(hq["siteId"], "ACME-FS01")
    with _connector(server) as connector:
        first = list(connector.poll("devices", None))
        laptop = store.create_device(acme["customerId"], "ACME-LT12")
        second = list(connector.poll("devices", first[-1].cursor))
        store.remove_device(laptop["deviceId"])
        third = list(connector.poll("devices", second[-1].cursor))

    assert [e.data["device"]["hostname"] for p in first for e in p.events] == ["ACME-FS01"]
    [added] = [e for p in second for e in p.events]
    assert (added.kind, added.data["device"]["hostname"]) == ("device.added", "ACME-LT12")
    assert added.client == ClientRef(id=str(acme["customerId"]), name="Acme Corp",
                                     type="customer")
    [removed] = [e for p in third for e in p.events]
    assert (removed.kind, removed.dedupe_key) == ("device.removed",
                                                  f"device:{laptop['deviceId']}:removed")

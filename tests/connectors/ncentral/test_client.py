"""The N-central HTTP client: the JWT exchange, token renewal, paging and completeness."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from connectors.base import AuthFailed, PermanentError, RateLimited
from connectors.http import MemoryBudget
from connectors.ncentral.auth import parse_tokens
from connectors.ncentral.client import NcentralClient

from .conftest import JWT, NO_WAIT, load_fixture, make_config


class Clock:
    """A settable ``time.time`` for token lifetimes."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock: Clock) -> Iterator[NcentralClient]:
    """A client on pages of 2 whose token clock is ``clock``."""
    c = NcentralClient(make_config(max_pages=5), source="nc-test", retry=NO_WAIT)
    c.auth._clock = clock
    yield c
    c.close()


def test_the_jwt_is_exchanged_once_and_never_sent_to_the_api(
        client: NcentralClient, ncentral_api: respx.MockRouter) -> None:
    """authenticate: Bearer <JWT>, no body; then every API call uses the access token."""
    client.customers()
    client.sites()

    auth = ncentral_api["authenticate"].calls
    assert auth.call_count == 1
    assert auth.last.request.headers["authorization"] == f"Bearer {JWT}"
    assert auth.last.request.content == b""
    for name in ("customers", "sites"):
        assert ncentral_api[name].calls.last.request.headers["authorization"] == \
            "Bearer access-token-1"


def test_an_expiring_access_token_is_refreshed_with_the_refresh_token_as_body(
        client: NcentralClient, ncentral_api: respx.MockRouter, clock: Clock) -> None:
    """Ahead of the hour, the refresh token goes as a text/plain body (no JWT)."""
    client.customers()
    clock.now += 3600 - 60  # inside the renewal margin

    client.customers()

    refresh = ncentral_api["refresh"].calls
    assert refresh.call_count == 1
    assert refresh.last.request.content == b"refresh-token-1"
    assert refresh.last.request.headers["content-type"] == "text/plain"
    assert "authorization" not in refresh.last.request.headers
    assert ncentral_api["customers"].calls.last.request.headers["authorization"] == \
        "Bearer access-token-2"
    assert ncentral_api["authenticate"].calls.call_count == 1


def test_a_refused_refresh_falls_back_to_the_jwt(
        client: NcentralClient, ncentral_api: respx.MockRouter, clock: Clock) -> None:
    """An expired or revoked refresh token: authenticate again with the JWT."""
    client.customers()
    ncentral_api["refresh"].respond(401, json=load_fixture("error_401.json"))
    clock.now += 3600

    client.customers()

    assert ncentral_api["refresh"].calls.call_count == 1
    assert ncentral_api["authenticate"].calls.call_count == 2


def test_an_api_401_renews_once_and_resends_once(
        client: NcentralClient, ncentral_api: respx.MockRouter) -> None:
    """The server forgot the token: one renewal, one resend, then success."""
    ncentral_api["customers"].mock(side_effect=[
        httpx.Response(401, json=load_fixture("error_401.json")),
        httpx.Response(200, json=load_fixture("customers.json"))])

    listing = client.customers()

    assert len(listing.items) == 3
    assert ncentral_api["refresh"].calls.call_count == 1
    headers = [c.request.headers["authorization"] for c in ncentral_api["customers"].calls]
    assert headers == ["Bearer access-token-1", "Bearer access-token-2"]


def test_a_second_401_is_auth_failed(client: NcentralClient,
                                     ncentral_api: respx.MockRouter) -> None:
    """Renewed tokens refused too: AuthFailed (the hub disables the source)."""
    ncentral_api["customers"].respond(401, json=load_fixture("error_401.json"))

    with pytest.raises(AuthFailed):
        client.customers()
    assert ncentral_api["customers"].calls.call_count == 2


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refused_jwt_is_auth_failed(client: NcentralClient, ncentral_api: respx.MockRouter,
                                      status: int) -> None:
    """The User-API token was revoked or the user has MFA on: AuthFailed, no API call."""
    ncentral_api["authenticate"].respond(status, json={"status": status, "message": "no"})

    with pytest.raises(AuthFailed):
        client.customers()
    assert ncentral_api["customers"].calls.call_count == 0


@pytest.mark.parametrize("body", [{}, {"tokens": {}}, {"tokens": {"access": {"token": ""}}},
                                  ["x"], None])
def test_a_token_response_without_an_access_token_is_refused(body: Any) -> None:
    """Nothing usable in the answer: PermanentError, never a request with no token."""
    with pytest.raises(PermanentError):
        parse_tokens(body, now=0.0)


def test_token_lifetimes_come_from_expiry_seconds() -> None:
    """expirySeconds sets when to renew (a short-lived token renews at half its life)."""
    tokens = parse_tokens({"tokens": {"access": {"token": "a", "expirySeconds": 120},
                                      "refresh": {"token": "r", "expirySeconds": 600}}},
                          now=0.0)
    assert (tokens.renew_at, tokens.refresh, tokens.refresh_until) == (60.0, "r", 300.0)
    default = parse_tokens({"tokens": {"access": {"token": "a"}}}, now=0.0)
    assert default.renew_at == 3300.0 and default.refresh is None


def test_query_responses_are_paged_by_total_pages(client: NcentralClient,
                                                  ncentral_api: respx.MockRouter) -> None:
    """pageNumber from 1, pageSize as configured, until totalPages."""
    listing = client.active_issues(100)

    assert listing.complete and listing.reason is None
    assert [i["taskId"] for i in listing.items] == [55501, 55502, 55503]
    params = [dict(c.request.url.params) for c in ncentral_api["issues_100"].calls]
    assert params == [{"pageNumber": "1", "pageSize": "2"}, {"pageNumber": "2", "pageSize": "2"}]
    assert listing.server_time is not None


def test_list_responses_are_paged_by_total_items(client: NcentralClient,
                                                 ncentral_api: respx.MockRouter) -> None:
    """customers/sites answer only data + totalItems: stop when every item is in."""
    rows = load_fixture("customers.json")["data"]
    ncentral_api["customers"].mock(side_effect=[
        httpx.Response(200, json={"data": rows[:2], "totalItems": 3}),
        httpx.Response(200, json={"data": rows[2:], "totalItems": 3})])

    listing = client.customers()

    assert listing.complete
    assert [c["customerId"] for c in listing.items] == ["50", "100", "200"]
    assert ncentral_api["customers"].calls.call_count == 2


def test_a_bare_array_is_read_until_a_short_page(client: NcentralClient,
                                                 ncentral_api: respx.MockRouter) -> None:
    """One source says active issues come as a bare array: pages until a short one."""
    issues = load_fixture("issues_100_page1.json")["data"]
    ncentral_api["issues_100"].mock(side_effect=[httpx.Response(200, json=issues),
                                                 httpx.Response(200, json=issues[:1])])

    listing = client.active_issues(100)

    assert listing.complete and len(listing.items) == 3


@pytest.mark.parametrize(("pages", "reason"), [
    ([{"data": [{"taskId": 1}], "pageNumber": 1, "totalPages": 1, "totalItems": 1,
       "_warning": "Results truncated"}], "N-central warned: Results truncated"),
    ([{"data": [{"taskId": 1}], "pageNumber": 1, "totalPages": 1, "totalItems": 2}],
     "1 rows of 2"),
    ([{"data": [{"taskId": n}, {"taskId": n + 100}], "pageNumber": n, "totalPages": 9,
       "totalItems": 18} for n in range(1, 6)], "more than 5 pages"),
])
def test_truncated_listings_are_reported_incomplete(
        client: NcentralClient, ncentral_api: respx.MockRouter,
        pages: list[dict[str, Any]], reason: str) -> None:
    """A warning, a count that disagrees or the pages bound: never 'complete'."""
    ncentral_api["issues_100"].mock(side_effect=[httpx.Response(200, json=p) for p in pages])

    listing = client.active_issues(100)

    assert not listing.complete
    assert listing.reason == reason


def test_a_server_answering_another_page_is_refused(client: NcentralClient,
                                                   ncentral_api: respx.MockRouter) -> None:
    """pageNumber ignored (page 1 again for page 2) would loop: PermanentError."""
    page = load_fixture("issues_100_page1.json")
    ncentral_api["issues_100"].mock(side_effect=[httpx.Response(200, json=page)] * 2)

    with pytest.raises(PermanentError, match="answered page 1 for page 2"):
        client.active_issues(100)


@pytest.mark.parametrize("body", [{"data": {"taskId": 1}}, {"data": [1, 2]}, "text"])
def test_malformed_pages_are_permanent_errors(client: NcentralClient,
                                             ncentral_api: respx.MockRouter,
                                             body: Any) -> None:
    """Not {data: [objects]}: PermanentError naming the path."""
    ncentral_api["issues_100"].mock(return_value=httpx.Response(200, json=body))

    with pytest.raises(PermanentError, match="active-issues"):
        client.active_issues(100)


def test_a_429_from_the_auth_endpoint_pauses_the_source(ncentral_api: respx.MockRouter) -> None:
    """Rate limited while authenticating: RateLimited, and the whole source waits."""
    budget = MemoryBudget(100, 60, source="nc-test")
    ncentral_api["authenticate"].respond(429, headers={"Retry-After": "90"})
    client = NcentralClient(make_config(), source="nc-test", retry=NO_WAIT, budget=budget)

    with pytest.raises(RateLimited) as info:
        client.customers()
    client.close()

    assert info.value.retry_after == 90
    assert 80 < budget.paused_for() <= 90
    assert ncentral_api["customers"].calls.call_count == 0



def test_a_list_response_repeating_its_page_is_refused(client: NcentralClient,
                                                      ncentral_api: respx.MockRouter) -> None:
    """customers carry no pageNumber: the same rows twice means paging is ignored."""
    body = {**load_fixture("customers.json"), "totalItems": 40}
    ncentral_api["customers"].respond(json=body)

    with pytest.raises(PermanentError, match="repeats the page before it"):
        client.customers()
    assert ncentral_api["customers"].calls.call_count == 2

"""Datto RMM HTTP: the password grant, bearer tokens, pageDetails paging, errors (respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from connectors.base import AuthFailed, NotFound, PermanentError, RateLimited
from connectors.datto_rmm import DattoRMMConnector
from connectors.datto_rmm.client import check_uid
from connectors.http import MemoryBudget, RetryPolicy

from .conftest import API, BACKUP_RESOLVED, TOKEN_URL, load_fixture, make_config, shared_fixture

PUBLIC_BASIC = "Basic cHVibGljLWNsaWVudDpwdWJsaWM="  # base64("public-client:public")


def test_the_password_grant_uses_the_public_client_and_the_api_key(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """One token request (Basic public-client:public, key/secret as user/password), then
    the bearer token on every API call."""
    connector.client.alert(BACKUP_RESOLVED)
    list(connector.client.sites())

    token = datto_api["token"]
    assert token.call_count == 1
    request = token.calls.last.request
    assert request.headers["authorization"] == PUBLIC_BASIC
    assert request.content == (b"grant_type=password&username=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
                               b"&password=SECRETSECRETSECRETSECRETSECRET01")
    for route in ("alert", "sites"):
        sent = datto_api[route].calls.last.request
        assert sent.headers["authorization"] == "Bearer eyJhbGciOiJSUzI1NiJ9.sandbox.token"


def test_a_401_re_grants_once_and_retries(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """The 100-hour token expired early: one new grant, the request succeeds."""
    # Given an API that refuses the first token once
    datto_api["alert"].side_effect = [httpx.Response(401),
                                      httpx.Response(200, json={"alertUid": BACKUP_RESOLVED})]
    # When the alert is read
    alert = connector.client.alert(BACKUP_RESOLVED)
    # Then a second token was fetched and the retry carried it
    assert alert == {"alertUid": BACKUP_RESOLVED}
    assert datto_api["token"].call_count == 2


def test_a_second_401_is_auth_failed(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Refused with a fresh token too: AuthFailed (the hub disables the source)."""
    datto_api["alert"].respond(401)

    with pytest.raises(AuthFailed):
        connector.client.alert(BACKUP_RESOLVED)
    assert datto_api["token"].call_count == 2


def test_bad_credentials_at_the_token_endpoint_are_auth_failed(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Spring's ``400 invalid_grant`` for a wrong key/secret → AuthFailed."""
    datto_api["token"].respond(400, json={"error": "invalid_grant"})

    with pytest.raises(AuthFailed):
        list(connector.client.sites())


def test_paging_starts_without_page_and_follows_the_absolute_next_url(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """First request: only ``max``; then ``nextPageUrl`` verbatim until it is null."""
    pages = list(connector.client.alerts("open"))

    assert [len(p.items) for p in pages] == [2, 1]
    assert [p.more for p in pages] == [True, False]
    first, second = (c.request.url for c in datto_api["open"].calls)
    assert dict(first.params) == {"max": "100"}
    assert dict(second.params) == {"page": "1", "max": "100"}
    assert pages[0].server_time is not None and pages[0].server_time.hour == 14


def test_a_repeated_next_url_is_refused(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """A vendor bug that links a page to itself must not loop forever."""
    datto_api["open"].side_effect = None
    datto_api["open"].respond(json=load_fixture("alerts_open_page0.json"))

    with pytest.raises(PermanentError, match="repeated"):
        list(connector.client.alerts("open"))


def test_a_next_url_on_another_host_is_refused(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """The bearer token never goes elsewhere (the shared devices fixture links example.com)."""
    datto_api.get(f"{API}/v2/account/devices").respond(json=shared_fixture("devicesPage1.json"))

    with pytest.raises(PermanentError, match="outside the API"):
        list(connector.client.devices())


def test_site_devices_and_one_device_in_the_real_shape(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """``/v2/site/{uid}/devices`` pages (empty prevPageUrl is fine) and ``/v2/device/{uid}``."""
    page = shared_fixture("devicesPage1.json")
    page["pageDetails"]["nextPageUrl"] = None
    datto_api.get(f"{API}/v2/site/site-uid-1/devices").respond(json=page)
    datto_api.get(f"{API}/v2/device/device-uid-1").respond(json=shared_fixture("device.json"))

    devices = connector.devices("site-uid-1")
    device = connector.client.device("device-uid-1")

    assert [d["hostname"] for d in devices] == ["server1"]
    assert device["patchManagement"]["patchStatus"] == "FullyPatched"


def test_an_unknown_alert_is_not_found(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """404 → NotFound."""
    datto_api.get(f"{API}/v2/alert/00000000-0000-4000-8000-000000000000").respond(404)

    with pytest.raises(NotFound):
        connector.client.alert("00000000-0000-4000-8000-000000000000")


@pytest.mark.parametrize("uid", ["../account/sites", "a?b=c", "", "a b"])
def test_uids_are_checked_before_they_reach_a_path(uid: str) -> None:
    """No request is built from a UID that could change the path."""
    with pytest.raises(PermanentError):
        check_uid(uid, "alert uid")


def test_a_429_pauses_the_whole_source(datto_api: respx.MockRouter) -> None:
    """Retry-After beyond the inline bound → RateLimited, and the budget is paused, so the
    next request is refused before it is sent."""
    # Given Datto answering 429 with Retry-After: 60
    budget = MemoryBudget(600, 60)
    connector = DattoRMMConnector("datto-test", make_config(), budget=budget,
                                  retry=RetryPolicy(sleep=lambda _s: None))
    datto_api["sites"].respond(429, headers={"Retry-After": "60"})
    # When the sites are read, twice
    with pytest.raises(RateLimited) as first:
        list(connector.client.sites())
    with pytest.raises(RateLimited, match="paused"):
        connector.client.alert(BACKUP_RESOLVED)
    # Then the second never reached Datto
    assert first.value.retry_after == 60
    assert 0 < budget.paused_for() <= 60
    assert datto_api["alert"].call_count == 0
    connector.close()


def test_a_429_at_the_token_endpoint_pauses_the_source_too(datto_api: respx.MockRouter) -> None:
    """The token request is not budgeted by ``send``; the client pauses the source itself."""
    budget = MemoryBudget(600, 60)
    connector = DattoRMMConnector("datto-test", make_config(), budget=budget,
                                  retry=RetryPolicy(sleep=lambda _s: None))
    datto_api["token"].respond(429, headers={"Retry-After": "90"})

    with pytest.raises(RateLimited):
        list(connector.client.sites())

    assert budget.paused_for() > 60
    connector.close()


def test_the_token_url_sits_outside_api() -> None:
    """``{api_url}/auth/oauth/token``; resources under ``{api_url}/api/v2``."""
    config = make_config(api_url="https://pinotage-api.centrastage.net/api/")

    assert config.token_url == "https://pinotage-api.centrastage.net/auth/oauth/token"
    assert config.api_root == "https://pinotage-api.centrastage.net/api"
    assert TOKEN_URL.endswith("/auth/oauth/token")

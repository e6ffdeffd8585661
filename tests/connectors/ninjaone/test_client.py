"""NinjaOne HTTP client: scopes per call, paging families, errors (respx)."""

from __future__ import annotations

import httpx
import pytest
import respx

from connectors.base import AuthFailed, PermanentError, RateLimited
from connectors.http import RetryPolicy
from connectors.ninjaone.client import NinjaOneClient

from .conftest import form, make_config

NO_WAIT = RetryPolicy(sleep=lambda _s: None, max_inline_wait=0.0)


@pytest.fixture
def client() -> NinjaOneClient:
    return NinjaOneClient(make_config(), source="ninja-test", retry=NO_WAIT)


def test_reads_use_a_monitoring_token_from_the_client_credentials_grant(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """POST /ws/oauth/token with client_id/secret in the form and scope=monitoring only."""
    client.alerts()
    client.alerts()

    [call] = ninja_api["token"].calls
    assert form(call.request) == {"grant_type": "client_credentials",
                                  "client_id": "hub-client-id",
                                  "client_secret": "hub-client-secret-0123456789",
                                  "scope": "monitoring"}
    assert ninja_api["alerts"].calls[-1].request.headers["authorization"] == "Bearer tok-monitoring"


def test_the_webhook_configuration_uses_a_management_token(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """Only PUT/DELETE /v2/webhook ask for the management scope."""
    client.put_webhook({"url": "https://hub.example/webhooks/ninja"})
    client.delete_webhook()

    assert [form(c.request)["scope"] for c in ninja_api["token"].calls] == [
        "monitoring management"]
    for route in ("put_webhook", "delete_webhook"):
        assert ninja_api[route].calls[0].request.headers["authorization"] == \
            "Bearer tok-monitoring+management"


def test_a_refused_token_is_refreshed_once_then_auth_failed(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """401 → one new token and one retry; a second 401 → AuthFailed."""
    ninja_api["alerts"].respond(401, json={"resultCode": "401", "errorMessage": "Unauthorized"})

    with pytest.raises(AuthFailed):
        client.alerts()

    assert ninja_api["token"].call_count == 2
    assert ninja_api["alerts"].call_count == 2


def test_bad_client_credentials_are_auth_failed(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """The token endpoint's 401 invalid_client."""
    ninja_api["token"].mock(side_effect=None).respond(401, json={"error": "invalid_client"})

    with pytest.raises(AuthFailed):
        client.alerts()


def test_429_surfaces_retry_after(ninja_api: respx.MockRouter, client: NinjaOneClient) -> None:
    """NinjaOne publishes no limits; a 429's Retry-After reaches the caller."""
    ninja_api["alerts"].respond(429, headers={"Retry-After": "30"},
                                json={"resultCode": "429"})

    with pytest.raises(RateLimited) as info:
        client.alerts()

    assert info.value.retry_after == 30


def test_activities_send_the_bounds_by_their_names(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """newerThan = ids above, olderThan = ids below; pageSize and class as configured."""
    ninja_api["activities"].respond(json={"lastActivityId": 177230, "activities": [
        {"id": 177215, "activityTime": 1.0}]})

    page = client.activities(newer_than=177200, older_than=177221)

    params = ninja_api["activities"].calls[0].request.url.params
    assert (params["newerThan"], params["olderThan"], params["pageSize"]) == (
        "177200", "177221", "200")
    assert "class" not in params
    assert page.last_activity_id == 177230 and [a["id"] for a in page.items] == [177215]


@pytest.mark.parametrize("ids", [[177199], [177200], [177221], [177300]])
def test_a_page_outside_the_requested_bounds_is_refused(
    ninja_api: respx.MockRouter, client: NinjaOneClient, ids: list[int]
) -> None:
    """If the API read the bounds the other way round (the spec's descriptions do) we
    would skip or repeat activities: refuse instead of guessing."""
    ninja_api["activities"].respond(json={"lastActivityId": 177300, "activities": [
        {"id": i} for i in ids]})

    with pytest.raises(PermanentError, match="outside the requested range"):
        client.activities(newer_than=177200, older_than=177221)


def test_organizations_page_with_after_the_last_id(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """after=<last id of the previous page> until a short page."""
    def orgs(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after", "0"))
        size = int(request.url.params["pageSize"])
        rows = [{"id": i, "name": f"Org {i}"} for i in range(1, 451) if i > after][:size]
        return httpx.Response(200, json=rows)

    ninja_api["organizations"].mock(side_effect=orgs)

    found = list(client.organizations())

    assert [o["id"] for o in found] == list(range(1, 451))
    assert [c.request.url.params.get("after") for c in ninja_api["organizations"].calls] == [
        None, "200", "400"]


def test_query_reports_follow_the_named_cursor(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """The first request carries the filters; the next ones only cursor=<name>."""
    def report(request: httpx.Request) -> httpx.Response:
        offset = int((request.url.params.get("cursor") or "c:0").split(":")[1])
        size = int(request.url.params["pageSize"])
        rows = [{"deviceId": i} for i in range(offset, min(offset + size, 1200))]
        return httpx.Response(200, json={"cursor": {"name": f"c:{offset + len(rows)}",
                                                    "offset": offset, "count": len(rows)},
                                         "results": rows})

    ninja_api["antivirus"].mock(side_effect=report)

    rows = list(client.report("/v2/queries/antivirus-status", {"df": "org = 2"}))

    assert len(rows) == 1200
    calls = [c.request.url.params for c in ninja_api["antivirus"].calls]
    assert calls[0]["df"] == "org = 2" and "cursor" not in calls[0]
    assert [c.get("cursor") for c in calls[1:]] == ["c:500", "c:1000"]
    assert all("df" not in c for c in calls[1:])


def test_a_repeating_report_cursor_is_refused(
    ninja_api: respx.MockRouter, client: NinjaOneClient
) -> None:
    """A server that hands out the same cursor for ever cannot loop us."""
    ninja_api["antivirus"].respond(json={"cursor": {"name": "same", "offset": 0},
                                         "results": [{"deviceId": 1}] * 10})

    with pytest.raises(PermanentError, match="repeated"):
        list(client.report("/v2/queries/antivirus-status", page_size=10))


@pytest.mark.parametrize("item", [{}, {"id": "177215"}, {"id": 0}, {"id": True}, {"id": 2**63}])
def test_an_activity_without_a_usable_id_is_refused(
    ninja_api: respx.MockRouter, client: NinjaOneClient, item: dict[str, object]
) -> None:
    """Ids are the cursor: a page with an unusable one cannot be placed."""
    ninja_api["activities"].mock(side_effect=None).respond(
        json={"lastActivityId": 1, "activities": [item]})

    with pytest.raises(PermanentError, match="usable integer id"):
        client.activities()

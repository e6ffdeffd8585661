"""The HTTP side: zone discovery, headers, POSTed paging, error translation."""

from __future__ import annotations

import httpx
import pytest
import respx

from connectors.autotask import AutotaskConnector
from connectors.autotask.throttle import endpoint_of
from connectors.base import AuthFailed, NotFound, PermanentError
from connectors.http import RetryPolicy
from tests.connectors.autotask.conftest import (
    API,
    NOW,
    body_of,
    load_fixture,
    make_config,
    page,
)


def test_the_zone_is_looked_up_once_without_credentials(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """zoneInformation?user=… (no secrets sent) gives the API root; it is cached."""
    list(connector.poll("tickets", None))
    list(connector.poll("tickets", None))

    [lookup] = autotask_api["zone"].calls
    assert lookup.request.url.params["user"] == "apiuser@acme.com"
    assert "secret" not in lookup.request.headers and "apiintegrationcode" not in \
        lookup.request.headers
    assert connector.client.api_root == API


def test_every_api_request_carries_the_api_user_headers(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """ApiIntegrationCode, UserName and Secret on each call."""
    list(connector.poll("tickets", None))

    headers = autotask_api["tickets"].calls.last.request.headers
    assert headers["ApiIntegrationCode"] == "TRACKINGID0123"
    assert headers["UserName"] == "apiuser@acme.com"
    assert headers["Secret"] == "api-secret"


def test_the_next_page_is_posted_again_with_the_same_body(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Page 2 is nextPageUrl, POSTed with page 1's exact body (MaxRecords ≤ 500)."""
    pages = list(connector.poll("tickets", None))

    first = autotask_api["tickets"].calls.last
    [second] = autotask_api["tickets_next"].calls
    assert len(pages) == 2
    assert second.request.method == "POST"
    assert str(second.request.url) == load_fixture("tickets_page1.json")[
        "pageDetails"]["nextPageUrl"]
    assert body_of(second) == body_of(first)
    assert body_of(first)["MaxRecords"] == 500
    assert body_of(first)["filter"] == [
        {"op": "gt", "field": "lastActivityDate", "value": "2024-05-01T11:57:00.000Z"}]


def test_a_next_page_on_another_host_is_refused(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Our credentials never follow a nextPageUrl off the zone's API root."""
    autotask_api["tickets"].mock(side_effect=None).respond(
        json=page([], "https://evil.example/atservicesrest/V1.0/Tickets/query/next?p=1"))

    with pytest.raises(PermanentError, match="outside the API"):
        list(connector.poll("tickets", None))


def test_a_repeated_page_url_ends_the_walk(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """A server that hands out the same next page forever is stopped."""
    loop = f"{API}/Tickets/query/next?paging=same"
    autotask_api["tickets"].mock(side_effect=None).respond(json=page([], loop))
    autotask_api["tickets_next"].mock(side_effect=None).respond(json=page([], loop))

    with pytest.raises(PermanentError, match="repeated"):
        list(connector.poll("tickets", None))


def test_a_401_after_a_zone_move_is_retried_on_the_new_zone(
        autotask_api: respx.MockRouter) -> None:
    """The old zone answers 401; the lookup names a new zone; the call succeeds there."""
    moved = "https://webservices14.autotask.net/atservicesrest/V1.0"
    autotask_api["tickets"].mock(side_effect=None).respond(401, json={"errors": ["no"]})
    autotask_api["zone"].mock(side_effect=[
        httpx.Response(200, json=load_fixture("zone_information.json")),
        httpx.Response(200, json=load_fixture("zone_information_moved.json"))])
    autotask_api.post(f"{moved}/Tickets/query").respond(json=page([]))
    autotask_api.get(f"{moved}/ThresholdInformation").respond(
        json=load_fixture("threshold.json"))

    with AutotaskConnector("at", make_config(), clock=lambda: NOW,
                           retry=RetryPolicy(sleep=lambda _s: None)) as connector:
        pages = list(connector.poll("tickets", None))

    assert len(pages) == 1 and connector.client.api_root == moved
    assert autotask_api["zone"].call_count == 2


def test_a_401_in_the_same_zone_is_auth_failed(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Wrong credentials: one more lookup (same zone), then AuthFailed."""
    autotask_api["tickets"].mock(side_effect=None).respond(401, json={"errors": ["no"]})

    with pytest.raises(AuthFailed):
        list(connector.poll("tickets", None))
    assert autotask_api["zone"].call_count == 2
    assert autotask_api["tickets"].call_count == 1


def test_an_unknown_api_user_fails_the_lookup_as_auth_failed(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """zoneInformation answers 500 for a user it does not know (retried, then refused)."""
    autotask_api["zone"].respond(500, json={"errors": ["Object reference not set"]})

    with pytest.raises(AuthFailed, match="zone lookup"):
        list(connector.poll("tickets", None))


def test_a_zone_outside_autotask_is_refused(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """A lookup answer naming another host never receives our credentials."""
    autotask_api["zone"].respond(json={"url": "https://webservices3.evil.example/x/"})

    with pytest.raises(PermanentError, match="zoneInformation"):
        list(connector.poll("tickets", None))
    assert autotask_api["tickets"].call_count == 0


def test_a_thread_limit_refusal_is_retried_even_for_a_post(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """Itgenatr005 (sent as 500) means nothing was applied: the POST is tried again."""
    autotask_api["tickets"].mock(side_effect=[
        httpx.Response(500, json=load_fixture("error_thread_limit.json")),
        httpx.Response(200, json=page([]))])

    pages = list(connector.poll("tickets", None))

    assert len(pages) == 1 and autotask_api["tickets"].call_count == 2


def test_a_permission_500_is_auth_failed(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """'does not have the adequate permissions' (a 500 at Autotask) is a 403 to us."""
    autotask_api["tickets"].mock(side_effect=None).respond(
        500, json=load_fixture("error_permission.json"))

    with pytest.raises(AuthFailed):
        list(connector.poll("tickets", None))


def test_a_missing_record_is_not_found(
        connector: AutotaskConnector, autotask_api: respx.MockRouter) -> None:
    """GET of an id Autotask does not have answers {"item": null}."""
    autotask_api.get(f"{API}/Tickets/9").respond(json={"item": None})

    with pytest.raises(NotFound):
        connector.client.get_item("Tickets/9")


@pytest.mark.parametrize(("path", "endpoint"), [
    ("/atservicesrest/V1.0/Tickets/query", "tickets"),
    ("/atservicesrest/V1.0/Tickets/5/Notes", "tickets"),
    ("/atservicesrest/v1.0/TicketNotes/query", "ticketnotes"),
    ("/z1/atservicesrest/V1.0/ThresholdInformation", "thresholdinformation"),
])
def test_child_collections_share_their_parents_endpoint_slots(path: str, endpoint: str) -> None:
    """Thread limiting is per object endpoint; children count against the parent."""
    assert endpoint_of(path) == endpoint

"""The NinjaOne connector: the activity walk and its cursor, webhooks, enrichment, registration."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from connectors.base import (
    Cursor,
    Directory,
    Linkable,
    PermanentError,
    TransientError,
    WebhookRejected,
    WebhookRequest,
)
from connectors.http import RetryPolicy
from connectors.ninjaone import NinjaOneConnector
from connectors.ninjaone.stream import Position
from hub.core.events import EventKind

from .conftest import HEADER, NOW, SECRET, fixture_bytes, load_fixture, make_config


def backups(ids: range, time0: float = 1742390000.0) -> list[dict[str, Any]]:
    """Completed backup activities with these ids (one second apart)."""
    return [{"id": i, "activityTime": time0 + (i - ids.start), "deviceId": 7,
             "seriesUid": f"00000000-0000-4000-8000-{i:012d}", "activityType": "NINJA_BACKUP",
             "statusCode": "NINJA_BACKUP_BACKUPJOB_COMPLETED", "message": f"job {i}"}
            for i in ids]


def fake_activities(store: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """/v2/activities over ``store``: newest first, newerThan/olderThan by their names."""
    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        newer, older = q.get("newerThan"), q.get("olderThan")
        rows = sorted(store, key=lambda a: -a["id"])
        rows = [a for a in rows if (newer is None or a["id"] > int(newer))
                and (older is None or a["id"] < int(older))][:int(q["pageSize"])]
        return httpx.Response(200, json={"lastActivityId": max(a["id"] for a in store),
                                         "activities": rows},
                              headers={"Date": "Wed, 19 Mar 2025 14:00:00 GMT"})
    return handler


def _connector(**overrides: Any) -> NinjaOneConnector:
    return NinjaOneConnector("ninja-test", make_config(**overrides),
                             retry=RetryPolicy(sleep=lambda _s: None), clock=lambda: NOW)


def _bounds(api: respx.MockRouter) -> list[tuple[str | None, str | None]]:
    return [(c.request.url.params.get("newerThan"), c.request.url.params.get("olderThan"))
            for c in api["activities"].calls]


def test_a_truncated_page_is_walked_down_before_the_cursor_moves(
    ninja_api: respx.MockRouter
) -> None:
    """A full page means older activities above the cursor are still unseen: the
    connector asks below the page's lowest id until a short page, emits oldest first,
    and each page's cursor only covers what is read below it."""
    # Given 25 new activities above the cursor 1000 and pages of 10
    ninja_api["activities"].mock(side_effect=fake_activities(backups(range(995, 1026))))
    connector = _connector(page_size=10, id_lookback=0)

    # When it polls from 1000
    pages = list(connector.poll("activities", Cursor(position=Position(1000).encode())))

    # Then it walked down: newerThan stays the cursor, olderThan follows the lowest id
    assert _bounds(ninja_api) == [("1000", None), ("1000", "1016"), ("1000", "1006")]
    ids = [int(e.data["alert"]["activity_id"]) for p in pages for e in p.events]
    assert ids == list(range(1001, 1026))
    assert [p.cursor.position for p in pages] == [
        Position(1010).encode(), Position(1020).encode(), Position(1025).encode()]


def test_a_walk_longer_than_max_pages_resumes_without_skipping(
    ninja_api: respx.MockRouter
) -> None:
    """The cursor never passes a truncated page: a walk cut short saves a resume
    position, and the next poll closes the gap before the cursor reaches the top."""
    store = backups(range(1001, 1036))
    ninja_api["activities"].mock(side_effect=fake_activities(store))
    connector = _connector(page_size=10, max_pages=2, id_lookback=0)
    start = Position(1000)

    first = list(connector.poll("activities", Cursor(position=start.encode())))
    second = list(connector.poll("activities", first[-1].cursor))

    resume = Position.decode(first[-1].cursor.position)
    assert resume == Position(1000, 1035, 1016)  # [1016, 1035] read, (1000, 1016) not yet
    assert first[0].cursor.position == start.encode()  # earlier chunks keep the start
    assert Position.decode(second[-1].cursor.position) == Position(1035)
    seen = sorted(int(e.data["alert"]["activity_id"]) for p in first + second for e in p.events)
    assert seen == list(range(1001, 1036))
    positions = [p.cursor.position for p in first + second]
    assert positions == sorted(positions)
    assert _bounds(ninja_api)[2:] == [("1000", "1016"), ("1000", "1006")]


def test_the_lookback_rereads_below_the_cursor_without_moving_it_back(
    ninja_api: respx.MockRouter
) -> None:
    """newerThan = cursor - id_lookback; re-read activities keep the cursor where it was."""
    ninja_api["activities"].mock(side_effect=fake_activities(backups(range(990, 1003))))
    connector = _connector(page_size=50, id_lookback=5)

    pages = list(connector.poll("activities", Cursor(position=Position(1000).encode())))

    assert _bounds(ninja_api) == [("995", None)]
    assert [p.cursor.position for p in pages] == [Position(1002).encode()]
    assert {e.dedupe_key for p in pages for e in p.events} == {
        f"activity:{i}" for i in range(996, 1003)}


def test_the_first_poll_reads_back_the_backfill_on_ninjaones_clock(
    ninja_api: respx.MockRouter
) -> None:
    """No newerThan; stops at the first activity older than Date - backfill; the cursor
    ends at the newest id."""
    old = backups(range(1, 20), time0=1742300000.0)  # a day before the Date header
    new = backups(range(20, 35), time0=1742390000.0)
    ninja_api["activities"].mock(side_effect=fake_activities(old + new))
    connector = _connector(page_size=10)

    pages = list(connector.poll("activities", None))

    assert _bounds(ninja_api) == [(None, None), (None, "25")]
    assert sorted(int(e.data["alert"]["activity_id"]) for p in pages for e in p.events) == \
        list(range(20, 35))
    assert pages[-1].cursor.position == Position(34).encode()


def test_polled_events_name_the_devices_organization(
    ninja_api: respx.MockRouter, connector: NinjaOneConnector
) -> None:
    """The activity carries only deviceId: its device, looked up in one batch with a
    device filter, gives the organization."""
    pages = list(connector.poll("activities", Cursor(position=Position(177200).encode())))

    events = [e for p in pages for e in p.events]
    assert [(e.kind, e.dedupe_key) for e in events] == [
        (EventKind.ALERT_RAISED, "activity:177210"),
        (EventKind.ALERT_RESOLVED, "activity:177215"),
        (EventKind.ALERT_RESOLVED, "activity:177230")]
    assert {e.client.id for e in events if e.client} == {"2"}
    assert [c.request.url.params["df"] for c in ninja_api["devices"].calls] == ["id = 7"]
    assert ninja_api["device"].call_count == 0


@pytest.mark.parametrize("text", ["", "abc", "1~2", "0001~0005~x", "5~4~9999999999999999998",
                                  "12\u00b2", "-5", "1 "])
def test_unreadable_cursors_are_permanent_errors(text: str, connector: NinjaOneConnector) -> None:
    """A cursor this connector did not write is refused, never guessed at."""
    with pytest.raises(PermanentError):
        list(connector.poll("activities", Cursor(position=text)))


def test_positions_sort_in_stream_order() -> None:
    """settled < resuming (progressing) < the next settled position."""
    order = [Position(1000), Position(1000, 1035, 1030), Position(1000, 1035, 1016),
             Position(1001), Position(1035)]
    encoded = [p.encode() for p in order]
    assert encoded == sorted(encoded)
    assert [Position.decode(e) for e in encoded] == order


# -- webhooks ------------------------------------------------------------------------------


def _request(headers: dict[str, str], body: bytes | None = None) -> WebhookRequest:
    return WebhookRequest(headers=headers,
                          body=body or fixture_bytes("webhook_condition_triggered.json"))


@pytest.mark.parametrize("headers", [{}, {HEADER: "wrong-secret-0123456789"},
                                     {HEADER: SECRET[:-1]}, {"Authorization": SECRET}])
def test_a_missing_or_wrong_secret_header_is_rejected(
    connector: NinjaOneConnector, headers: dict[str, str]
) -> None:
    """The custom header is checked on every delivery (NinjaOne signs nothing)."""
    with pytest.raises(WebhookRejected):
        connector.verify(_request(headers))


def test_the_right_header_in_any_case_is_accepted(connector: NinjaOneConnector) -> None:
    """HTTP header names are case-insensitive."""
    connector.verify(_request({HEADER.upper(): SECRET}))


def test_webhooks_are_refused_when_no_secret_is_configured() -> None:
    """No secret, no webhooks."""
    connector = _connector(webhook_secret=None)
    with pytest.raises(WebhookRejected):
        connector.verify(_request({HEADER: SECRET}))


def _enriched(connector: NinjaOneConnector, body: dict[str, Any]) -> list[Any]:
    [thin] = connector.parse(_request({HEADER: SECRET}, json.dumps(body).encode()))
    return connector.enrich(thin)


def _api_has(api: respx.MockRouter, activities: list[dict[str, Any]], newest: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        lo, hi = int(q.get("newerThan", "0")), int(q.get("olderThan", str(10**18)))
        rows = [a for a in activities if lo < a["id"] < hi]
        return httpx.Response(200, json={"lastActivityId": newest, "activities": rows})
    api["activities"].mock(side_effect=handler)


def test_enrich_acts_on_the_apis_copy_and_device_not_the_body(
    ninja_api: respx.MockRouter, connector: NinjaOneConnector
) -> None:
    """The body claims a completed backup of org 99; the API says the job failed on a
    device of org 2: the event is the API's (raised, org 2), nothing resolved."""
    [real] = backups(range(177240, 177241))
    real["statusCode"] = "NINJA_BACKUP_BACKUPJOB_FAILED"
    _api_has(ninja_api, [real], newest=177300)
    body = {**real, "statusCode": "NINJA_BACKUP_BACKUPJOB_COMPLETED",
            "device": {"id": 7, "organizationId": 99}}

    [event] = _enriched(connector, body)

    assert event.kind is EventKind.ALERT_RAISED
    assert event.client is not None and event.client.id == "2"
    assert event.dedupe_key == "activity:177240"
    assert ninja_api["activities"].calls[0].request.url.params["newerThan"] == "177239"


def test_an_invented_activity_below_the_newest_id_yields_nothing(
    ninja_api: respx.MockRouter, connector: NinjaOneConnector
) -> None:
    """Right secret header, invented activity: the API has no such id → no event."""
    _api_has(ninja_api, [], newest=177300)
    [forged] = backups(range(177250, 177251))

    assert _enriched(connector, forged) == []


def test_an_activity_beyond_the_apis_newest_id_is_retried(
    ninja_api: respx.MockRouter, connector: NinjaOneConnector
) -> None:
    """The API may lag its webhook: TransientError, never a silent drop."""
    _api_has(ninja_api, [], newest=177300)
    [early] = backups(range(177301, 177302))

    with pytest.raises(TransientError):
        _enriched(connector, early)


def test_a_webhook_naming_another_series_than_the_api_fails(
    ninja_api: respx.MockRouter, connector: NinjaOneConnector
) -> None:
    """A real id with an invented series: refused (visible as a failed event)."""
    [real] = backups(range(177240, 177241))
    _api_has(ninja_api, [real], newest=177300)

    with pytest.raises(PermanentError, match="another alert series"):
        _enriched(connector, {**real, "seriesUid": "11111111-2222-4333-8444-555555555555"})


def test_register_puts_the_webhook_with_the_secret_header_and_device_expansion(
    ninja_api: respx.MockRouter
) -> None:
    """PUT /v2/webhook: url, expand device, the custom header, the organizations."""
    connector = _connector(organizations=[2, 5])

    ids = connector.register_webhooks("https://hub.example/webhooks/ninja")
    removed = connector.remove_webhooks("https://hub.example/webhooks/ninja")

    body = json.loads(ninja_api["put_webhook"].calls[0].request.content)
    assert body == {"url": "https://hub.example/webhooks/ninja", "expand": ["device"],
                    "headers": [{"name": HEADER, "value": SECRET}], "organizationIds": [2, 5]}
    assert ids == ["api-client:hub-client-id"] and removed == 1


def test_directory_and_status_helpers(
    ninja_api: respx.MockRouter, connector: NinjaOneConnector
) -> None:
    """organizations, devices (device filter), alerts, backup/AV/patch status."""
    orgs = connector.organizations()
    devices = connector.devices(2)
    alerts = connector.alerts()
    jobs = connector.backup_jobs(2)
    av = connector.antivirus_status(2)
    patches = connector.patch_installs(2, failed_only=True)
    health = connector.device_health(2)

    assert [o["id"] for o in orgs] == ["2", "5"]
    assert ninja_api["devices"].calls[0].request.url.params["df"] == "org = 2"
    assert devices[0]["id"] == 7
    assert alerts[0]["category"] == "eventlog"
    assert [j.job_id for j in jobs] == ["4f6c1d2e-8a9b-4c3d-9e8f-7a6b5c4d3e2f"]  # no id: dropped
    assert jobs[0].succeeded and jobs[0].organization_id == 2
    assert av[0].definition_status == "UP_TO_DATE"
    assert patches[0].status == "FAILED" and patches[0].kb_number == "KB5053603"
    assert ninja_api["patch_installs"].calls[0].request.url.params["status"] == "FAILED"
    assert [(h.device_id, h.health_status, h.patched, h.active_threats) for h in health] == [
        (7, "NEEDS_ATTENTION", False, 0), (8, "HEALTHY", True, 0)]
    assert load_fixture("organizations.json")[0]["name"] == orgs[0]["name"]


def test_enrich_drops_an_activity_outside_the_watched_organizations(
    ninja_api: respx.MockRouter
) -> None:
    """With organizations: [5], a real activity on a device of org 2 is not ours."""
    connector = _connector(organizations=[5])
    [real] = backups(range(177240, 177241))
    _api_has(ninja_api, [real], newest=177300)

    assert _enriched(connector, real) == []


def test_the_single_activity_lookup_ignores_the_class_filter(
    ninja_api: respx.MockRouter
) -> None:
    """activity_class narrows the poll; the webhook's re-read must still find its activity."""
    connector = _connector(activity_class="DEVICE")
    [real] = backups(range(177240, 177241))
    _api_has(ninja_api, [real], newest=177300)

    [event] = _enriched(connector, real)
    list(connector.poll("activities", Cursor(position=Position(177239).encode())))

    lookup, poll = (c.request.url.params for c in ninja_api["activities"].calls)
    assert "class" not in lookup and poll["class"] == "DEVICE"
    assert event.dedupe_key == "activity:177240"


def test_organizations_are_linkables_with_the_psa_hint(ninja_api: respx.MockRouter) -> None:
    """Directory protocol: organizations (the records events name), with the PSA company
    id from the configured custom field, of the configured PSA vendor."""
    connector = _connector(psa_company_field="psaCompanyId", psa_vendor="connectwise")

    found = connector.linkables()

    assert isinstance(connector, Directory)
    assert found == [
        Linkable(type="organization", id="2", name="Country Consulting",
                 psa_vendor="connectwise", psa_company_id="19300"),
        Linkable(type="organization", id="5", name="Acme Ltd"),
    ]

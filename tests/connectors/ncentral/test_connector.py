"""The N-central poller: active issues diffed into raised/resolved across runs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from connectors.base import Cursor, Directory, Linkable, Page, PermanentError, TransientError
from connectors.ncentral import NcentralConnector
from connectors.ncentral.tracking import decode
from hub.core.events import ClientRef, EventKind

from .conftest import DATE, NO_WAIT, NOW, load_fixture, make_config

STREAM = "active_issues"
DEVICES = "devices"


def _events(pages: list[Page]) -> list[tuple[str, str]]:
    return [(str(e.kind), e.dedupe_key) for p in pages for e in p.events]


def _issues_100(api: respx.MockRouter, *, without: frozenset[int] = frozenset(),
                **envelope: Any) -> None:
    """Customer 100's listing as one page, minus some tasks (respx side effect)."""
    rows = [r for name in ("issues_100_page1.json", "issues_100_page2.json")
            for r in load_fixture(name)["data"] if r["taskId"] not in without]
    body = {"data": rows, "pageNumber": 1, "pageSize": 50, "itemCount": len(rows),
            "totalItems": len(rows), "totalPages": 1, "_links": {}, **envelope}
    api["issues_100"].mock(return_value=httpx.Response(200, json=body, headers={"Date": DATE}))


@pytest.fixture
def wide() -> Iterator[NcentralConnector]:
    """Pages of 50, so each org unit's listing is one request."""
    c = NcentralConnector("nc-test", make_config(page_size=50), retry=NO_WAIT,
                          clock=lambda: NOW)
    yield c
    c.close()


def test_the_first_poll_raises_what_became_active_within_the_backfill(
        connector: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """New issues → alert.raised (customer as client, site kept); an old one remembered."""
    pages = list(connector.poll(STREAM, None))

    assert _events(pages) == [
        ("alert.raised", "issue:55501@20240716T135000000Z:raised"),
        ("alert.raised", "issue:55503@20240716T135500250Z:raised"),
    ]
    backup = pages[0].events[1]
    assert backup.client == ClientRef(id="100", name="Acme Corp", type="customer")
    assert backup.data["alert"]["site"] == {"id": "101", "name": "Acme HQ"}
    assert backup.data["alert"]["category"] == "backup"
    # the raising pages keep the starting cursor; the last page carries the remembered set
    assert pages[-1].events == []
    state = decode(pages[-1].cursor.position)
    assert set(state.issues) == {55501, 55502, 55503} and state.baselined
    assert decode(pages[0].cursor.position).issues == {}
    # the service organization is not asked (active issues: customers and sites only)
    assert ncentral_api["issues_200"].called and ncentral_api["issues_101"].called


def test_an_issue_gone_at_the_next_poll_is_resolved_once(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """Listed, then not: alert.resolved with the occurrence's key; later polls are quiet."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    _issues_100(ncentral_api, without=frozenset({55501, 55502}))

    second = list(wide.poll(STREAM, first[-1].cursor))
    third = list(wide.poll(STREAM, second[-1].cursor))

    assert _events(second) == [
        ("alert.resolved", "issue:55501@20240716T135000000Z:resolved"),
        ("alert.resolved", "issue:55502@20240710T090000000Z:resolved"),
    ]
    resolved = second[-1].events[0]
    assert resolved.client == ClientRef(id="100", name="Acme Corp", type="customer")
    assert resolved.data["alert"]["resolved_at"] == "2024-07-16T14:00:00.000Z"
    assert resolved.data["alert"]["device"]["hostname"] == "ACME-DC01"
    assert _events(third) == []
    assert first[-1].cursor.position < second[-1].cursor.position < third[-1].cursor.position


def test_a_failing_page_resolves_nothing_and_saves_no_new_set(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """Customer 100 answers 500 after retries: the run raises; no page moves the cursor."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    ncentral_api["issues_100"].respond(503)

    got: list[Page] = []
    with pytest.raises(TransientError):
        for page in wide.poll(STREAM, first[-1].cursor):
            got.append(page)

    assert _events(got) == []
    assert all(p.cursor == first[-1].cursor for p in got)


@pytest.mark.parametrize("envelope", [
    {"_warning": "Result set truncated"},
    {"totalItems": 99},
])
def test_a_truncated_listing_carries_its_issues_over(
        wide: NcentralConnector, ncentral_api: respx.MockRouter,
        envelope: dict[str, Any]) -> None:
    """A warned or short listing proves nothing gone: no resolution, still remembered."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    _issues_100(ncentral_api, without=frozenset({55501, 55502}), **envelope)

    second = list(wide.poll(STREAM, first[-1].cursor))
    _issues_100(ncentral_api, without=frozenset({55501, 55502}))
    third = list(wide.poll(STREAM, second[-1].cursor))

    assert _events(second) == []
    assert set(decode(second[-1].cursor.position).issues) == {55501, 55502, 55503}
    assert [k for _, k in _events(third)] == ["issue:55501@20240716T135000000Z:resolved",
                                              "issue:55502@20240710T090000000Z:resolved"]


@pytest.mark.parametrize("status", [400, 404])
def test_an_org_unit_n_central_refuses_is_skipped_not_emptied(
        wide: NcentralConnector, ncentral_api: respx.MockRouter, status: int) -> None:
    """400/404 for one customer: logged and carried over; the others are still diffed."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    ncentral_api["issues_100"].respond(
        status, json={"status": status, "message": "[ID=x] no"})

    second = list(wide.poll(STREAM, first[-1].cursor))

    # 55503 is listed under the site (101) too, so it is still active; 100's are carried
    assert _events(second) == []
    assert set(decode(second[-1].cursor.position).issues) == {55501, 55502, 55503}


def test_an_unreadable_row_makes_its_listing_prove_nothing(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """A row without a usable taskId: skipped and logged; nothing of that org unit resolves."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    page = {"data": [{"taskId": "x"}], "pageNumber": 1, "totalPages": 1, "totalItems": 1}
    ncentral_api["issues_100"].respond(json=page)

    second = list(wide.poll(STREAM, first[-1].cursor))

    assert _events(second) == []
    assert set(decode(second[-1].cursor.position).issues) == {55501, 55502, 55503}


def test_a_restart_or_a_crash_re_run_emits_the_same_keys(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """The set survives as JSON; re-running from an old cursor repeats keys, never new ones."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    saved = Cursor.model_validate_json(first[-1].cursor.model_dump_json())
    _issues_100(ncentral_api, without=frozenset({55503}))
    ncentral_api["issues_101"].respond(json=load_fixture(
        "issues_empty.json"))

    with NcentralConnector("nc-test", make_config(page_size=50), retry=NO_WAIT,
                           clock=lambda: NOW) as restarted:
        once = list(restarted.poll(STREAM, saved))
        again = list(restarted.poll(STREAM, saved))  # the hub crashed before saving

    assert _events(once) == _events(again) == [
        ("alert.resolved", "issue:55503@20240716T135500250Z:resolved")]
    assert once[-1].cursor == again[-1].cursor


def test_a_lost_cursor_re_raises_under_the_same_keys(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """Keys come from N-central's transitionTime: a fresh baseline collides in the inbox."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))

    again = list(wide.poll(STREAM, None))

    assert _events(first) == _events(again)


def test_an_issue_without_a_transition_time_keeps_one_occurrence(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """The run number stands in for the marker, remembered until the issue clears."""
    row = copy.deepcopy(load_fixture("issues_100_page1.json")["data"][0])
    row["_extra"].pop("transitionTime")
    body = {"data": [row], "pageNumber": 1, "totalPages": 1, "totalItems": 1}
    ncentral_api["issues_100"].respond(json=body)
    ncentral_api["issues_101"].respond(json=load_fixture("issues_empty.json"))
    first = list(wide.poll(STREAM, None))
    second = list(wide.poll(STREAM, first[-1].cursor))
    ncentral_api["issues_100"].respond(json=load_fixture(
        "issues_empty.json"))
    third = list(wide.poll(STREAM, second[-1].cursor))

    assert _events(first) == [("alert.raised", "issue:55501@s0000000001:raised")]
    assert _events(second) == []
    assert _events(third) == [("alert.resolved", "issue:55501@s0000000001:resolved")]


def test_a_deleted_customer_is_forgotten_without_a_resolution(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """Gone from complete customer and site listings: its issues are dropped silently."""
    _issues_100(ncentral_api)
    first = list(wide.poll(STREAM, None))
    customers = load_fixture("customers.json")
    customers["data"] = [c for c in customers["data"] if c["customerId"] != "100"]
    customers["totalItems"] = len(customers["data"])
    ncentral_api["customers"].respond(json=customers)
    ncentral_api["sites"].respond(json={"data": [], "totalItems": 0})

    second = list(wide.poll(STREAM, first[-1].cursor))

    assert _events(second) == []
    assert decode(second[-1].cursor.position).issues == {}


def test_explicit_org_units_and_scope_limit_what_is_polled(
        ncentral_api: respx.MockRouter) -> None:
    """org_units polls exactly those; scope=customers leaves sites out."""
    with NcentralConnector("nc-one", make_config(org_units=[101]), retry=NO_WAIT,
                           clock=lambda: NOW) as one:
        events = [e for p in one.poll(STREAM, None) for e in p.events]
    assert [e.dedupe_key for e in events] == ["issue:55503@20240716T135500250Z:raised"]
    assert events[0].client == ClientRef(id="100", name="Acme Corp", type="customer")
    assert not ncentral_api["issues_100"].called

    ncentral_api.reset()
    with NcentralConnector("nc-cust", make_config(scope="customers"), retry=NO_WAIT,
                           clock=lambda: NOW) as customers_only:
        list(customers_only.poll(STREAM, None))
    assert ncentral_api["issues_100"].called and not ncentral_api["issues_101"].called


def test_bad_streams_and_cursors_are_permanent_errors(connector: NcentralConnector) -> None:
    """Nothing is sent for an unknown stream or a cursor this connector did not write."""
    with pytest.raises(PermanentError, match="unknown stream"):
        list(connector.poll("alerts", None))
    with pytest.raises(PermanentError, match="cursor version"):
        list(connector.poll(STREAM, Cursor(version=2, position="x")))
    with pytest.raises(PermanentError, match="unreadable cursor"):
        list(connector.poll(STREAM, Cursor(position="2024-07-16T14:00:00.000Z")))


def test_directory_helpers(connector: NcentralConnector,
                           ncentral_api: respx.MockRouter) -> None:
    """customers() without the service organization, sites() with their customer, devices."""
    assert [c["id"] for c in connector.customers()] == ["100", "200"]
    assert connector.sites() == [{"type": "site", "id": "101", "name": "Acme HQ",
                                  "customer_id": "100", "external_id": None}]
    devices = connector.devices(101)
    assert [d["longName"] for d in devices] == ["ACME-FS01"]
    assert devices[0]["customerId"] == 100


def test_the_manifest_declares_two_unsorted_streams() -> None:
    """Only a run's last page moves its cursor; each stream has both of its kinds."""
    streams = NcentralConnector.manifest.streams

    assert {name: (spec.sorted, spec.kinds) for name, spec in streams.items()} == {
        STREAM: (False, {EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED}),
        DEVICES: (False, {EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED}),
    }


def test_configured_priorities_and_categories_reach_the_events(
        ncentral_api: respx.MockRouter) -> None:
    """Per-server mappings: notificationState 5 → Critical; 'Disk' read as hardware."""
    config = make_config(priorities={5: "Critical"}, categories={"Disk": "hardware"})
    with NcentralConnector("nc-map", config, retry=NO_WAIT, clock=lambda: NOW) as mapped:
        events = {e.data["alert"]["task_id"]: e.data["alert"]
                  for p in mapped.poll(STREAM, None) for e in p.events}

    assert (events["55501"]["category"], events["55501"]["priority"]) == ("hardware",
                                                                          "Critical")
    assert events["55503"]["category"] == "backup"


def _devices(api: respx.MockRouter, rows: list[dict[str, Any]], **envelope: Any) -> None:
    body = {"data": rows, "pageNumber": 1, "pageSize": 50, "itemCount": len(rows),
            "totalItems": len(rows), "totalPages": 1, "_links": {}, **envelope}
    api["devices"].mock(return_value=httpx.Response(200, json=body, headers={"Date": DATE}))


def test_devices_are_added_once_and_removed_when_gone(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """First poll: each device added; a device no longer listed: device.removed, once."""
    rows = load_fixture("devices_all.json")["data"]
    first = list(wide.poll(DEVICES, None))
    second = list(wide.poll(DEVICES, first[-1].cursor))
    _devices(ncentral_api, rows[1:])
    third = list(wide.poll(DEVICES, second[-1].cursor))
    fourth = list(wide.poll(DEVICES, third[-1].cursor))

    assert _events(first) == [("device.added", "device:987601:added"),
                              ("device.added", "device:987602:added")]
    assert _events(second) == []
    assert _events(third) == [("device.removed", "device:987601:removed")]
    removed = third[-1].events[0]
    assert removed.data["device"]["hostname"] == "ACME-DC01"
    assert removed.client == ClientRef(id="100", name="Acme Corp", type="customer")
    assert _events(fourth) == []


@pytest.mark.parametrize("envelope", [{"_warning": "partial"}, {"totalItems": 7}])
def test_an_incomplete_device_listing_removes_nothing(
        wide: NcentralConnector, ncentral_api: respx.MockRouter,
        envelope: dict[str, Any]) -> None:
    """Truncated or warned: every remembered device is kept."""
    rows = load_fixture("devices_all.json")["data"]
    first = list(wide.poll(DEVICES, None))
    _devices(ncentral_api, rows[1:], **envelope)

    second = list(wide.poll(DEVICES, first[-1].cursor))

    assert _events(second) == []
    assert set(decode(second[-1].cursor.position).issues) == {987601, 987602}


def test_an_empty_device_listing_removes_nothing(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """A lost permission looks like 'no devices': never a mass device.removed."""
    first = list(wide.poll(DEVICES, None))
    _devices(ncentral_api, [])

    second = list(wide.poll(DEVICES, first[-1].cursor))

    assert _events(second) == []
    assert set(decode(second[-1].cursor.position).issues) == {987601, 987602}


def test_a_large_first_poll_is_split_into_pages(
        wide: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """1,200 devices: three pages of added events, then the cursor page."""
    template = load_fixture("devices_all.json")["data"][0]
    _devices(ncentral_api, [{**template, "deviceId": 10_000 + n} for n in range(1200)])

    pages = list(wide.poll(DEVICES, None))

    assert [len(p.events) for p in pages] == [500, 500, 200, 0]
    assert len({e.dedupe_key for p in pages for e in p.events}) == 1200


def test_customers_are_linkable_for_suggestions(connector: NcentralConnector,
                                               ncentral_api: respx.MockRouter) -> None:
    """The Directory protocol: customers (not the SO, not sites), as events name them."""
    assert isinstance(connector, Directory)

    assert connector.linkables() == [Linkable(type="customer", id="100", name="Acme Corp"),
                                     Linkable(type="customer", id="200", name="Globex")]


def test_an_incomplete_customer_listing_is_no_drift_report(
        connector: NcentralConnector, ncentral_api: respx.MockRouter) -> None:
    """Truncated: an error for `clients check`, never 'every other customer was deleted'."""
    body = {**load_fixture("customers.json"), "totalItems": 40}
    ncentral_api["customers"].mock(side_effect=[
        httpx.Response(200, json=body), httpx.Response(200, json={"data": [],
                                                                   "totalItems": 40})])

    with pytest.raises(PermanentError, match="incomplete"):
        connector.linkables()


def test_issues_of_org_units_no_longer_in_scope_are_forgotten(
        ncentral_api: respx.MockRouter) -> None:
    """Scope narrowed from sites to customers: the site's issues drop out, unresolved."""
    with NcentralConnector("nc-s", make_config(scope="sites"), retry=NO_WAIT,
                           clock=lambda: NOW) as sites_only:
        first = list(sites_only.poll(STREAM, None))
    _issues_100(ncentral_api, without=frozenset({55503}))
    with NcentralConnector("nc-s", make_config(scope="customers"), retry=NO_WAIT,
                           clock=lambda: NOW) as customers_only:
        second = list(customers_only.poll(STREAM, first[-1].cursor))

    assert [k for _, k in _events(first)] == ["issue:55503@20240716T135500250Z:raised"]
    # customer 100's issues are new to this scope (raised, the first run is over)
    assert [k for _, k in _events(second)] == ["issue:55501@20240716T135000000Z:raised",
                                               "issue:55502@20240710T090000000Z:raised"]
    assert 55503 not in decode(second[-1].cursor.position).issues

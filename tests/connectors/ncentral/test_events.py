"""N-central active issues → normalized alerts and events (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import MalformedPayload
from connectors.ncentral.events import (
    Placement,
    category,
    customer_record,
    device_data,
    device_event,
    marker,
    normalize_issue,
    parse_time,
    raised_event,
    resolved_event,
    site_record,
    task_id,
    transition_time,
)
from hub.core.events import ClientRef, EventKind

from .conftest import load_fixture


def _issue(index: int = 0, page: str = "issues_100_page1.json") -> dict:
    return dict(load_fixture(page)["data"][index])


@pytest.mark.parametrize(("service", "expected"), [
    ("Backup Manager", "backup"),
    ("Cove Data Protection", "backup"),
    ("Veeam Backup Job Status", "backup"),
    ("Patch Status v2", "patch"),
    ("Windows Update Status", "patch"),
    ("AV Defender Status", "av"),
    ("Security Manager", "av"),
    ("Windows Defender", "av"),
    ("EDR Status", "security"),
    ("Windows UAC Status", "security"),
    ("Agent Status", "online"),
    ("Connectivity", "online"),
    ("Disk", "disk"),
    ("Disk Space", "disk"),
    ("Windows Service", "service"),
    ("Windows Event Log", "eventlog"),
    ("CPU", "performance"),
    ("Memory", "performance"),
    ("Ping", "ping"),
    ("NetPath Status", "network"),
    ("Fan Status", "hardware"),
    ("Something New", "other"),
    ("", "other"),
    (None, "other"),
])
def test_service_names_map_to_the_shared_category_vocabulary(service: str | None,
                                                              expected: str) -> None:
    """Monitor names become the categories the shipped rules read (as Datto's do)."""
    assert category(service) == expected


def test_per_server_overrides_win_case_insensitively() -> None:
    """A tenant's own monitor names can be mapped in the config."""
    assert category("  COVE   backup STATUS ", {"cove backup status": "backup"}) == "backup"
    assert category("Custom Script Check", {"custom script check": "backup"}) == "backup"


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-04-02T16:15:33.432Z", datetime(2024, 4, 2, 16, 15, 33, 432000, tzinfo=UTC)),
    ("2017-02-16T21:00:00.000+01:00", datetime(2017, 2, 16, 20, 0, tzinfo=UTC)),
    ("2024-02-28 15:40:42.407", datetime(2024, 2, 28, 15, 40, 42, 407000, tzinfo=UTC)),
    ("2025-11-02 09:14:03", datetime(2025, 11, 2, 9, 14, 3, tzinfo=UTC)),
])
def test_timestamps_in_both_of_n_centrals_spellings(text: str, expected: datetime) -> None:
    """ISO with a zone, and the zone-less spelling read as UTC."""
    assert parse_time(text, "t") == expected


@pytest.mark.parametrize("bad", [None, "", "yesterday", 1721138400000, "1800-01-01T00:00:00Z"])
def test_unreadable_timestamps_are_refused(bad: object) -> None:
    """Missing, non-text, unparseable or absurd values raise MalformedPayload."""
    with pytest.raises(MalformedPayload):
        parse_time(bad, "t")


def test_task_id_and_transition_time() -> None:
    """taskId is the key; a missing or broken transitionTime is None, not an error."""
    issue = _issue()
    assert task_id(issue) == 55501
    assert task_id({**issue, "taskId": "55501"}) == 55501
    assert transition_time(issue) == datetime(2024, 7, 16, 13, 50, tzinfo=UTC)
    assert transition_time({**issue, "_extra": {"transitionTime": "soon"}}) is None
    assert transition_time({"taskId": 1}) is None
    for bad in (None, True, -4, "12a", 0):
        with pytest.raises(MalformedPayload):
            task_id({"taskId": bad})


def test_an_issue_becomes_an_alert_shaped_like_datto_s() -> None:
    """The fields mappings read: id, category, message, device, site, customer."""
    issue = _issue(0, "issues_100_page2.json")
    when = transition_time(issue)
    assert when is not None
    placement = Placement(100, "Acme Corp", 101, "Acme HQ")

    alert = normalize_issue(issue, occurrence=marker(when), placement=placement,
                            raised_at=when)

    assert alert == {
        "id": "55503@20240716T135500250Z",
        "task_id": "55503",
        "occurrence": "20240716T135500250Z",
        "category": "backup",
        "type": "Backup Manager",
        "priority": None,
        "notification_state": 5,
        "message": "Backup Manager issue on ACME-FS01",
        "resolved": False,
        "resolved_by": None,
        "raised_at": "2024-07-16T13:55:00.250Z",
        "resolved_at": None,
        "muted": False,
        "ticket_number": "CW#4711",
        "context": {"service_id": 1303, "service_type": "AMP", "service_item_id": 36894,
                    "org_unit_id": 101},
        "device": {"id": "987602", "hostname": "ACME-FS01"},
        "site": {"id": "101", "name": "Acme HQ"},
        "customer": {"id": "100", "name": "Acme Corp"},
    }


def test_raised_and_resolved_events_share_the_occurrence() -> None:
    """Keys issue:{task}@{marker}:raised|resolved, one subject, the customer as client."""
    issue = _issue()
    when = transition_time(issue)
    assert when is not None
    alert = normalize_issue(issue, occurrence=marker(when),
                            placement=Placement(100, "Acme Corp"), raised_at=when)

    raised = raised_event("nc", alert, issue)
    resolved = resolved_event("nc", alert,
                              observed_at=datetime(2024, 7, 16, 15, 0, tzinfo=UTC))

    assert raised.kind is EventKind.ALERT_RAISED
    assert raised.dedupe_key == "issue:55501@20240716T135000000Z:raised"
    assert raised.occurred_at == when
    assert raised.client == ClientRef(id="100", name="Acme Corp", type="customer")
    assert raised.raw == issue
    assert resolved.kind is EventKind.ALERT_RESOLVED
    assert resolved.dedupe_key == "issue:55501@20240716T135000000Z:resolved"
    assert resolved.subject == raised.subject
    assert resolved.data["alert"]["resolved"] is True
    assert resolved.data["alert"]["resolved_at"] == "2024-07-16T15:00:00.000Z"
    assert resolved.data["alert"]["message"] == "Disk cleared on ACME-DC01"
    assert resolved.data["alert"]["category"] == "disk"


def test_a_resolution_is_never_before_its_raising() -> None:
    """N-central's Date has whole seconds; the clearing time is clamped to the raising."""
    issue = _issue()
    when = datetime(2024, 7, 16, 14, 0, 0, 900000, tzinfo=UTC)
    alert = normalize_issue(issue, occurrence=marker(when),
                            placement=Placement(100, None), raised_at=when)

    resolved = resolved_event("nc", alert, observed_at=datetime(2024, 7, 16, 14, 0, tzinfo=UTC))

    assert resolved.occurred_at == when


def test_directory_records() -> None:
    """Customers and sites as the client directory links them (sites name their customer)."""
    customers = load_fixture("customers.json")["data"]
    site = load_fixture("sites.json")["data"][0]

    assert customer_record(customers[1]) == {"type": "customer", "id": "100",
                                             "name": "Acme Corp", "parent_id": "50",
                                             "external_id": "ACME"}
    assert site_record(site) == {"type": "site", "id": "101", "name": "Acme HQ",
                                 "customer_id": "100", "external_id": None}
    assert customer_record({"customerId": "7", "customerName": "Seven"})["id"] == "7"


def test_notification_states_become_priorities_only_where_configured() -> None:
    """The codes are undocumented: priority stays empty unless the admin maps the code."""
    issue = _issue()  # notificationState 5
    when = transition_time(issue)
    assert when is not None
    place = Placement(100, "Acme Corp")

    plain = normalize_issue(issue, occurrence="m", placement=place, raised_at=when)
    mapped = normalize_issue(issue, occurrence="m", placement=place, raised_at=when,
                             priorities={5: "Critical"})
    other = normalize_issue({**issue, "notificationState": 2}, occurrence="m",
                            placement=place, raised_at=when, priorities={5: "Critical"})

    assert (plain["priority"], plain["notification_state"]) == (None, 5)
    assert mapped["priority"] == "Critical"
    assert (other["priority"], other["notification_state"]) == (None, 2)


def test_a_device_becomes_device_fields_and_events() -> None:
    """device.{id, hostname, type, os, site, customer}; keys device:{id}:added|removed."""
    fs01, dc01 = (load_fixture("devices_all.json")["data"][i] for i in (1, 0))
    when = datetime(2024, 7, 16, 14, 0, tzinfo=UTC)

    data = device_data(fs01)
    added = device_event("nc", data, EventKind.DEVICE_ADDED, observed_at=when, raw=fs01)
    removed = device_event("nc", device_data(dc01), EventKind.DEVICE_REMOVED,
                           observed_at=when, raw={})

    assert data == {"id": "987602", "hostname": "ACME-FS01", "type": "Servers - Windows",
                    "os": "Microsoft Windows Server 2022 Standard", "probe": False,
                    "last_checkin": "2024-07-16T13:59:00.000+00:00", "org_unit_id": "101",
                    "site": {"id": "101", "name": "Acme HQ"},
                    "customer": {"id": "100", "name": "Acme Corp"}}
    assert added.dedupe_key == "device:987602:added" and added.kind is EventKind.DEVICE_ADDED
    assert added.client == ClientRef(id="100", name="Acme Corp", type="customer")
    assert added.subject is not None and added.subject.type == "device"
    assert removed.dedupe_key == "device:987601:removed"
    assert removed.data["device"]["site"] == {"id": None, "name": None}
    with pytest.raises(MalformedPayload):
        device_data({"longName": "NO-ID"})

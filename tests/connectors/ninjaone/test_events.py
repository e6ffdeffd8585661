"""NinjaOne payload → Event: activities, alerts, organizations and webhook bodies (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import MalformedPayload, is_thin
from connectors.ninjaone.events import (
    activity_event,
    alert_record,
    keyword_category,
    organization_record,
    outcome,
    parse_seconds,
    priority,
)
from connectors.ninjaone.webhooks import parse_webhook, webhook_event
from hub.core.events import ClientRef, EventKind, SubjectRef

from .conftest import fixture_bytes, load_fixture

RECEIVED = datetime(2025, 3, 19, 14, 0, 0, tzinfo=UTC)


def _activity(status: str, activity_type: str = "NINJA_BACKUP", **extra: Any) -> dict[str, Any]:
    return {"id": 500, "activityTime": 1742391675.556, "deviceId": 7,
            "seriesUid": "9a0d7c1e-2b3f-4c5d-8e9f-0a1b2c3d4e5f", "activityType": activity_type,
            "statusCode": status, "message": "Backup job 'Nightly image' completed", **extra}


def test_a_completed_backup_job_is_a_resolved_backup_alert_of_the_devices_organization(
) -> None:
    """NINJA_BACKUP_BACKUPJOB_COMPLETED → alert.resolved, category backup, client = org."""
    device = load_fixture("device_7.json")

    event = activity_event("ninja", _activity("NINJA_BACKUP_BACKUPJOB_COMPLETED"), device)

    assert event is not None
    assert event.kind is EventKind.ALERT_RESOLVED
    assert event.dedupe_key == "activity:500"
    assert event.vendor == "ninjaone"
    assert event.client == ClientRef(id="2", name="Country Consulting", type="organization")
    assert event.subject == SubjectRef(type="alert", id="9a0d7c1e-2b3f-4c5d-8e9f-0a1b2c3d4e5f")
    assert event.occurred_at == datetime(2025, 3, 19, 13, 41, 15, 556000, tzinfo=UTC)
    alert = event.data["alert"]
    assert alert["category"] == "backup"
    assert alert["id"] == "9a0d7c1e-2b3f-4c5d-8e9f-0a1b2c3d4e5f"
    assert alert["activity_id"] == "500"
    assert alert["resolved"] is True and alert["resolved_at"] == "2025-03-19T13:41:15.556Z"
    assert alert["device"] == {"id": "7", "hostname": "ccesxi03.cc.local"}
    assert alert["organization"] == {"id": "2", "name": "Country Consulting"}
    assert alert["message"] == "Backup job 'Nightly image' completed"
    assert event.raw["statusCode"] == "NINJA_BACKUP_BACKUPJOB_COMPLETED"


@pytest.mark.parametrize(("status", "activity_type", "extra", "kind", "category"), [
    ("NINJA_BACKUP_BACKUPJOB_FAILED", "NINJA_BACKUP", {}, EventKind.ALERT_RAISED, "backup"),
    ("NINJA_BACKUP_BACKUPJOB_COMPLETED_WITH_WARNING", "NINJA_BACKUP", {},
     EventKind.ALERT_RAISED, "backup"),
    ("NINJA_BACKUP_BACKUPJOB_COMPLETED", "NINJA_BACKUP", {"activityResult": "FAILURE"},
     EventKind.ALERT_RAISED, "backup"),
    ("CLOUDBERRY_BACKUPJOB_SUCCEEDED", "CLOUDBERRY_BACKUP", {}, EventKind.ALERT_RESOLVED,
     "backup"),
    ("PATCH_MANAGEMENT_INSTALLED", "PATCH_MANAGEMENT", {}, EventKind.ALERT_RESOLVED, "patch"),
    ("PATCH_MANAGEMENT_INSTALL_FAILED", "PATCH_MANAGEMENT", {}, EventKind.ALERT_RAISED,
     "patch"),
    ("BDAS_BITDEFENDER_THREAT_QUARANTINED", "ANTIVIRUS", {}, EventKind.ALERT_RAISED, "av"),
    ("SENTINEL_ONE_THREAT_DETECTED", "SECURITY", {}, EventKind.ALERT_RAISED, "security"),
    ("SENTINEL_ONE_MITIGATION_SUCCEEDED", "SECURITY", {}, EventKind.ALERT_RESOLVED,
     "security"),
    ("TRIGGERED", "CONDITION", {"data": {"message": {"code": "agent_cond_disk_free_space"}}},
     EventKind.ALERT_RAISED, "disk"),
    ("RESET", "CONDITION", {"data": {"message": {"code": "vmm_cond_memory_usage_ge"}}},
     EventKind.ALERT_RESOLVED, "performance"),
    ("TRIGGERED", "CONDITION", {"message": "Device is offline"}, EventKind.ALERT_RAISED,
     "online"),
])
def test_activities_map_to_kinds_and_categories(
    status: str, activity_type: str, extra: dict[str, Any], kind: EventKind, category: str
) -> None:
    """The outcome table: problems raise, clearings and proofs of success resolve."""
    activity = _activity(status, activity_type, **extra)

    event = activity_event("ninja", activity, None)

    assert event is not None and event.kind is kind
    assert event.data["alert"]["category"] == category
    assert event.client is None  # no device record: the connector adds it from the API


@pytest.mark.parametrize(("status", "activity_type"), [
    ("COMPLETED", "SCRIPTING"), ("PATCH_MANAGEMENT_SCAN_STARTED", "PATCH_MANAGEMENT"),
    ("ACKNOWLEDGED", "CONDITION"), ("NINJA_BACKUP_BACKUPJOB_STARTED", "NINJA_BACKUP"),
])
def test_other_activities_produce_no_event(status: str, activity_type: str) -> None:
    """Scripts, scans started, acknowledgements … are not facts the hub acts on."""
    assert activity_event("ninja", _activity(status, activity_type), None) is None
    assert outcome(_activity(status, activity_type)) is None


def test_node_created_is_device_added_with_hostname_and_type() -> None:
    """NODE_CREATED → device.added keyed by the activity, subject the device."""
    activity = _activity("NODE_CREATED", "SYSTEM", message="Device registered")

    event = activity_event("ninja", activity, load_fixture("device_7.json"))

    assert event is not None and event.kind is EventKind.DEVICE_ADDED
    assert event.subject == SubjectRef(type="device", id="7")
    assert event.data["device"] == {"id": "7", "hostname": "ccesxi03.cc.local",
                                    "type": "VMWARE_VM_HOST", "organization": "2"}


def test_the_captured_condition_webhook_is_a_performance_alert_with_its_priority() -> None:
    """The real capture (vendor notes §2.5): memory condition triggered."""
    body = json.loads(fixture_bytes("webhook_condition_triggered.json"))

    event = activity_event("ninja", {**body, "severity": "CRITICAL"}, body["device"])

    assert event is not None and event.kind is EventKind.ALERT_RAISED
    assert event.data["alert"]["category"] == "performance"
    assert event.data["alert"]["priority"] == "Critical"
    assert event.data["alert"]["context"]["threshold"] == 80


@pytest.mark.parametrize(("record", "expected"), [
    ({"severity": "MAJOR"}, "High"), ({"severity": "MINOR", "priority": "HIGH"}, "High"),
    ({"priority": "MEDIUM"}, "Moderate"), ({"severity": "NONE"}, None), ({}, None),
])
def test_priority_is_the_higher_of_severity_and_priority(
    record: dict[str, Any], expected: str | None
) -> None:
    """In the mappings' words (Critical, High, Moderate, Low)."""
    assert priority(record) == expected


@pytest.mark.parametrize("value", [None, "", True, "soon", 1e20, [1]])
def test_unreadable_timestamps_are_malformed(value: Any) -> None:
    """Timestamps are epoch seconds; anything else is refused, never a crash."""
    with pytest.raises(MalformedPayload):
        parse_seconds(value, "activityTime")


def test_epoch_seconds_and_iso_text_are_read() -> None:
    """A float, a numeric string, ISO text."""
    assert parse_seconds(1742391675.5, "t") == datetime(2025, 3, 19, 13, 41, 15, 500000,
                                                        tzinfo=UTC)
    assert parse_seconds("1742391675", "t").second == 15
    assert parse_seconds("2025-03-19T13:41:15Z", "t").minute == 41


def test_an_active_alert_is_normalized_with_its_series_uid_as_id() -> None:
    """``/v2/alerts`` rows: id = uid (the activity series), category from sourceType."""
    record = alert_record(load_fixture("alerts.json")[0])

    assert record["id"] == "50edcf11-de92-4ecb-955b-c8066488b6cc"
    assert record["category"] == "eventlog"
    assert record["raised_at"] == "2024-10-31T00:01:55.000Z"
    assert record["device"]["id"] == "33"


def test_organizations_carry_the_configured_psa_company_field_as_a_hint() -> None:
    """Linking hints: the PSA company id from an organization custom field."""
    orgs = load_fixture("organizations.json")

    records = [organization_record(o, psa_field="psaCompanyId") for o in orgs]

    assert records[0]["psa_company_id"] == "19300"
    assert records[0]["type"] == "organization" and records[0]["id"] == "2"
    assert records[1]["psa_company_id"] is None


def test_a_webhook_becomes_one_thin_event_keyed_like_the_poll() -> None:
    """The body only names the activity: no client until enrich re-reads it."""
    hook = parse_webhook(fixture_bytes("webhook_condition_triggered.json"))

    event = webhook_event("ninja", hook, received_at=RECEIVED)

    assert event is not None and is_thin(event)
    assert event.dedupe_key == "activity:177210"
    assert event.kind is EventKind.ALERT_RAISED
    assert event.client is None
    assert event.subject == SubjectRef(type="alert", id="e6b0b0bd-5753-445d-9e4a-71c08983cbd5")


def test_a_webhook_about_an_activity_we_do_not_act_on_makes_no_event() -> None:
    """A script run: nothing to store."""
    hook = parse_webhook(json.dumps(_activity("COMPLETED", "SCRIPTING")).encode())

    assert webhook_event("ninja", hook, received_at=RECEIVED) is None


@pytest.mark.parametrize("body", [
    b"[]", b'"x"', b"{}", b'{"id": "177210"}', b'{"id": true}', b'{"id": -4}',
    b'{"id": 99999999999999999999999}', b"{" * 100 + b"}" * 100, b"not json",
])
def test_malformed_webhook_bodies_are_refused(body: bytes) -> None:
    """Only a JSON object with an integer activity id is accepted."""
    with pytest.raises(MalformedPayload):
        parse_webhook(body)


def test_keyword_category_falls_back_to_other() -> None:
    """Unknown condition codes are 'other'."""
    assert keyword_category("agent_cond_custom_thing", None) == "other"
    assert keyword_category(None, "Nightly Backup check") == "backup"

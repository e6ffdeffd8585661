"""Datto RMM payloads → Events: recorded-shaped alerts, the shared fixtures, webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from connectors.base import THIN, MalformedPayload
from connectors.datto_rmm.events import (
    alert_event,
    alert_events,
    category,
    format_time,
    parse_millis,
    parse_webhook,
    site_record,
    webhook_event,
)
from hub.core.events import ClientRef, EventKind, SubjectRef

from .conftest import BACKUP_RESOLVED, NOW, fixture_bytes, load_fixture, shared_fixture


def test_an_open_backup_alert_becomes_alert_raised_on_its_site() -> None:
    """Kind, key, vendor time (epoch ms), site ClientRef, and the fields mappings read."""
    alert = load_fixture("alerts_open_page0.json")["alerts"][0]

    event = alert_event("datto", alert)

    assert event.kind is EventKind.ALERT_RAISED
    assert event.vendor == "datto-rmm"
    assert event.dedupe_key == "alert:0f5c7a52-4c2e-4f61-9a77-6b0c1d2e3f40:raised"
    assert event.occurred_at == datetime(2024, 7, 16, 12, 0, tzinfo=UTC)
    assert event.client == ClientRef(id="site-uid-1", name="Acme HQ", type="site")
    assert event.subject == SubjectRef(type="alert", id=alert["alertUid"])
    data = event.data["alert"]
    assert data["category"] == "backup"
    assert data["type"] == "backup_management_ctx"
    assert data["priority"] == "High"
    assert data["message"] == "Backup job 'Nightly image' failed: destination unreachable"
    assert data["device"] == {"id": "device-uid-1", "hostname": "ACME-FS01"}
    assert data["resolved"] is False and data["resolved_at"] is None
    assert event.raw == alert


def test_a_resolved_alert_is_resolved_at_resolved_on() -> None:
    """resolvedOn is the event time; the key carries the state, not a timestamp."""
    alert = load_fixture("alerts_resolved.json")["alerts"][0]

    event = alert_event("datto", alert)

    assert event.kind is EventKind.ALERT_RESOLVED
    assert event.dedupe_key == f"alert:{BACKUP_RESOLVED}:resolved"
    assert event.occurred_at == datetime(2024, 7, 16, 14, 0, tzinfo=UTC)
    assert event.data["alert"]["resolved_by"] == "auto"
    assert event.data["alert"]["resolved_at"] == "2024-07-16T14:00:00.000Z"


def test_alert_events_of_a_resolved_alert_are_raised_then_resolved() -> None:
    """Both facts, each under its own key, the raising at ``timestamp``."""
    alert = load_fixture("alerts_resolved.json")["alerts"][0]

    raised, resolved = alert_events("datto", alert)

    assert (raised.kind, resolved.kind) == (EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED)
    assert raised.dedupe_key == f"alert:{BACKUP_RESOLVED}:raised"
    assert raised.occurred_at == datetime(2024, 7, 16, 12, 0, tzinfo=UTC)


def test_a_context_without_diagnostics_gets_a_message_from_its_fields() -> None:
    """Datto often leaves diagnostics null: the message names category, device, context."""
    alert = load_fixture("alerts_open_page0.json")["alerts"][1]

    message = alert_event("datto", alert).data["alert"]["message"]

    assert message.startswith("disk alert on ACME-FS01: diskName C:")


@pytest.mark.parametrize(
    ("name", "kind", "cat", "site"),
    [
        ("alert-context-antivirus.json", EventKind.ALERT_RAISED, "av", "site-uid-1"),
        ("alert-context-patch.json", EventKind.ALERT_RESOLVED, "patch", "site-uid-1"),
        ("alert-context-online-offline-status.json", EventKind.ALERT_RESOLVED, "online",
         "site-uid-1"),
    ],
)
def test_the_shared_fixtures_normalise(name: str, kind: EventKind, cat: str, site: str) -> None:
    """pncit's synthesized alerts: the top-level shape parses (inner keys kept as context)."""
    alert = shared_fixture(name)

    event = alert_event("datto", alert)

    assert event.kind is kind
    assert event.data["alert"]["category"] == cat
    assert event.client is not None and event.client.id == site
    assert event.data["alert"]["context"] == {
        k: v for k, v in alert["alertContext"].items() if k != "@class"}


@pytest.mark.parametrize(
    ("ctx_class", "expected"),
    [
        ("backup_management_ctx", "backup"),
        ("patch_ctx", "patch"),
        ("antivirus_ctx", "av"),
        ("ransomware_ctx", "security"),
        ("endpoint_security_threat_ctx", "security"),
        ("online_offline_status_ctx", "online"),
        ("perf_disk_usage_ctx", "disk"),
        ("srvc_status_ctx", "service"),
        ("eventlog_ctx", "eventlog"),
        ("comp_script_ctx", "script"),
        ("datto_backup_v2_ctx", "backup"),  # an unseen class: keyword fallback
        ("something_new_ctx", "other"),
        (None, "other"),
    ],
)
def test_context_classes_map_to_categories(ctx_class: str | None, expected: str) -> None:
    """``@class`` → the category vocabulary the shipped mappings use."""
    assert category(ctx_class) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1721131200000, datetime(2024, 7, 16, 12, 0, tzinfo=UTC)),
        ("1721131200000", datetime(2024, 7, 16, 12, 0, tzinfo=UTC)),
        ("2024-07-16T12:00:00Z", datetime(2024, 7, 16, 12, 0, tzinfo=UTC)),
        (1721131200123.0, datetime(2024, 7, 16, 12, 0, 0, 123000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_epoch_milliseconds(value: object, expected: datetime) -> None:
    """The wire has epoch ms (the spec's date-time is accepted too)."""
    assert parse_millis(value, "timestamp") == expected


@pytest.mark.parametrize("value", [None, True, "", "yesterday", 10**30, float("nan"), [1]])
def test_unreadable_timestamps_are_malformed(value: object) -> None:
    """Never an OverflowError or a TypeError: a MalformedPayload naming the field."""
    with pytest.raises(MalformedPayload, match="timestamp"):
        parse_millis(value, "timestamp")


def test_format_time_is_fixed_width_and_round_trips() -> None:
    """Cursor positions sort in time order and parse back."""
    text = format_time(datetime(2024, 7, 16, 12, 0, 0, 5000, tzinfo=UTC))

    assert text == "2024-07-16T12:00:00.005Z"
    assert parse_millis(text, "p") == datetime(2024, 7, 16, 12, 0, 0, 5000, tzinfo=UTC)


@pytest.mark.parametrize("uid", [None, "", "../account/sites", "a/b", "x" * 65])
def test_an_alert_without_a_usable_uid_is_malformed(uid: object) -> None:
    """The UID becomes a URL path segment later: only [A-Za-z0-9-] passes."""
    alert = {**load_fixture("alerts_resolved.json")["alerts"][0], "alertUid": uid}

    with pytest.raises(MalformedPayload, match="alertUid"):
        alert_event("datto", alert)


def test_a_triggered_webhook_is_one_thin_event_without_a_client() -> None:
    """The unsigned body is a hint: the alert's own key, no client until enrichment."""
    hook = parse_webhook(fixture_bytes("webhook_triggered.json"))

    event = webhook_event("datto", hook, received_at=NOW)

    assert event.kind is EventKind.ALERT_RAISED
    assert event.dedupe_key == f"alert:{BACKUP_RESOLVED}:raised"
    assert event.data[THIN] is True and event.data["webhook"]["state"] == "raised"
    assert event.client is None
    assert event.subject == SubjectRef(type="alert", id=BACKUP_RESOLVED)
    assert event.occurred_at == NOW


def test_a_resolved_webhook_claims_the_resolution() -> None:
    """``event: resolved`` → a thin alert.resolved under the resolution's key."""
    event = webhook_event("datto", parse_webhook(fixture_bytes("webhook_resolved.json")),
                          received_at=NOW)

    assert event.kind is EventKind.ALERT_RESOLVED
    assert event.dedupe_key == f"alert:{BACKUP_RESOLVED}:resolved"


def test_a_webhook_without_event_gets_a_key_per_delivery() -> None:
    """A template that sends no ``event`` cannot name a state: the key is the body's."""
    body = json.dumps({"alertUid": BACKUP_RESOLVED}).encode()

    event = webhook_event("datto", parse_webhook(body), received_at=NOW)

    assert event.dedupe_key.startswith(f"alert:{BACKUP_RESOLVED}:webhook:")
    assert event.data["webhook"]["state"] is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b"{not json", "not valid JSON"),
        (b'{"event": "triggered"}', "alertUid"),
        (b'{"alertUid": "../../v2/account/sites"}', "alertUid"),
        (b'{"alertUid": "[alert_uid]"}', "alertUid"),  # an unfilled Datto variable
        (b'{"alertUid": "a1", "event": "exploded"}', "event"),
        (b"[" * 100 + b"]" * 100, "nested"),
    ],
)
def test_bad_webhook_bodies_are_malformed(body: bytes, problem: str) -> None:
    """Bounded parsing: a 400 naming the problem, never a crash."""
    with pytest.raises(MalformedPayload, match=problem):
        parse_webhook(body)


def test_a_site_record_carries_the_psa_company_hint_and_no_proxy_secret() -> None:
    """``autotaskCompanyId`` is kept as a linking hint; proxySettings never leave."""
    site = load_fixture("sites.json")["sites"][0]

    record = site_record(site)

    assert record == {"type": "site", "id": "site-uid-1", "name": "Acme HQ",
                      "description": "Head office", "psa_company_id": "29683501",
                      "psa_company_name": "Acme Ltd", "devices": 12}
    assert "do-not-log" not in json.dumps(record)

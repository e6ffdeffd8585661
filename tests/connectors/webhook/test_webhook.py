"""Generic signed-webhook connector: HMAC over timestamp + body, normalized events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import (
    InvalidConfig,
    MalformedPayload,
    WebhookRejected,
    WebhookRequest,
    build_connector,
)
from connectors.webhook import WebhookConfig, WebhookConnector, signature, signed_headers
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

SECRET = "shared-secret-0123456789"
NOW = 1_714_564_800  # 2024-05-01T12:00:00Z

EVENT = {
    "kind": "alert.resolved",
    "dedupe_key": "backup-42:resolved",
    "occurred_at": "2024-05-01T11:59:00Z",
    "client": {"id": "ACME", "name": "Acme Ltd"},
    "subject": {"type": "alert", "id": "42"},
    "data": {"alert": {"id": "42", "category": "backup", "message": "Backup succeeded"}},
}


@pytest.fixture
def connector() -> WebhookConnector:
    """A webhook source whose clock is frozen at NOW."""
    return WebhookConnector("backup-tool", WebhookConfig(secret=SECRET), clock=lambda: NOW)


def _request(body: Any, *, timestamp: int = NOW, secret: str = SECRET) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(headers=signed_headers(secret, raw, timestamp=timestamp), body=raw)


def test_signed_event_is_verified_and_parsed(connector: WebhookConnector) -> None:
    """One signed event becomes one Event from vendor ``webhook``."""
    request = _request(EVENT)

    connector.verify(request)
    events = connector.parse(request)

    assert events == [
        Event(
            source="backup-tool",
            vendor="webhook",
            kind=EventKind.ALERT_RESOLVED,
            dedupe_key="backup-42:resolved",
            occurred_at=datetime(2024, 5, 1, 11, 59, tzinfo=UTC),
            client=ClientRef(id="ACME", name="Acme Ltd"),
            subject=SubjectRef(type="alert", id="42"),
            data=EVENT["data"],
            raw=EVENT,
        )
    ]


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The documented scheme, checked against an independent computation."""
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1714564800." + body, hashlib.sha256).hexdigest()

    assert signature(SECRET, NOW, body) == f"sha256={expected}"


def test_a_list_of_events_is_accepted(connector: WebhookConnector) -> None:
    """Bodies may batch events."""
    second = {**EVENT, "dedupe_key": "backup-43:resolved"}

    events = connector.parse(_request([EVENT, second]))

    assert [e.dedupe_key for e in events] == ["backup-42:resolved", "backup-43:resolved"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop("X-Msphub-Signature"), "bad signature"),
        (lambda h: h.update({"X-Msphub-Signature": "sha256=00"}), "bad signature"),
        (lambda h: h.pop("X-Msphub-Timestamp"), "timestamp"),
        (lambda h: h.update({"X-Msphub-Timestamp": "yesterday"}), "timestamp"),
    ],
)
def test_bad_headers_are_rejected(connector: WebhookConnector, mutate: Any, reason: str) -> None:
    """Missing or wrong signature/timestamp → WebhookRejected (401)."""
    body = json.dumps(EVENT).encode()
    headers = signed_headers(SECRET, body, timestamp=NOW)
    mutate(headers)

    with pytest.raises(WebhookRejected, match=reason) as info:
        connector.verify(WebhookRequest(headers=headers, body=body))

    assert info.value.status == 401


@pytest.mark.parametrize("age", [301, -301, 10_000])
def test_stale_or_future_timestamps_are_rejected(connector: WebhookConnector, age: int) -> None:
    """Replays older than the tolerance (or clocks far ahead) are refused."""
    with pytest.raises(WebhookRejected, match="window"):
        connector.verify(_request(EVENT, timestamp=NOW - age))


def test_timestamp_at_the_tolerance_edge_is_accepted(connector: WebhookConnector) -> None:
    """Exactly 300 s old is still inside the default window."""
    connector.verify(_request(EVENT, timestamp=NOW - 300))


def test_wrong_secret_is_rejected(connector: WebhookConnector) -> None:
    """A body signed with another secret fails."""
    with pytest.raises(WebhookRejected):
        connector.verify(_request(EVENT, secret="another-secret-0123456789"))


def test_tampered_body_is_rejected(connector: WebhookConnector) -> None:
    """The signature covers the body bytes."""
    request = _request(EVENT)
    tampered = WebhookRequest(headers=request.headers, body=request.body.replace(b"42", b"43"))

    with pytest.raises(WebhookRejected):
        connector.verify(tampered)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"[]", "non-empty list"),
        (b'"text"', "non-empty list"),
        ({**EVENT, "kind": "alert.exploded"}, "field 'kind'"),
        ({k: v for k, v in EVENT.items() if k != "dedupe_key"}, "field 'dedupe_key'"),
        ({**EVENT, "occurred_at": "2024-05-01T11:59:00"}, "field 'occurred_at'"),
        ({**EVENT, "occurred_at": "soon"}, "field 'occurred_at'"),
        ({**EVENT, "colour": "red"}, "field 'colour'"),
        ({**EVENT, "client": {"name": "no id"}}, "field 'client.id'"),
        ([EVENT, {**EVENT, "occurred_at": None}], "field 'events[1].occurred_at'"),
        ([EVENT, 5], "events[1] is not an object"),
    ],
)
def test_malformed_bodies_name_the_bad_field(
    connector: WebhookConnector, body: Any, message: str
) -> None:
    """MalformedPayload (400) says which field is wrong."""
    with pytest.raises(MalformedPayload) as info:
        connector.parse(_request(body))

    assert message in str(info.value)
    assert info.value.status == 400


def test_too_many_events_in_one_body(connector: WebhookConnector) -> None:
    """Batches are bounded."""
    small = WebhookConnector("w", WebhookConfig(secret=SECRET, max_events=2))

    with pytest.raises(MalformedPayload, match="at most 2"):
        small.parse(_request([EVENT, EVENT, EVENT]))


def test_built_through_the_registry_with_a_secret() -> None:
    """Raw config is validated; short secrets are refused without echoing them."""
    connector = build_connector("webhook", "tool", {"secret": SECRET})

    assert isinstance(connector, WebhookConnector)
    with pytest.raises(InvalidConfig) as info:
        build_connector("webhook", "tool", {"secret": "tiny"})
    assert "tiny" not in str(info.value)

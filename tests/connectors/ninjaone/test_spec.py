"""Every request the NinjaOne connector sends is checked against NinjaOne's OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import respx

from connectors.base import Cursor, WebhookRequest
from connectors.http import RetryPolicy
from connectors.ninjaone import NinjaOneConfig, NinjaOneConnector
from connectors.ninjaone.connector import Position

from .conftest import HEADER, INSTANCE, SECRET, fixture_bytes, make_config
from .spec_check import NOT_IN_SPEC, SpecChecker, load_spec


def _exercise(connector: NinjaOneConnector, ninja_api: respx.MockRouter) -> None:
    """Call every connector operation that talks to NinjaOne."""
    list(connector.poll("activities", None))
    list(connector.poll("activities", Cursor(position=Position(177100).encode())))
    connector.organizations()
    connector.devices()
    connector.devices(2)
    connector.alerts(2)
    connector.backup_jobs(2)
    connector.antivirus_status()
    connector.patch_installs(2, failed_only=True, since=datetime(2025, 3, 1, tzinfo=UTC))
    connector.pending_patches(2)
    connector.device_health(2)
    connector.register_webhooks("https://hub.example/webhooks/ninja")
    connector.remove_webhooks("https://hub.example/webhooks/ninja")
    request = WebhookRequest(headers={HEADER: SECRET},
                             body=fixture_bytes("webhook_condition_triggered.json"))
    connector.verify(request)
    for event in connector.parse(request):
        connector.enrich(event)


def test_every_request_matches_the_openapi_document(ninja_api: respx.MockRouter) -> None:
    """Paths, methods, query parameter names, types, ranges and enums, bearer auth, the
    webhook body's properties; the token endpoint as allow-listed."""
    checker = SpecChecker(load_spec())
    connector = NinjaOneConnector("ninja-spec", _config(), retry=_no_wait())

    _exercise(connector, ninja_api)
    for call in ninja_api.calls:
        checker.check(call.request)

    assert checker.problems == []
    in_spec = {
        ("GET", "/v2/activities"), ("GET", "/v2/device/{id}"), ("GET", "/v2/organizations"),
        ("GET", "/v2/devices-detailed"), ("GET", "/v2/alerts"), ("GET", "/v2/backup/jobs"),
        ("GET", "/v2/queries/antivirus-status"), ("GET", "/v2/queries/os-patch-installs"),
        ("GET", "/v2/queries/os-patches"), ("GET", "/v2/queries/device-health"),
        ("PUT", "/v2/webhook"), ("DELETE", "/v2/webhook"),
    }
    assert checker.checked == in_spec | set(NOT_IN_SPEC)


def _config() -> NinjaOneConfig:
    """Every optional query parameter we can send: class, the largest page."""
    return make_config(activity_class="DEVICE", page_size=1000)


def _no_wait() -> RetryPolicy:
    return RetryPolicy(sleep=lambda _s: None)


@pytest.mark.parametrize(
    ("method", "url", "headers", "problem"),
    [
        ("GET", f"{INSTANCE}/v2/activities?since=1", {}, "not declared"),
        ("GET", f"{INSTANCE}/v2/activities?newerThan=lots", {}, "not an integer"),
        ("GET", f"{INSTANCE}/v2/activities?pageSize=5000", {}, "out of range"),
        ("GET", f"{INSTANCE}/v2/activities?class=EVERYTHING", {}, "enum"),
        ("GET", f"{INSTANCE}/v2/widgets", {}, "not in the spec"),
        ("POST", f"{INSTANCE}/v2/alerts", {}, "not in the spec"),
        ("GET", f"{INSTANCE}/v2/alerts", {"Authorization": "Basic eA=="}, "bearer"),
    ],
)
def test_the_checker_catches_departures(
    method: str, url: str, headers: dict[str, str], problem: str
) -> None:
    """The validator itself: each kind of mismatch is reported."""
    checker = SpecChecker(load_spec())

    checker.check(httpx.Request(method, url, headers=headers or {"Authorization": "Bearer t"}))

    assert any(problem in p for p in checker.problems), checker.problems


def test_the_checker_catches_an_unknown_webhook_property() -> None:
    """A body property the WebhookConfiguration schema lacks (e.g. an HMAC 'secret')."""
    checker = SpecChecker(load_spec())

    checker.check(httpx.Request("PUT", f"{INSTANCE}/v2/webhook", json={"url": "x", "secret": "s"},
                                headers={"Authorization": "Bearer t"}))

    assert any("not in the schema" in p for p in checker.problems), checker.problems

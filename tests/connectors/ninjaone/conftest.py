"""NinjaOne fixtures: a respx router with named routes serving recorded-shaped payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from connectors.http import RetryPolicy
from connectors.ninjaone import NinjaOneConfig, NinjaOneConnector

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "vendor-specs" / "ninjaone"
INSTANCE = "https://eu.ninjarmm.com"
TOKEN_URL = f"{INSTANCE}/ws/oauth/token"
SECRET = "ninja-webhook-secret-0123456789"
HEADER = "X-Msphub-Webhook-Secret"
NOW = datetime(2025, 3, 19, 14, 0, 0, tzinfo=UTC)  # after every fixture's activityTime


def load_fixture(name: str) -> Any:
    """A recorded-shaped payload from ``fixtures/`` (parsed JSON)."""
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    """A fixture's exact bytes (webhook bodies)."""
    return (FIXTURES / name).read_bytes()


def make_config(**overrides: Any) -> NinjaOneConfig:
    """A tenant on the EU instance as an admin would configure it."""
    raw: dict[str, Any] = {
        "instance_url": INSTANCE,
        "client_id": "hub-client-id",
        "client_secret": "hub-client-secret-0123456789",
        "webhook_secret": SECRET,
    }
    raw.update(overrides)
    return NinjaOneConfig.model_validate(raw)


def form(request: httpx.Request) -> dict[str, str]:
    """A form-encoded request body as a dict."""
    return dict(parse_qsl(request.content.decode()))


def _token(request: httpx.Request) -> httpx.Response:
    """A token whose text names the scopes it was granted for."""
    scope = form(request).get("scope", "")
    return httpx.Response(200, json={**load_fixture("token.json"), "scope": scope,
                                     "access_token": "tok-" + scope.replace(" ", "+")})


def _activities(request: httpx.Request) -> httpx.Response:
    """The recorded activities plus the captured webhook's, filtered by the bounds by
    their names (newerThan: ids above, olderThan: ids below), newest first."""
    page = load_fixture("activities_newest.json")
    hook = {k: v for k, v in load_fixture("webhook_condition_triggered.json").items()
            if k != "device"}
    rows = sorted([*page["activities"], hook], key=lambda a: -a["id"])
    q = request.url.params
    rows = [a for a in rows if ("newerThan" not in q or a["id"] > int(q["newerThan"]))
            and ("olderThan" not in q or a["id"] < int(q["olderThan"]))]
    return httpx.Response(200, json={"lastActivityId": page["lastActivityId"],
                                     "activities": rows[:int(q.get("pageSize", "200"))]},
                          headers={"Date": "Wed, 19 Mar 2025 14:00:00 GMT"})


@pytest.fixture
def ninja_api() -> Iterator[respx.MockRouter]:
    """Every endpoint the connector uses, as named routes; unmocked requests fail."""
    with respx.mock(base_url=INSTANCE, assert_all_called=False, assert_all_mocked=True) as api:
        api.post("/ws/oauth/token", name="token").mock(side_effect=_token)
        api.get("/v2/activities", name="activities").mock(side_effect=_activities)
        api.get("/v2/device/7", name="device").respond(json=load_fixture("device_7.json"))
        api.get("/v2/organizations", name="organizations").respond(
            json=load_fixture("organizations.json"))
        api.get("/v2/devices-detailed", name="devices").respond(
            json=[load_fixture("device_7.json")])
        api.get("/v2/alerts", name="alerts").respond(json=load_fixture("alerts.json"))
        api.get("/v2/backup/jobs", name="backup_jobs").respond(
            json=load_fixture("backup_jobs.json"))
        api.get("/v2/queries/antivirus-status", name="antivirus").respond(
            json=load_fixture("antivirus_status.json"))
        api.get("/v2/queries/os-patch-installs", name="patch_installs").respond(
            json=load_fixture("os_patch_installs.json"))
        api.get("/v2/queries/device-health", name="health").respond(
            json=load_fixture("device_health.json"))
        api.get("/v2/queries/os-patches", name="patches").respond(
            json={"cursor": None, "results": []})
        api.put("/v2/webhook", name="put_webhook").respond(204)
        api.delete("/v2/webhook", name="delete_webhook").respond(204)
        yield api


@pytest.fixture
def connector() -> Iterator[NinjaOneConnector]:
    """A connector on the EU instance whose retries never wait and whose clock is fixed."""
    c = NinjaOneConnector("ninja-test", make_config(),
                          retry=RetryPolicy(sleep=lambda _s: None), clock=lambda: NOW)
    yield c
    c.close()

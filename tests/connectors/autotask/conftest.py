"""Autotask fixtures: a respx router with named routes serving vendor-shaped payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.autotask import AutotaskConfig, AutotaskConnector
from connectors.autotask.throttle import ThresholdGovernor
from connectors.http import RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures"
LOOKUP = "https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation"
API = "https://webservices3.autotask.net/atservicesrest/V1.0"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "test-webhook-secret-0123456789"
HOOK_URL = "https://hub.example.test/webhooks/at-test"
API_RESOURCE = 29682999


def load_fixture(name: str) -> Any:
    """A vendor-shaped payload from ``fixtures/`` (parsed JSON)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_bytes(name: str) -> bytes:
    """A payload's exact bytes (webhook bodies are signed over these)."""
    return (FIXTURES / name).read_bytes()


def make_config(**overrides: Any) -> AutotaskConfig:
    """A tenant configured as an admin would write it."""
    raw: dict[str, Any] = {
        "username": "apiuser@acme.com",
        "secret": "api-secret",
        "integration_code": "TRACKINGID0123",
        "webhook_secret": SECRET,
        "completed_status": "Complete",
    }
    raw.update(overrides)
    return AutotaskConfig.model_validate(raw)


def page(items: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    """Autotask's query envelope."""
    return {"items": items, "pageDetails": {"count": len(items), "requestCount": 500,
                                            "prevPageUrl": None, "nextPageUrl": next_url}}


def _tickets(request: httpx.Request) -> httpx.Response:
    """Page 1 names page 2 by nextPageUrl; page 2 ends the walk."""
    if request.url.path.endswith("/query/next"):
        return httpx.Response(200, json=load_fixture("tickets_page2.json"))
    return httpx.Response(200, json=load_fixture("tickets_page1.json"))


@pytest.fixture
def autotask_api() -> Iterator[respx.MockRouter]:
    """The zone lookup and the API routes the connector uses, by name."""
    with respx.mock(assert_all_called=False) as api:
        api.get(LOOKUP, name="zone").respond(json=load_fixture("zone_information.json"))
        api.get(f"{API}/ThresholdInformation", name="threshold").respond(
            json=load_fixture("threshold.json"))
        api.post(f"{API}/Tickets/query", name="tickets").mock(side_effect=_tickets)
        api.post(f"{API}/Tickets/query/next", name="tickets_next").mock(side_effect=_tickets)
        api.get(f"{API}/Tickets/entityInformation/fields", name="ticket_fields").respond(
            json=load_fixture("ticket_fields.json"))
        api.get(f"{API}/Contracts/entityInformation/fields", name="contract_fields").respond(
            json=load_fixture("contract_fields.json"))
        api.get(f"{API}/TicketNotes/entityInformation/fields", name="note_fields").respond(
            json=load_fixture("ticketnote_fields.json"))
        api.get(f"{API}/TicketWebhookFields/entityInformation/fields",
                name="webhook_fields").respond(json=load_fixture("webhook_fields.json"))
        api.post(f"{API}/Companies/query", name="companies").respond(
            json=load_fixture("companies.json"))
        api.post(f"{API}/Contacts/query", name="contacts").respond(
            json=load_fixture("contacts.json"))
        api.post(f"{API}/Resources/query", name="resources").respond(
            json=load_fixture("resources.json"))
        api.post(f"{API}/Contracts/query", name="contracts").respond(
            json=load_fixture("contracts.json"))
        yield api


@pytest.fixture
def connector(autotask_api: respx.MockRouter) -> Iterator[AutotaskConnector]:
    """A connector on the mocked API, its clock at NOW, retries without waiting, the
    threshold read once an hour (so tests count their own requests)."""
    governor = ThresholdGovernor(slow_above=0.5, stop_above=0.95, max_delay=2.0,
                                 check_interval=3600, sleep=lambda _s: None)
    with AutotaskConnector("at-test", make_config(), clock=lambda: NOW,
                           retry=RetryPolicy(sleep=lambda _s: None),
                           governor=governor) as c:
        yield c


def body_of(call: Any) -> dict[str, Any]:
    """The JSON body of a recorded respx call."""
    return json.loads(call.request.content)

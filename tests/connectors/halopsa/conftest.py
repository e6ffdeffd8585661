"""HaloPSA fixtures: a respx router with named routes serving vendor-shaped payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.halopsa import HaloPSAConfig, HaloPSAConnector
from connectors.http import RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "vendor-specs" / "halopsa"
HOST = "acme.halopsa.com"
ORIGIN = f"https://{HOST}"
API = f"{ORIGIN}/api"
SECRET = "halo-webhook-secret-0123456789"
NOW = datetime(2024, 5, 1, 12, 10, 0, tzinfo=UTC)


def load_fixture(name: str) -> Any:
    """A vendor-shaped payload from ``fixtures/`` (parsed JSON)."""
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    """A fixture's exact bytes (webhook bodies)."""
    return (FIXTURES / name).read_bytes()


def make_config(**overrides: Any) -> HaloPSAConfig:
    """A hosted tenant as an admin would configure it (pages of 2 to exercise paging)."""
    raw: dict[str, Any] = {
        "url": HOST,
        "tenant": "acme",
        "client_id": "5f1c0b9e-client",
        "client_secret": "halo-client-secret-0123456789",
        "webhook_secret": SECRET,
        "page_size": 2,
    }
    raw.update(overrides)
    return HaloPSAConfig.model_validate(raw)


def _tickets(request: httpx.Request) -> httpx.Response:
    page = request.url.params.get("page_no")
    name = "tickets_page2.json" if page == "2" else "tickets_page1.json"
    return httpx.Response(200, json=load_fixture(name))


@pytest.fixture
def halo_api() -> Iterator[respx.MockRouter]:
    """Every endpoint the connector uses, as named routes; unmocked requests fail."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as api:
        api.post(host=HOST, path="/auth/token", name="token").respond(
            json=load_fixture("token.json"))
        api.get(f"{API}/Tickets", name="tickets").mock(side_effect=_tickets)
        api.get(f"{API}/Tickets/4821", name="ticket").respond(
            json=load_fixture("ticket_4821.json"))
        api.get(f"{API}/TicketType", name="types").respond(json=load_fixture("tickettypes.json"))
        api.get(f"{API}/Client", name="clients").respond(json=load_fixture("clients.json"))
        api.get(f"{API}/Status", name="statuses").respond(json=load_fixture("statuses.json"))
        api.get(f"{API}/ClientContract", name="contracts").respond(
            json=load_fixture("contracts.json"))
        api.get(f"{API}/Actions", name="actions").respond(json=load_fixture("actions.json"))
        api.post(f"{API}/Actions", name="add_action").respond(
            json=load_fixture("action_created.json"))
        api.get(f"{API}/Attachment", name="attachments").respond(
            json=load_fixture("attachments.json"))
        api.post(f"{API}/Attachment", name="add_attachment").respond(
            json={"id": 502, "ticket_id": 4821})
        yield api


@pytest.fixture
def connector() -> Iterator[HaloPSAConnector]:
    """A connector whose retries never wait and whose clock is fixed."""
    c = HaloPSAConnector("halo-test", make_config(), retry=RetryPolicy(sleep=lambda _s: None),
                         clock=lambda: NOW)
    yield c
    c.close()


def sent_json(call: Any) -> Any:
    """The JSON body of a recorded request."""
    return json.loads(call.request.content)

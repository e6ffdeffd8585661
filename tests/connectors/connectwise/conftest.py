"""ConnectWise fixtures: a respx router with named routes serving recorded payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.connectwise import ConnectWiseConfig, ConnectWiseConnector
from connectors.http import RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures"
ORIGIN = "https://api-na.myconnectwise.net"
API = f"{ORIGIN}/v4_6_release/apis/3.0"
KEY_URL = f"{ORIGIN}/v4_6_release/system/callbackkey/index.rails?id=4c8e1f"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "test-webhook-secret-0123456789"
HOOK_URL = "https://hub.example.test/webhooks/cw-test"


def load_fixture(name: str) -> Any:
    """A recorded payload from ``fixtures/`` (parsed JSON)."""
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    """A recorded payload's exact bytes (callback bodies are signed over these)."""
    return (FIXTURES / name).read_bytes()


def make_config(**overrides: Any) -> ConnectWiseConfig:
    """A tenant on the NA cloud as a user would type it."""
    raw: dict[str, Any] = {
        "site": "na.myconnectwise.net",
        "company_id": "example",
        "public_key": "pubkey",
        "private_key": "privkey",
        "client_id": "6f0f3c2e-0000-4000-8000-000000000000",
        "webhook_secret": SECRET,
        "api_member": "msphub-api",
    }
    raw.update(overrides)
    return ConnectWiseConfig.model_validate(raw)


def _tickets(request: httpx.Request) -> httpx.Response:
    """Page 1 links to page 2 the way ConnectWise does; page 2 has no next link."""
    page = request.url.params.get("page", "1")
    if page == "1":
        nxt = request.url.copy_set_param("page", "2")
        link = f'<{nxt}>; rel="next", <{nxt}>; rel="last"'
        return httpx.Response(200, json=load_fixture("tickets_page1.json"), headers={"Link": link})
    first = request.url.copy_set_param("page", "1")
    link = f'<{first}>; rel="first", <{first}>; rel="prev"'
    return httpx.Response(200, json=load_fixture("tickets_page2.json"), headers={"Link": link})


@pytest.fixture
def cw_api() -> Iterator[respx.MockRouter]:
    """Every endpoint the connector uses, as named routes; unmocked requests fail."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as api:
        api.get(f"{API}/service/tickets", name="tickets").mock(side_effect=_tickets)
        api.get(f"{API}/service/tickets/69", name="ticket").respond(
            json=load_fixture("ticket_69.json")
        )
        api.patch(f"{API}/service/tickets/69", name="ticket_patch").respond(
            json=load_fixture("ticket_69.json")
        )
        api.get(f"{API}/service/tickets/69/notes", name="notes").respond(
            json=load_fixture("notes_ticket_69.json")
        )
        api.post(f"{API}/service/tickets/69/notes", name="note_create").respond(
            201, json=load_fixture("note_created.json")
        )
        api.get(f"{API}/service/boards/1/statuses", name="statuses").respond(
            json=load_fixture("statuses_board_1.json")
        )
        api.get(f"{API}/finance/agreements", name="agreements").respond(
            json=load_fixture("agreements.json")
        )
        api.get(f"{API}/finance/agreements/501", name="agreement").respond(
            json=load_fixture("agreements.json")[0]
        )
        api.get(f"{API}/system/documents", name="documents").respond(
            json=load_fixture("documents_ticket_69.json")
        )
        api.post(f"{API}/system/documents", name="document_create").respond(
            201, json=load_fixture("document_created.json")
        )
        api.get(f"{API}/system/callbacks", name="callbacks").respond(
            json=load_fixture("callbacks_existing.json")
        )
        api.post(f"{API}/system/callbacks", name="callback_create").respond(
            201, json=load_fixture("callback_created.json")
        )
        api.delete(url__regex=rf"^{API}/system/callbacks/\d+$", name="callback_delete").respond(204)
        api.get(KEY_URL, name="callback_key").respond(json=load_fixture("callback_key.json"))
        yield api


@pytest.fixture
def connector(cw_api: respx.MockRouter) -> Iterator[ConnectWiseConnector]:
    """A connector at a frozen clock whose retries never wait."""
    conn = ConnectWiseConnector(
        "cw-test", make_config(), clock=lambda: NOW, retry=RetryPolicy(sleep=lambda _s: None)
    )
    yield conn
    conn.close()

"""N-central fixtures: a respx router with named routes serving spec-shaped payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.http import RetryPolicy
from connectors.ncentral import NcentralConfig, NcentralConnector

FIXTURES = Path(__file__).parent / "fixtures"
SERVER = "https://ncentral.example.com"
API = f"{SERVER}/api"
JWT = "eyJhbGciOiJIUzI1NiJ9.user-api-token.signature"
NOW = datetime(2024, 7, 16, 14, 0, 0, tzinfo=UTC)
DATE = "Tue, 16 Jul 2024 14:00:00 GMT"
NO_WAIT = RetryPolicy(sleep=lambda _s: None)


def load_fixture(name: str) -> Any:
    """A spec-shaped payload from ``fixtures/`` (parsed JSON)."""
    return json.loads((FIXTURES / name).read_text())


def make_config(**overrides: Any) -> NcentralConfig:
    """A server as an admin would configure it (pages of 2 exercise paging)."""
    raw: dict[str, Any] = {"server_url": SERVER, "user_api_token": JWT, "page_size": 2}
    raw.update(overrides)
    return NcentralConfig.model_validate(raw)


def paged(*pages: str) -> Any:
    """A side effect answering ``pageNumber=n`` with the n-th fixture (and N-central's Date)."""

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("pageNumber", "1"))
        name = pages[number - 1] if number <= len(pages) else "issues_empty.json"
        return httpx.Response(200, json=load_fixture(name), headers={"Date": DATE})

    return answer


@pytest.fixture
def ncentral_api() -> Iterator[respx.MockRouter]:
    """Every endpoint the connector uses, as named routes; unmocked requests fail."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as api:
        api.post(f"{API}/auth/authenticate", name="authenticate").respond(
            json=load_fixture("auth_tokens.json"))
        api.post(f"{API}/auth/refresh", name="refresh").respond(
            json=load_fixture("auth_refreshed.json"))
        api.get(f"{API}/customers", name="customers").respond(
            json=load_fixture("customers.json"), headers={"Date": DATE})
        api.get(f"{API}/sites", name="sites").respond(json=load_fixture("sites.json"))
        api.get(f"{API}/org-units/100/active-issues", name="issues_100").mock(
            side_effect=paged("issues_100_page1.json", "issues_100_page2.json"))
        api.get(f"{API}/org-units/101/active-issues", name="issues_101").mock(
            side_effect=paged("issues_101.json"))
        api.get(f"{API}/org-units/200/active-issues", name="issues_200").mock(
            side_effect=paged("issues_empty.json"))
        api.get(f"{API}/devices", name="devices").respond(
            json=load_fixture("devices_all.json"), headers={"Date": DATE})
        api.get(f"{API}/org-units/101/devices", name="devices_101").respond(
            json=load_fixture("devices_101.json"))
        yield api


@pytest.fixture
def connector() -> Iterator[NcentralConnector]:
    """A connector whose retries never wait and whose clock is fixed."""
    c = NcentralConnector("nc-test", make_config(), retry=NO_WAIT, clock=lambda: NOW)
    yield c
    c.close()

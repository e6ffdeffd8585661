"""Datto RMM fixtures: a respx router with named routes serving recorded-shaped payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from connectors.datto_rmm import DattoRMMConfig, DattoRMMConnector
from connectors.http import RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "vendor-specs" / "datto-rmm"
ORIGIN = "https://merlot-api.centrastage.net"
API = f"{ORIGIN}/api"
TOKEN_URL = f"{ORIGIN}/auth/oauth/token"
SECRET = "datto-webhook-secret-0123456789"
NOW = datetime(2024, 7, 16, 14, 0, 0, tzinfo=UTC)
BACKUP_RESOLVED = "0f5c7a52-4c2e-4f61-9a77-6b0c1d2e3f41"


def load_fixture(name: str) -> Any:
    """A recorded-shaped payload from ``fixtures/`` (parsed JSON)."""
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    """A fixture's exact bytes (webhook bodies)."""
    return (FIXTURES / name).read_bytes()


def shared_fixture(name: str) -> Any:
    """A fixture from ``shared/vendor-specs/datto-rmm/fixtures``; skips when it is absent."""
    path = SHARED / "fixtures" / name
    if not path.is_file():
        pytest.skip("shared/ (vendor specs) is not beside the repository")
    return json.loads(path.read_text())


def make_config(**overrides: Any) -> DattoRMMConfig:
    """An account on the merlot platform as an admin would configure it."""
    raw: dict[str, Any] = {
        "api_url": ORIGIN,
        "api_key": "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
        "api_secret": "SECRETSECRETSECRETSECRETSECRET01",
        "webhook_secret": SECRET,
    }
    raw.update(overrides)
    return DattoRMMConfig.model_validate(raw)


def _open_alerts(request: httpx.Request) -> httpx.Response:
    """Page 0 (no ``page`` sent) links to page 1 with an absolute nextPageUrl."""
    page = request.url.params.get("page")
    name = "alerts_open_page1.json" if page == "1" else "alerts_open_page0.json"
    return httpx.Response(200, json=load_fixture(name),
                          headers={"Date": "Tue, 16 Jul 2024 14:00:00 GMT"})


@pytest.fixture
def datto_api() -> Iterator[respx.MockRouter]:
    """Every endpoint the connector uses, as named routes; unmocked requests fail."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as api:
        api.post(TOKEN_URL, name="token").respond(json=load_fixture("token.json"))
        api.get(f"{API}/v2/account/alerts/open", name="open").mock(side_effect=_open_alerts)
        api.get(f"{API}/v2/account/alerts/resolved", name="resolved").respond(
            json=load_fixture("alerts_resolved.json"),
            headers={"Date": "Tue, 16 Jul 2024 14:00:00 GMT"})
        api.get(f"{API}/v2/site/site-uid-1/alerts/open", name="site_open").respond(
            json={**load_fixture("alerts_open_page1.json"),
                  "pageDetails": {"count": 1, "totalCount": 1, "nextPageUrl": None}})
        api.get(f"{API}/v2/site/site-uid-1/alerts/resolved", name="site_resolved").respond(
            json=load_fixture("alerts_resolved.json"))
        resolved = load_fixture("alerts_resolved.json")["alerts"][0]
        api.get(f"{API}/v2/alert/{BACKUP_RESOLVED}", name="alert").respond(json=resolved)
        api.get(f"{API}/v2/account/sites", name="sites").respond(json=load_fixture("sites.json"))
        yield api


@pytest.fixture
def connector() -> Iterator[DattoRMMConnector]:
    """A connector on merlot whose retries never wait and whose clock is fixed."""
    c = DattoRMMConnector("datto-test", make_config(),
                          retry=RetryPolicy(sleep=lambda _s: None), clock=lambda: NOW)
    yield c
    c.close()

"""Connector contracts: registry, config validation, errors and shared models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from connectors import base
from connectors.base import (
    THIN,
    Capability,
    ConnectorError,
    Cursor,
    InvalidConfig,
    MalformedPayload,
    Manifest,
    RateLimited,
    RegistryError,
    TransientError,
    UnknownConnector,
    WebhookRejected,
    WebhookRequest,
    build_connector,
    get_connector_class,
    is_thin,
    load_registry,
    load_sandbox,
    missing_capabilities,
)
from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.sandbox import SandboxServer
from connectors.webhook import WebhookConnector
from hub.core.events import Event, EventKind


class _EntryPoint:
    def __init__(self, name: str, obj: Any) -> None:
        self.name = name
        self._obj = obj

    def load(self) -> Any:
        return self._obj


@pytest.fixture
def fresh_registry() -> Any:
    """Clear the cached registry before and after a test that fakes entry points."""
    load_registry.cache_clear()
    yield
    load_registry.cache_clear()


def test_registry_lists_the_installed_connectors() -> None:
    """Entry points ``connectwise`` and ``webhook`` resolve to their classes."""
    registry = load_registry()

    assert registry["connectwise"] is ConnectWiseConnector
    assert registry["webhook"] is WebhookConnector


def test_unknown_vendor_lists_the_known_ones() -> None:
    """UnknownConnector names what is available."""
    with pytest.raises(UnknownConnector) as info:
        get_connector_class("halo")

    assert "connectwise" in info.value.known and "webhook" in info.value.known
    assert "connectwise" in str(info.value)


def test_entry_name_must_equal_manifest_vendor(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    """A plugin registered under another name is refused."""
    monkeypatch.setattr(
        base, "entry_points", lambda group: [_EntryPoint("cw", ConnectWiseConnector)]
    )

    with pytest.raises(RegistryError, match="must match"):
        load_registry()


def test_entry_without_manifest_is_refused(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    """Only classes with a Manifest are connectors."""
    monkeypatch.setattr(base, "entry_points", lambda group: [_EntryPoint("x", object)])

    with pytest.raises(RegistryError, match="no Manifest"):
        load_registry()


def test_build_connector_validates_config_with_secrets_as_secretstr() -> None:
    """Raw dicts become the config model; secrets stay hidden."""
    connector = build_connector(
        "connectwise",
        "cw-prod",
        {
            "site": "na.myconnectwise.net",
            "company_id": "example",
            "public_key": "pub",
            "private_key": "very-secret-private",
            "client_id": "cid",
        },
    )

    assert isinstance(connector, ConnectWiseConnector)
    assert connector.name == "cw-prod"
    assert connector.config.private_key.get_secret_value() == "very-secret-private"
    assert "very-secret-private" not in repr(connector.config)
    connector.close()


def test_invalid_config_lists_problems_without_values() -> None:
    """InvalidConfig names field paths and messages, never the offending values."""
    with pytest.raises(InvalidConfig) as info:
        build_connector(
            "connectwise",
            "cw",
            {
                "site": "na.myconnectwise.net",
                "private_key": "hunter2-hunter2",
                "page_size": 5000,
                "colour": "blue",
            },
        )

    paths = {path for path, _ in info.value.problems}
    assert {"company_id", "public_key", "client_id", "page_size", "colour"} <= paths
    assert "hunter2" not in str(info.value) and "5000" not in str(info.value)


def test_error_tree_and_attributes() -> None:
    """Errors carry source/status/request_id; webhook errors carry their HTTP status."""
    limited = RateLimited("slow down", retry_after=12, source="cw", status=429, request_id="r1")
    malformed = MalformedPayload("field 'ID' is missing")

    assert isinstance(limited, TransientError) and isinstance(limited, ConnectorError)
    assert (limited.retry_after, limited.source, limited.status, limited.request_id) == (
        12,
        "cw",
        429,
        "r1",
    )
    assert isinstance(malformed, WebhookRejected) and malformed.status == 400
    assert WebhookRejected("bad signature").status == 401
    assert base.__doc__ is not None and base.__doc__.lstrip().startswith("Connector contracts")
    assert "RateLimited" in base.__doc__ and "MalformedPayload" in base.__doc__


def test_webhook_request_lower_cases_header_names() -> None:
    """Connectors can rely on lower-case header keys."""
    request = WebhookRequest(headers={"X-Content-Signature": "abc"}, body=b"{}")

    assert request.headers == {"x-content-signature": "abc"}
    assert request.query == {} and request.path_secret is None


def test_cursor_round_trips_as_json() -> None:
    """Cursors are small JSON values with a version."""
    cursor = Cursor(position="2024-05-01T12:00:00Z")

    assert Cursor.model_validate_json(cursor.model_dump_json()) == cursor
    assert cursor.model_dump() == {"version": 1, "position": "2024-05-01T12:00:00Z"}
    with pytest.raises(ValidationError):
        Cursor.model_validate({"position": "x", "extra": 1})


def test_manifest_requires_streams_for_pollers() -> None:
    """A poller without streams is a broken manifest."""

    class Config(BaseModel):
        pass

    with pytest.raises(ValidationError, match="stream"):
        Manifest(
            vendor="x",
            display_name="X",
            kind="rmm",
            capabilities=frozenset({Capability.POLLER}),
            config_model=Config,
        )


def test_missing_capabilities_detects_undeclared_methods() -> None:
    """A manifest promising a capability the class lacks is caught."""

    class Config(BaseModel):
        pass

    class Liar:
        manifest = Manifest(
            vendor="liar",
            display_name="Liar",
            kind="generic",
            capabilities=frozenset({Capability.TICKET_WRITER}),
            config_model=Config,
        )

    assert missing_capabilities(Liar) == [Capability.TICKET_WRITER]
    assert missing_capabilities(ConnectWiseConnector) == []


def test_is_thin_reads_the_marker() -> None:
    """Thin webhook events are recognisable by the hub."""
    event = Event(
        source="cw",
        vendor="connectwise",
        kind=EventKind.TICKET_UPDATED,
        dedupe_key="k",
        occurred_at=datetime(2024, 5, 1, tzinfo=UTC),
        data={THIN: True},
    )

    assert is_thin(event)
    assert not is_thin(event.model_copy(update={"data": {"ticket": {}}}))


def test_load_sandbox_from_the_manifest() -> None:
    """The manifest names the sandbox; connectors without one return None."""
    assert load_sandbox("connectwise") is SandboxServer
    assert load_sandbox("webhook") is None

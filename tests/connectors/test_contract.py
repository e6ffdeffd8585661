"""Contract suite: every registered connector goes through the same checks (STYLE §12).

Manifest checks run for every connector; the behavioural checks run against each
connector's sandbox (real HTTP on 127.0.0.1) for connectors that ship one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import BaseModel

from connectors.base import (
    AuthFailed,
    Connector,
    Cursor,
    Poller,
    RateLimited,
    Sandbox,
    build_connector,
    get_connector_class,
    load_registry,
    load_sandbox,
    missing_capabilities,
)
from hub.core.events import EventKind

VENDORS = sorted(load_registry())
SANDBOXED = [v for v in VENDORS if load_sandbox(v) is not None]


@pytest.mark.parametrize("vendor", VENDORS)
def test_manifest_is_valid(vendor: str) -> None:
    """Entry name = vendor, a config model, declared capabilities implemented, sane streams."""
    cls = get_connector_class(vendor)
    manifest = cls.manifest

    assert manifest.vendor == vendor
    assert manifest.display_name.strip()
    assert issubclass(manifest.config_model, BaseModel)
    assert missing_capabilities(cls) == []
    assert manifest.default_poll_interval > timedelta(0)
    for spec in manifest.streams.values():
        assert spec.kinds and spec.kinds <= set(EventKind)


@pytest.fixture(params=SANDBOXED)
def sandboxed(request: pytest.FixtureRequest) -> Iterator[tuple[str, Sandbox]]:
    """(vendor, running sandbox) for each connector that ships a sandbox."""
    cls = load_sandbox(request.param)
    assert cls is not None
    sandbox = cls()
    sandbox.start()
    assert isinstance(sandbox, Sandbox)  # after start: the protocol reads ``url``
    yield request.param, sandbox
    sandbox.stop()


def _poller(vendor: str, sandbox: Sandbox, *, valid: bool = True) -> Poller:
    connector: Connector = build_connector(
        vendor, f"{vendor}-contract", sandbox.connector_config(valid_credentials=valid)
    )
    if not isinstance(connector, Poller):
        pytest.skip(f"{vendor} does not poll")
    return connector


def _stream(vendor: str) -> str:
    return sorted(get_connector_class(vendor).manifest.streams)[0]


def test_bad_credentials_raise_auth_failed(sandboxed: tuple[str, Sandbox]) -> None:
    """401 from the vendor → AuthFailed (the hub disables the source and alerts)."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox, valid=False)

    with pytest.raises(AuthFailed):
        list(poller.poll(_stream(vendor), None))


def test_429_surfaces_retry_after(sandboxed: tuple[str, Sandbox], sleeps: list[float]) -> None:
    """A long Retry-After reaches the caller as RateLimited.retry_after and pauses the
    source (the next poll is refused with the time left); a short one is waited."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox)
    stream = _stream(vendor)

    # Given a vendor that answers 429 with Retry-After: 120
    sandbox.fail_next(5, status=429, retry_after=120)
    with pytest.raises(RateLimited) as info:
        list(poller.poll(stream, None))
    # When the same source polls again at once
    with pytest.raises(RateLimited) as paused:
        list(poller.poll(stream, None))
    # Then it was refused before sending; another source waits out a short Retry-After
    other = _poller(vendor, sandbox)
    sandbox.fail_next(1, status=429, retry_after=2)
    list(other.poll(stream, None))

    assert info.value.retry_after == 120
    assert 100 < (paused.value.retry_after or 0) <= 120
    # Waits are patched, so the source-wide pause is still running when a second request
    # of the same poll comes: it waits out what is left, never more.
    assert sleeps[0] == 2.0 and all(s <= 2.0 for s in sleeps)


@pytest.mark.parametrize("count", [0, 25])
def test_paging_ends_and_the_cursor_never_goes_back(
    sandboxed: tuple[str, Sandbox], count: int
) -> None:
    """Every stream: finite pages, non-decreasing cursors, across two runs."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox)
    for stream in get_connector_class(vendor).manifest.streams:
        sandbox.seed(stream, count)

        first = list(poller.poll(stream, None))
        second = list(poller.poll(stream, first[-1].cursor))

        positions = [p.cursor.position for p in first + second]
        assert positions == sorted(positions), stream
        assert 1 <= len(first) <= count + 2
        assert sum(len(p.events) for p in first) >= count
        assert Cursor.model_validate_json(first[-1].cursor.model_dump_json()) == first[-1].cursor


def test_events_carry_source_vendor_kind_and_dedupe_key(sandboxed: tuple[str, Sandbox]) -> None:
    """Polled events name their instance and vendor, use declared kinds, unique keys."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox)
    for stream, spec in get_connector_class(vendor).manifest.streams.items():
        sandbox.seed(stream, 12)

        events = [e for page in poller.poll(stream, None) for e in page.events]

        assert len(events) >= 12
        keys = [e.dedupe_key for e in events]
        assert len(keys) == len(set(keys))
        for event in events:
            assert event.source == f"{vendor}-contract"
            assert event.vendor == vendor
            assert event.kind in spec.kinds
            assert event.dedupe_key and event.occurred_at.tzinfo is not None

"""The catalog tells the truth: what each connector's sandbox events carry in ``data`` is
what its manifest declares for their kind (so `mappings check` refuses only real typos)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import (
    Poller,
    build_connector,
    get_connector_class,
    load_registry,
    load_sandbox,
)
from hub.config.fields import to_info
from hub.core.mapping.fields import FieldSet

SANDBOXED = [v for v in sorted(load_registry()) if load_sandbox(v) is not None]


def data_paths(data: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every leaf path of an event's data (an empty map counts as a leaf)."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from data_paths(value, path + ".")
        else:
            yield path


@pytest.mark.parametrize("vendor", SANDBOXED)
def test_polled_events_carry_only_declared_fields(vendor: str) -> None:
    """Seed every stream, poll it, and compare each event's data paths with the manifest."""
    manifest = get_connector_class(vendor).manifest
    declared = {kind: FieldSet.of(infos) for kind, infos in to_info(manifest.fields).items()}
    sandbox_cls = load_sandbox(vendor)
    assert sandbox_cls is not None
    sandbox = sandbox_cls()
    sandbox.start()
    try:
        connector = build_connector(vendor, f"{vendor}-fields", sandbox.connector_config())
        assert isinstance(connector, Poller)
        seen = 0
        for stream in manifest.streams:
            sandbox.seed(stream, 3)
            for page in connector.poll(stream, None):
                for event in page.events:
                    assert event.kind in declared, f"{vendor}: no fields for {event.kind}"
                    undeclared = [p for p in data_paths(event.data)
                                  if not declared[event.kind].has(p)]
                    assert undeclared == [], f"{vendor} {event.kind}"
                    seen += 1
        assert seen > 0
    finally:
        sandbox.stop()

"""Shared connector test fixtures: retries without waiting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors import http
from connectors.http import RetryPolicy


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Patch the retry sleep to record waits instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(http, "sleep", recorded.append)
    yield recorded


@pytest.fixture
def no_wait() -> RetryPolicy:
    """A retry policy whose waits are recorded nowhere and take no time."""
    return RetryPolicy(sleep=lambda _seconds: None)

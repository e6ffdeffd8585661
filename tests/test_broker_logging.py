"""Expected, retried conditions are one warning with the next attempt, not an ERROR traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest
from structlog.testing import capture_logs

from connectors.base import RateLimited, TransientError
from hub.runtime.broker import make_broker

FAILED = "Failed to process message"


@pytest.fixture
def broker() -> Iterator[dramatiq.Broker]:
    """The in-process broker the hub builds, with a running worker."""
    broker = make_broker(None)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=20)
    worker.start()
    yield broker
    worker.stop()
    broker.close()


def _run(broker: dramatiq.Broker, fn: Callable[[int], None], **options: Any) -> None:
    actor = dramatiq.actor(actor_name=fn.__name__, broker=broker, min_backoff=10,
                           max_backoff=20, **options)(fn)
    actor.send(7)
    broker.join(actor.queue_name, timeout=20_000, fail_fast=False)  # type: ignore[attr-defined]


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and FAILED in r.getMessage()]


def test_a_transient_failure_is_one_warning_with_the_next_attempt(
    broker: dramatiq.Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A 502 from the PSA: no ERROR traceback from dramatiq, one warning naming the
    reason and the next attempt; the retry then succeeds."""
    calls: list[int] = []

    def deliver(item_id: int) -> None:
        calls.append(item_id)
        if len(calls) == 1:
            raise TransientError("HTTP 502 from POST /service/tickets/7/notes")

    with caplog.at_level(logging.INFO), capture_logs() as logs:
        _run(broker, deliver, max_retries=3)

    assert calls == [7, 7]
    assert _errors(caplog) == []
    [retry] = [e for e in logs if e["event"] == "job_retry_scheduled"]
    assert retry["log_level"] == "warning"
    assert retry["reason"] == "TransientError: HTTP 502 from POST /service/tickets/7/notes"
    assert retry["next_attempt"] == 2 and 0 < retry["next_attempt_in_s"] <= 0.1
    assert not [e for e in logs if e["log_level"] == "error"]


def test_a_rescheduled_job_names_the_vendor_reason(
    broker: dramatiq.Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """An actor rescheduling with dramatiq.Retry (a 429) logs the 429 and the delay."""
    calls: list[int] = []

    def poll(item_id: int) -> None:
        calls.append(item_id)
        if len(calls) == 1:
            exc = RateLimited("HTTP 429 from GET /service/tickets", retry_after=0.05)
            raise dramatiq.Retry(delay=50) from exc

    with caplog.at_level(logging.INFO), capture_logs() as logs:
        _run(broker, poll, max_retries=3)

    [retry] = [e for e in logs if e["event"] == "job_retry_scheduled"]
    assert retry["reason"] == "RateLimited: HTTP 429 from GET /service/tickets"
    assert retry["next_attempt_in_s"] == 0.05
    assert _errors(caplog) == []


def test_retries_exhausted_is_an_error(
    broker: dramatiq.Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """When the last attempt of a transient failure fails, a human must look: ERROR."""
    def always(item_id: int) -> None:
        raise TransientError("HTTP 503 from GET /service/tickets/7")

    with caplog.at_level(logging.INFO), capture_logs() as logs:
        _run(broker, always, max_retries=1)

    gave_up = [e for e in logs if e["event"] == "job_gave_up"]
    assert len(gave_up) == 1 and gave_up[0]["log_level"] == "error"
    assert gave_up[0]["attempts"] == 2
    assert len([e for e in logs if e["event"] == "job_retry_scheduled"]) == 1


def test_a_bug_still_logs_dramatiqs_error_traceback(
    broker: dramatiq.Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception keeps its ERROR traceback."""
    def broken(item_id: int) -> None:
        raise KeyError("oops")

    with caplog.at_level(logging.INFO):
        _run(broker, broken, max_retries=0)

    [record] = _errors(caplog)
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)

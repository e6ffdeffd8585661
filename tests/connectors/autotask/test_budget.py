"""Autotask's limits with several workers against the sandbox over real HTTP: a configured
hourly budget is never exceeded, never more than 3 requests are in flight per endpoint,
and requests slow down as ThresholdInformation reports the database's use rising."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from connectors.autotask import AutotaskConfig, AutotaskConnector
from connectors.autotask.sandbox import SandboxServer
from connectors.autotask.throttle import MemoryEndpointLimiter, ThresholdGovernor
from connectors.base import RateLimited, RequestBudget
from connectors.budget import MemoryBudget, RedisBudget
from connectors.http import RetryPolicy

WORKERS = 6
HOURLY = 60
NO_WAIT = RetryPolicy(sleep=lambda _s: None)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """The sandbox with 30 tickets and a 25 ms answer time (so workers overlap)."""
    with SandboxServer() as srv:
        srv.seed("tickets", 30)
        srv.sandbox.faults.set_delay(25)
        yield srv


def _config(server: SandboxServer, **overrides: Any) -> AutotaskConfig:
    settings = {"requests_per_hour": HOURLY, "requests_per_minute": 10_000, **overrides}
    return AutotaskConfig.model_validate(server.connector_config(**settings))


def _work(connector: AutotaskConnector, stop: threading.Event, spent: list[str],
          polls: int) -> None:
    """Poll until the budget says stop (at most ``polls`` times)."""
    for _ in range(polls):
        if stop.is_set():
            return
        try:
            for _page in connector.poll("tickets", None):
                pass
        except RateLimited as exc:
            spent.append(str(exc))
            stop.set()
            return


def _run(workers: list[AutotaskConnector], polls: int = 40) -> list[str]:
    stop, spent = threading.Event(), []
    threads = [threading.Thread(target=_work, args=(w, stop, spent, polls)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads)
    return spent


def _api_requests(server: SandboxServer) -> int:
    return server.sandbox.request_count()


def test_one_connector_shared_by_worker_threads_stays_within_the_limits(
        server: SandboxServer) -> None:
    """Embedded mode: six worker threads share the source's connector (in-memory budget)."""
    # Given one connector whose hourly budget is 60 requests
    connector = AutotaskConnector("at", _config(server), retry=NO_WAIT)
    # When six workers poll it as fast as they can until the budget stops them
    spent = _run([connector] * WORKERS)
    connector.close()
    # Then no more than 60 requests reached Autotask, never more than 3 per endpoint at once
    assert spent and "budget" in spent[0]
    assert _api_requests(server) <= HOURLY
    assert _api_requests(server) >= HOURLY - WORKERS  # the budget, not luck, stopped them
    assert max(server.sandbox.peak_in_flight.values()) <= 3
    assert server.sandbox.peak_in_flight["tickets"] == 3  # the cap was reached and held
    assert server.sandbox.thread_refusals == 0


def test_worker_processes_sharing_redis_stay_within_the_limits(
        server: SandboxServer, redis_url: str) -> None:
    """Redis mode: six connectors (one per worker process) share the hub's Redis budget;
    the hourly window and the endpoint slots live beside it, so the limits hold for all."""
    client = redis.Redis.from_url(redis_url)
    key = f"msphub-test:budget:at-{uuid.uuid4().hex[:8]}"

    def worker() -> AutotaskConnector:
        budget: RequestBudget = RedisBudget(client, key, 10_000, 60, source="at")
        return AutotaskConnector("at", _config(server), budget=budget, retry=NO_WAIT)

    workers = [worker() for _ in range(WORKERS)]
    spent = _run(workers)
    for w in workers:
        w.close()

    assert spent
    assert _api_requests(server) <= HOURLY
    assert _api_requests(server) >= HOURLY - WORKERS
    assert max(server.sandbox.peak_in_flight.values()) <= 3
    assert server.sandbox.peak_in_flight["tickets"] == 3
    assert server.sandbox.thread_refusals == 0
    assert client.zcard(f"{key}:hour") <= HOURLY
    client.close()


def test_requests_slow_down_as_the_threshold_endpoint_reports_rising_use(
        server: SandboxServer) -> None:
    """The tenant's other integrations spend more and more of the 10,000 per hour: below
    50 % nothing waits, then each request waits longer, and near the threshold the
    workers are told to come back later instead of pushing Autotask over it."""
    # Given a connector reading ThresholdInformation each time its (test) clock moves on
    now = [0.0]
    delays: list[float] = []
    governor = ThresholdGovernor(slow_above=0.5, stop_above=0.95, max_delay=2.0,
                                 check_interval=60, clock=lambda: now[0], sleep=delays.append)
    connector = AutotaskConnector("at", _config(server, requests_per_hour=100_000),
                                  retry=NO_WAIT, governor=governor,
                                  limiter=MemoryEndpointLimiter(3),
                                  budget=MemoryBudget(10_000, 60))
    sandbox = server.sandbox
    phases: list[list[float]] = []
    # When the other integrations' use rises phase by phase, three workers polling each
    for other in (1_000, 6_000, 7_500):
        sandbox.external_usage = other
        now[0] += 61  # the next request reads ThresholdInformation again
        before = len(delays)
        assert _run([connector] * 3, polls=5) == []
        phases.append(delays[before:])
    # Then: no delay below 50 %, longer delays as use rises …
    assert phases[0] == []
    assert phases[1] and phases[2]
    mean = [sum(p) / len(p) for p in phases[1:]]
    assert mean[1] > mean[0] > 0 and max(phases[2]) > max(phases[1])
    assert max(phases[2]) <= 2.0
    # … and at 95 % of the threshold the next request is refused until the next reading
    sandbox.external_usage = 9_600
    now[0] += 61
    with pytest.raises(RateLimited) as info:
        for _ in range(3):
            list(connector.poll("tickets", None))
    assert info.value.retry_after == 60
    assert connector.threshold_fraction() >= 0.95
    connector.close()

"""A vendor's Retry-After pauses the whole source: every request of every worker waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from connectors.base import RateLimited, build_connector
from connectors.budget import MemoryBudget, RedisBudget, make_budget
from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.sandbox import SandboxServer
from connectors.http import RetryPolicy, make_client, send
from hub.api.metrics import SourceGauges
from hub.core.events import SubjectRef
from hub.services.sources import Source, Sources, SourceSpec


class FakeTime:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Vendor:
    """A transport that answers 429 with Retry-After for the first ``limited`` requests."""

    def __init__(self, limited: int = 0, retry_after: str = "12") -> None:
        self.limited = limited
        self.retry_after = retry_after
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.limited > 0:
            self.limited -= 1
            return httpx.Response(429, headers={"Retry-After": self.retry_after})
        return httpx.Response(200, json=[])


def _worker(vendor: Vendor) -> httpx.Client:
    return make_client("https://psa.test", transport=httpx.MockTransport(vendor), source="cw")


def test_a_429_pauses_every_other_request_of_the_source(sleeps: list[float]) -> None:
    """The poller's 429 (Retry-After 12 s) stops the note writer of the same source from
    calling the vendor: it gets RateLimited with the time left instead."""
    # Given two workers of one source sharing its budget
    clock = FakeTime()
    budget = MemoryBudget(600, 60, clock=clock, source="cw")
    vendor = Vendor(limited=1, retry_after="12")
    poller, writer = _worker(vendor), _worker(vendor)

    # When the poller is told to wait 12 s
    with pytest.raises(RateLimited) as first:
        send(poller, "GET", "/tickets", source="cw", budget=budget)
    clock.now += 1
    # Then the writer's request 1 s later (11 s left: beyond the 10 s inline bound)
    # never leaves the hub
    with pytest.raises(RateLimited) as second:
        send(writer, "POST", "/tickets/1/notes", source="cw", budget=budget, json={})

    assert first.value.retry_after == 12
    assert second.value.retry_after == pytest.approx(11)
    assert vendor.paths == ["/tickets"]
    assert budget.paused_for() == pytest.approx(11)
    assert sleeps == []


def test_a_short_pause_is_waited_out_inline(sleeps: list[float]) -> None:
    """A pause within the inline bound is slept through (once), then the request goes."""
    # Given a source paused for 3 s by another worker's 429
    clock = FakeTime()
    budget = MemoryBudget(600, 60, clock=clock, source="cw")
    vendor = Vendor(limited=1, retry_after="3")
    with pytest.raises(RateLimited):
        send(_worker(vendor), "GET", "/a", source="cw", budget=budget,
             policy=RetryPolicy(max_attempts=1))

    # When a second worker sends
    response = send(_worker(vendor), "GET", "/b", source="cw", budget=budget)

    # Then it waited the 3 s, then reached the vendor once
    assert response.status_code == 200
    assert sleeps == [pytest.approx(3)]
    assert vendor.paths == ["/a", "/b"]


def test_a_pause_is_never_shortened_and_ends_by_itself() -> None:
    """A shorter Retry-After does not cut a longer pause; the clock ends it."""
    clock = FakeTime()
    budget = MemoryBudget(10, 60, clock=clock)

    assert budget.pause(20) is True
    assert budget.pause(5) is False
    clock.now += 19
    assert budget.paused_for() == pytest.approx(1)
    clock.now += 1.5

    assert budget.paused_for() == 0.0
    assert budget.remaining() == 10  # a pause spends no budget


def test_pausing_is_logged_once_per_pause() -> None:
    """The first 429 logs ``source_paused``; requests refused during the pause do not."""
    clock = FakeTime()
    budget = MemoryBudget(600, 60, clock=clock, source="cw")
    vendor = Vendor(limited=1, retry_after="30")

    with capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(RateLimited):
                send(_worker(vendor), "GET", "/t", source="cw", budget=budget)

    paused = [e for e in logs if e["event"] == "source_paused"]
    assert len(paused) == 1 and paused[0]["seconds"] == 30 and paused[0]["source"] == "cw"
    assert paused[0]["log_level"] == "warning"


def test_a_429_without_retry_after_does_not_pause() -> None:
    """Without Retry-After only this request backs off; the source stays open."""
    budget = MemoryBudget(600, 60)
    vendor = Vendor(limited=1, retry_after="")

    send(_worker(vendor), "GET", "/t", budget=budget, policy=RetryPolicy(sleep=lambda s: None))

    assert budget.paused_for() == 0.0
    assert vendor.paths == ["/t", "/t"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the flushed test database."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.redis
def test_the_pause_is_shared_in_redis_by_every_worker(redis_client: redis.Redis) -> None:
    """Two worker processes' budgets for one source share the pause; others are free."""
    # Given two workers' budgets for cw-prod and one for another source
    worker_a = make_budget("cw-prod", 600, redis_client=redis_client, namespace="t")
    worker_b = make_budget("cw-prod", 600, redis_client=redis_client, namespace="t")
    other = make_budget("halo", 600, redis_client=redis_client, namespace="t")
    vendor = Vendor(limited=1, retry_after="20")

    # When worker A gets a 429 with Retry-After 20
    with pytest.raises(RateLimited):
        send(_worker(vendor), "GET", "/tickets", source="cw-prod", budget=worker_a)
    # Then worker B is refused without a request, and the other source is not paused
    with pytest.raises(RateLimited) as refused:
        send(_worker(vendor), "GET", "/agreements", source="cw-prod", budget=worker_b)

    assert isinstance(worker_b, RedisBudget) and worker_b.pause_key == "t:pause:cw-prod"
    assert 15 < (refused.value.retry_after or 0) <= 20
    assert 15 < worker_b.paused_for() <= 20
    assert other.paused_for() == 0.0
    assert vendor.paths == ["/tickets"]
    assert 15_000 < int(redis_client.pttl("t:pause:cw-prod")) <= 20_000


@pytest.mark.redis
def test_a_redis_pause_is_never_shortened(redis_client: redis.Redis) -> None:
    """A shorter Retry-After from another worker keeps the longer pause."""
    budget = RedisBudget(redis_client, "t:budget:cw", 10, 60)

    assert budget.pause(30) is True
    assert budget.pause(2) is False

    assert 25 < budget.paused_for() <= 30
    assert budget.remaining() == 10


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A running ConnectWise sandbox."""
    with SandboxServer() as server:
        yield server


def test_connectwise_poll_429_holds_back_the_note_writer(sandbox: SandboxServer) -> None:
    """ConnectWise finding: the poller's 429 (Retry-After 20 s) used to leave the note
    writer of the same source calling the PSA; now the PSA sees no request until the
    pause ends, and the writer reschedules with the time left."""
    # Given a ConnectWise source with a ticket, and the PSA asking for 20 s of silence
    company = sandbox.sandbox.create_company("Acme Ltd")
    ticket = sandbox.sandbox.create_ticket("Leaver: J. Doe", company_id=company["id"])
    connector = build_connector("connectwise", "cw-sbx", sandbox.connector_config())
    assert isinstance(connector, ConnectWiseConnector)
    sandbox.fail_next(1, status=429, retry_after=20)
    with pytest.raises(RateLimited):
        list(connector.poll("tickets", None))
    seen = sandbox.sandbox.request_count()

    # When the writer posts a note on the same source
    with pytest.raises(RateLimited) as info:
        connector.post_note(SubjectRef(type="ticket", id=str(ticket["id"])), "hello", key="k1")

    # Then the PSA received nothing more
    assert sandbox.sandbox.request_count() == seen
    assert 15 < (info.value.retry_after or 0) <= 20
    assert sandbox.sandbox.notes(ticket["id"]) == []
    connector.close()


def test_the_pause_is_a_metrics_gauge_per_source() -> None:
    """/metrics exposes ``msphub_connector_paused_seconds`` for every source."""
    # Given two sources, one paused for 45 s
    clock = FakeTime()
    paused_budget = MemoryBudget(600, 60, clock=clock)
    paused_budget.pause(45)
    spec = SourceSpec(vendor="connectwise")
    sources = Sources({
        name: Source(name, spec, cast(Any, object()), budget)
        for name, budget in (("cw-a", paused_budget), ("cw-b", MemoryBudget(600, 60)))})

    # When the gauges are collected
    families = {f.name: f for f in SourceGauges(sources).collect()}

    # Then each source has its seconds paused
    samples = {s.labels["source"]: s.value
               for s in families["msphub_connector_paused_seconds"].samples}
    assert samples == {"cw-a": 45.0, "cw-b": 0.0}

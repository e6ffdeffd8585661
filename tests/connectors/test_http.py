"""Shared HTTP layer: status classification, one-request retries, request budgets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from connectors.base import (
    AuthFailed,
    ConnectorError,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.http import (
    MemoryBudget,
    RedisBudget,
    RetryPolicy,
    classify,
    make_budget,
    make_client,
    parse_retry_after,
    send,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _response(status: int, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://vendor.test/api/items?token=secret")
    return httpx.Response(status, headers=headers, request=request)


class Script:
    """A transport answering from a list of responses/exceptions, recording requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _client(script: Script) -> httpx.Client:
    return make_client(
        "https://vendor.test/api", transport=httpx.MockTransport(script), source="s1"
    )


# -- classify -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, None),
        (201, None),
        (204, None),
        (304, None),
        (400, PermanentError),
        (401, AuthFailed),
        (403, AuthFailed),
        (404, NotFound),
        (405, PermanentError),
        (408, TransientError),
        (409, PermanentError),
        (422, PermanentError),
        (429, RateLimited),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
    ],
)
def test_classify_status_table(status: int, error: type[ConnectorError] | None) -> None:
    """Each status maps to the error the caller should act on (exact type)."""
    result = classify(_response(status), source="s1")

    if error is None:
        assert result is None
    else:
        assert type(result) is error
        assert result is not None and result.status == status and result.source == "s1"


def test_classify_message_is_short_and_has_no_query_or_body() -> None:
    """Messages name method, path and the vendor's error code; never tokens or bodies."""
    request = httpx.Request("GET", "https://vendor.test/api/items?token=secret")
    response = httpx.Response(
        400,
        json={"code": "InvalidObject", "message": "summary is required for Alex Example"},
        request=request,
        headers={"x-request-id": "req-7"},
    )

    error = classify(response)

    assert str(error) == "HTTP 400 from GET /api/items (InvalidObject)"
    assert error is not None and error.request_id == "req-7"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC), usegmt=True), 90.0),
        (format_datetime(datetime(2024, 5, 1, 11, 0, tzinfo=UTC), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_seconds_or_http_date(header: str, seconds: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP-date (past dates mean now)."""
    assert parse_retry_after(header, now=NOW) == seconds


def test_429_retry_after_date_uses_the_server_clock() -> None:
    """An HTTP-date is measured against the response's Date header, not our clock."""
    response = _response(
        429,
        **{
            "Retry-After": "Wed, 01 May 2024 12:00:45 GMT",
            "Date": "Wed, 01 May 2024 12:00:00 GMT",
        },
    )

    error = classify(response)

    assert isinstance(error, RateLimited) and error.retry_after == 45.0


# -- send / retries -----------------------------------------------------------------------


def test_transient_errors_are_retried_until_success(sleeps: list[float]) -> None:
    """503 then 200: one retry with an exponential-jitter wait."""
    script = Script(httpx.Response(503), httpx.Response(200, json={"ok": True}))

    response = send(_client(script), "GET", "/items", source="s1")

    assert response.json() == {"ok": True}
    assert len(script.requests) == 2
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.625


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_permanent_errors_are_not_retried(sleeps: list[float], status: int) -> None:
    """Anything but TransientError fails on the first attempt."""
    script = Script(httpx.Response(status))

    with pytest.raises(PermanentError):
        send(_client(script), "GET", "/items")

    assert len(script.requests) == 1 and sleeps == []


def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    """429 with Retry-After: 3 waits exactly 3 seconds before the retry."""
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200))

    send(_client(script), "GET", "/items")

    assert sleeps == [3.0]


def test_retry_after_beyond_the_inline_budget_ends_the_loop(sleeps: list[float]) -> None:
    """A long wait is not slept: RateLimited goes to the caller with retry_after."""
    script = Script(httpx.Response(429, headers={"Retry-After": "60"}))

    with pytest.raises(RateLimited) as info:
        send(_client(script), "GET", "/items", policy=RetryPolicy(max_inline_wait=10))

    assert info.value.retry_after == 60 and sleeps == []


def test_attempts_are_bounded(sleeps: list[float]) -> None:
    """After max_attempts transient failures the last error is raised."""
    script = Script(*[httpx.Response(502) for _ in range(3)])

    with pytest.raises(TransientError) as info:
        send(_client(script), "GET", "/items", policy=RetryPolicy(max_attempts=3))

    assert info.value.status == 502
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_total_wait_is_bounded(sleeps: list[float]) -> None:
    """Waits stop once their sum would pass max_total_wait."""
    script = Script(*[httpx.Response(429, headers={"Retry-After": "4"}) for _ in range(5)])

    with pytest.raises(RateLimited):
        send(
            _client(script), "GET", "/items", policy=RetryPolicy(max_attempts=10, max_total_wait=10)
        )

    assert sleeps == [4.0, 4.0]


def test_injected_sleep_replaces_the_module_sleep() -> None:
    """A policy's own sleep is used (no monkeypatching needed)."""
    waits: list[float] = []
    script = Script(httpx.Response(503), httpx.Response(200))

    send(_client(script), "GET", "/items", policy=RetryPolicy(sleep=waits.append))

    assert len(waits) == 1


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("bad"),
    ],
)
def test_transport_failures_become_transient_and_are_chained(
    sleeps: list[float], exc: Exception
) -> None:
    """No httpx exception escapes; the original is the cause."""
    script = Script(*[exc] * 4)

    with pytest.raises(TransientError) as info:
        send(_client(script), "GET", "/items")

    assert info.value.__cause__ is exc
    assert len(script.requests) == 4


def test_unusable_url_is_permanent() -> None:
    """An unsupported scheme is a configuration problem, not worth retrying."""
    client = make_client("ftp://vendor.test/")

    with pytest.raises(PermanentError):
        send(client, "GET", "/items")


@pytest.mark.parametrize(
    ("answer", "retried", "maybe_applied"),
    [
        (httpx.ConnectError("refused"), True, False),
        (httpx.Response(429, headers={"Retry-After": "1"}), True, False),
        (httpx.ReadTimeout("lost"), False, True),
        (httpx.Response(500), False, True),
    ],
)
def test_posts_are_retried_only_when_never_applied(
    sleeps: list[float], answer: httpx.Response | Exception, retried: bool, maybe_applied: bool
) -> None:
    """A POST that may have reached the server is raised with maybe_applied instead."""
    script = Script(answer, httpx.Response(201))

    if retried:
        send(_client(script), "POST", "/notes", json={"text": "x"})
        assert len(script.requests) == 2
    else:
        with pytest.raises(TransientError) as info:
            send(_client(script), "POST", "/notes", json={"text": "x"})
        assert info.value.maybe_applied is maybe_applied
        assert len(script.requests) == 1


def test_each_attempt_takes_from_the_budget(sleeps: list[float]) -> None:
    """Retries spend budget too, so a retry storm cannot exceed the vendor limit."""
    budget = MemoryBudget(10, 60)
    script = Script(httpx.Response(503), httpx.Response(200))

    send(_client(script), "GET", "/items", budget=budget)

    assert budget.remaining() == 8


def test_request_log_has_method_path_status_duration_only() -> None:
    """The event hook logs no headers, query strings or bodies."""
    script = Script(httpx.Response(200, json={"secret": "body"}))
    client = make_client(
        "https://vendor.test/api",
        headers={"Authorization": "Bearer topsecret"},
        transport=httpx.MockTransport(script),
        source="s1",
    )

    with capture_logs() as logs:
        client.get("/items", params={"token": "secret"})

    (entry,) = logs
    assert set(entry) == {"event", "log_level", "source", "method", "path", "status", "duration_ms"}
    assert entry["path"] == "/api/items" and entry["status"] == 200
    assert "secret" not in repr(logs)


# -- budgets ------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_memory_budget_blocks_briefly_then_refuses() -> None:
    """Within max_wait it sleeps until a slot frees; beyond it raises RateLimited."""
    t = FakeTime()
    budget = MemoryBudget(2, 10, max_wait=5, clock=t.clock, sleep=t.sleep)

    budget.acquire()
    t.now += 6
    budget.acquire()
    budget.acquire()  # the first stamp expires 4 s later: wait 4 s
    with pytest.raises(RateLimited) as info:
        budget.acquire()  # next slot frees 10 s after the second stamp: 6 s > 5

    assert t.slept == [4.0]
    assert info.value.retry_after == pytest.approx(6.0)
    assert budget.remaining() == 0


def test_memory_budget_window_slides() -> None:
    """Old requests leave the window and free their slots."""
    t = FakeTime()
    budget = MemoryBudget(3, 60, clock=t.clock, sleep=t.sleep)

    budget.acquire(cost=3)
    assert budget.remaining() == 0
    t.now += 61

    assert budget.remaining() == 3


def test_memory_budget_is_thread_safe() -> None:
    """Many threads never get more than the limit granted."""
    budget = MemoryBudget(50, 60, max_wait=0)
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            try:
                budget.acquire()
            except RateLimited:
                continue
            with lock:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(granted) == 50


@pytest.mark.parametrize("cost", [0, 11])
def test_budget_cost_must_fit_the_limit(cost: int) -> None:
    """A cost that can never be granted is a programming error."""
    with pytest.raises(ValueError):
        MemoryBudget(10, 60).acquire(cost)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the flushed test database (skips locally / fails in CI if absent)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.redis
def test_redis_budget_is_shared_by_every_worker(redis_client: redis.Redis) -> None:
    """Two budget objects (two workers) on one key share one limit."""
    worker_a = RedisBudget(redis_client, "msphub:budget:cw", 3, 60, max_wait=0)
    worker_b = RedisBudget(redis_client, "msphub:budget:cw", 3, 60, max_wait=0)

    worker_a.acquire()
    worker_b.acquire(cost=2)
    with pytest.raises(RateLimited) as info:
        worker_a.acquire()

    assert 0 < (info.value.retry_after or 0) <= 60
    assert worker_b.remaining() == 0
    assert RedisBudget(redis_client, "msphub:budget:other", 3, 60).remaining() == 3


@pytest.mark.redis
def test_redis_budget_is_atomic_under_concurrency(redis_client: redis.Redis) -> None:
    """Eight threads racing for 25 slots get exactly 25."""
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        budget = RedisBudget(redis_client, "msphub:budget:race", 25, 60, max_wait=0)
        for _ in range(10):
            try:
                budget.acquire()
            except RateLimited:
                continue
            with lock:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(granted) == 25


@pytest.mark.redis
def test_redis_budget_waits_when_the_wait_is_short(redis_client: redis.Redis) -> None:
    """Within max_wait it sleeps (injected) and then gets the slot."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # time passes: the window empties
        waits.append(seconds)
        redis_client.delete("msphub:budget:wait")

    budget = RedisBudget(redis_client, "msphub:budget:wait", 1, 0.5, max_wait=1, sleep=sleep)

    budget.acquire()
    budget.acquire()

    assert len(waits) == 1 and 0 < waits[0] <= 0.5


@pytest.mark.redis
def test_redis_budget_window_slides(redis_client: redis.Redis) -> None:
    """Stamps older than the window (by the Redis clock) no longer count."""
    seconds, micros = redis_client.time()
    old = seconds * 1000 + micros // 1000 - 61_000
    redis_client.zadd("msphub:budget:slide", {"a": old, "b": old})
    budget = RedisBudget(redis_client, "msphub:budget:slide", 2, 60, max_wait=0)

    budget.acquire(cost=2)

    assert budget.remaining() == 0


def test_redis_unavailable_is_a_transient_error() -> None:
    """A Redis outage is not a redis exception leaking out of the connector."""
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    budget = RedisBudget(client, "k", 5, 60)

    with pytest.raises(TransientError):
        budget.acquire()


def test_make_budget_picks_the_backend() -> None:
    """Redis when a client is given (keyed by source), memory otherwise."""
    client = redis.Redis(host="127.0.0.1", port=1)

    shared = make_budget("cw-prod", 600, redis_client=client)
    local = make_budget("cw-prod", 600)

    assert isinstance(shared, RedisBudget) and shared.key == "msphub:budget:cw-prod"
    assert isinstance(local, MemoryBudget) and local.limit == 600

"""Autotask's limits as one gate: the hourly request threshold, 3 concurrent requests per
endpoint, and slowing down as ThresholdInformation reports the database's use rising.

* :class:`AutotaskBudget` wraps the hub's budget (per-minute window and the source-wide
  Retry-After pause, shared by every worker) and adds an hourly window (our share of the
  tenant's 10,000 requests per hour) and the :class:`ThresholdGovernor`'s delay.
* :class:`EndpointLimiter` caps requests in flight per endpoint (``Tickets``,
  ``Contracts`` …): threading semaphores in one process, or a Redis lease set shared by
  every worker (:class:`RedisEndpointLimiter`). :class:`ThrottledTransport` holds a slot
  for exactly the time one HTTP exchange is in flight.

The hourly window and the endpoint leases live in Redis whenever the hub's budget does.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httpx
import redis
import structlog

from connectors.base import RateLimited, RequestBudget
from connectors.budget import MemoryBudget, RedisBudget

log = structlog.get_logger()

HOUR = 3600.0


@dataclass(frozen=True)
class ThresholdReading:
    """One ThresholdInformation answer: requests used in the current rolling window."""

    threshold: int
    used: int
    timeframe_minutes: int = 60

    @property
    def fraction(self) -> float:
        return self.used / self.threshold if self.threshold > 0 else 0.0


class ThresholdGovernor:
    """Turns the database's reported use into a delay before each request.

    Below ``slow_above`` of the threshold: no delay. Between ``slow_above`` and
    ``stop_above``: a delay growing linearly up to ``max_delay`` seconds (Autotask itself
    adds latency above 50 %, so we slow first). At ``stop_above``: ``RateLimited`` until
    the next reading. Between readings our own requests are added to the last reading,
    so the estimate rises as we spend.
    """

    def __init__(self, *, slow_above: float, stop_above: float, max_delay: float,
                 check_interval: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, source: str | None = None
                 ) -> None:
        self.slow_above = slow_above
        self.stop_above = stop_above
        self.max_delay = max_delay
        self.check_interval = check_interval
        self.source = source
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._reading: ThresholdReading | None = None
        self._read_at = -float("inf")
        self._spent_since = 0
        self._local = threading.local()
        self.delays: list[float] = []  # every delay applied (bounded; for tests and stats)

    @contextlib.contextmanager
    def exempt(self) -> Iterator[None]:
        """Requests of this thread inside the block are not delayed or refused (the
        ThresholdInformation read itself: it must get through to lift a stop)."""
        self._local.exempt = True
        try:
            yield
        finally:
            self._local.exempt = False

    def due(self) -> bool:
        """True when a new ThresholdInformation reading should be taken."""
        with self._lock:
            return self._clock() - self._read_at >= self.check_interval

    def claim_read(self) -> bool:
        """Take the right to read now (one reader per interval in this process)."""
        with self._lock:
            if self._clock() - self._read_at < self.check_interval:
                return False
            self._read_at = self._clock()
            return True

    def record(self, reading: ThresholdReading) -> None:
        """Store a fresh reading (our spending since the last one is now inside it)."""
        with self._lock:
            previous = self._reading
            self._reading, self._spent_since = reading, 0
            self._read_at = self._clock()
        if previous is None or _band(previous.fraction, self) != _band(reading.fraction, self):
            log.info("autotask_threshold", source=self.source, used=reading.used,
                     threshold=reading.threshold, fraction=round(reading.fraction, 3))

    def estimate(self) -> float:
        """The database's use as a fraction of its threshold, our spending included."""
        with self._lock:
            if self._reading is None:
                return 0.0
            return (self._reading.used + self._spent_since) / max(1, self._reading.threshold)

    def delay_for(self, fraction: float) -> float:
        """Seconds to wait before one request at ``fraction`` of the threshold."""
        if fraction < self.slow_above:
            return 0.0
        span = self.stop_above - self.slow_above
        return round(self.max_delay * min(1.0, (fraction - self.slow_above) / span), 3)

    def before_request(self) -> None:
        """Wait as the current estimate says; raise ``RateLimited`` near the threshold."""
        if getattr(self._local, "exempt", False):
            return
        fraction = self.estimate()
        if fraction >= self.stop_above:
            with self._lock:
                self._read_at = -float("inf")  # read again before the next attempt
            raise RateLimited("Autotask request threshold nearly reached",
                              retry_after=self.check_interval, source=self.source)
        delay = self.delay_for(fraction)
        with self._lock:
            self._spent_since += 1
            if delay and len(self.delays) < 10_000:
                self.delays.append(delay)
        if delay:
            self._sleep(delay)


def _band(fraction: float, governor: ThresholdGovernor) -> int:
    return 0 if fraction < governor.slow_above else 1 if fraction < governor.stop_above else 2


class AutotaskBudget:
    """The ``RequestBudget`` every Autotask request passes: the hub's budget (window and
    pause), then the hourly window, then the governor's delay."""

    def __init__(self, inner: RequestBudget, hourly: RequestBudget,
                 governor: ThresholdGovernor) -> None:
        self.inner = inner
        self.hourly = hourly
        self.governor = governor

    def acquire(self, cost: int = 1) -> None:
        """Take ``cost`` from both windows, then wait out the governor's delay."""
        self.inner.acquire(cost)
        self.hourly.acquire(cost)
        self.governor.before_request()

    def remaining(self) -> int | None:
        """The smaller of what both windows have left."""
        left = [r for r in (self.inner.remaining(), self.hourly.remaining()) if r is not None]
        return min(left) if left else None

    def pause(self, seconds: float) -> bool:
        """Pause the whole source (delegated to the hub's shared budget)."""
        return self.inner.pause(seconds)

    def paused_for(self) -> float:
        """Seconds left of the source's pause."""
        return self.inner.paused_for()


def redis_of(budget: RequestBudget | None) -> redis.Redis | None:
    """The Redis client behind the hub's budget, when it is Redis-backed.

    The hub hands connectors a budget, not a Redis client; the hourly window and the
    endpoint leases must be shared exactly like that budget, so they use its client.
    """
    if not isinstance(budget, RedisBudget):
        return None
    script = getattr(budget, "_script", None)
    client = getattr(script, "registered_client", None)
    return client if isinstance(client, redis.Redis) else None


def hourly_budget(source: str, per_hour: int, inner: RequestBudget | None, *,
                  sleep: Callable[[float], None] = time.sleep) -> RequestBudget:
    """Our hourly window: in Redis beside the hub's budget when it is there."""
    client = redis_of(inner)
    if client is not None and isinstance(inner, RedisBudget):
        return RedisBudget(client, f"{inner.key}:hour", per_hour, HOUR, max_wait=5.0,
                           sleep=sleep, source=source, pause_key=inner.pause_key)
    return MemoryBudget(per_hour, HOUR, max_wait=5.0, sleep=sleep, source=source)


class EndpointLimiter(Protocol):
    """At most ``limit`` requests in flight per endpoint."""

    limit: int

    def acquire(self, endpoint: str, timeout: float) -> str | None:
        """A lease token, or None when no slot freed up within ``timeout`` seconds."""

    def release(self, endpoint: str, token: str) -> None:
        """Give a slot back."""


class MemoryEndpointLimiter:
    """Per-process semaphores, one per endpoint; records the most seen in flight."""

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def _semaphore(self, endpoint: str) -> threading.BoundedSemaphore:
        with self._lock:
            return self._slots.setdefault(endpoint, threading.BoundedSemaphore(self.limit))

    def acquire(self, endpoint: str, timeout: float) -> str | None:
        """Wait up to ``timeout`` for a slot."""
        if not self._semaphore(endpoint).acquire(timeout=timeout):
            return None
        with self._lock:
            now = self._in_flight.get(endpoint, 0) + 1
            self._in_flight[endpoint] = now
            self.peak[endpoint] = max(now, self.peak.get(endpoint, 0))
        return endpoint

    def release(self, endpoint: str, token: str) -> None:
        """Free the slot."""
        with self._lock:
            self._in_flight[endpoint] = self._in_flight.get(endpoint, 1) - 1
        self._semaphore(endpoint).release()


# KEYS[1] = zset of leases (score = expiry ms); ARGV = limit, lease ms, token.
# Expired leases (a crashed worker's) are dropped first. Returns 1 when taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""


class RedisEndpointLimiter:
    """Endpoint slots shared by every worker: a Redis sorted set of expiring leases."""

    def __init__(self, client: redis.Redis, prefix: str, limit: int = 3, *,
                 lease_seconds: float = 120.0, poll: float = 0.02) -> None:
        self.limit = limit
        self.prefix = prefix
        self.lease_ms = max(1000, int(lease_seconds * 1000))
        self.poll = poll
        self._client = client
        self._take = client.register_script(_TAKE)

    def _key(self, endpoint: str) -> str:
        return f"{self.prefix}:{endpoint}"

    def acquire(self, endpoint: str, timeout: float) -> str | None:
        """Poll for a slot until ``timeout`` (short sleeps; slots free in milliseconds)."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        while True:
            try:
                taken = int(cast(Any, self._take(keys=[self._key(endpoint)],
                                                 args=[self.limit, self.lease_ms, token])))
            except redis.RedisError:
                return None
            if taken:
                return token
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll)

    def release(self, endpoint: str, token: str) -> None:
        """Drop our lease (a lost release expires with the lease)."""
        try:
            self._client.zrem(self._key(endpoint), token)
        except redis.RedisError:
            log.warning("autotask_slot_release_failed", endpoint=endpoint)


def endpoint_of(path: str) -> str:
    """The object endpoint of an API path (``/…/V1.0/Tickets/5/Notes`` → ``Tickets``).

    Child collections share their parent's slots: the safe reading of "per endpoint".
    """
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if part.lower() == "v1.0" and i + 1 < len(parts):
            return parts[i + 1].lower()
    return parts[-1].lower() if parts else ""


THREAD_LIMIT_CODES = ("itgenatr005", "thread threshold", "concurrent requests")
PERMISSION_TEXT = "does not have the adequate permissions"


class ThrottledTransport(httpx.BaseTransport):
    """Holds an endpoint slot while one request is in flight, and translates two Autotask
    quirks into plain HTTP: a thread-limit refusal (``Itgenatr005``, with any status)
    becomes 429 without Retry-After (nothing was applied: safe to retry), and a 500 saying
    the resource lacks permissions becomes 403."""

    def __init__(self, inner: httpx.BaseTransport, limiter: EndpointLimiter, *,
                 wait: float = 30.0) -> None:
        self.inner = inner
        self.limiter = limiter
        self.wait = wait

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_of(request.url.path)
        token = self.limiter.acquire(endpoint, self.wait)
        if token is None:
            raise httpx.PoolTimeout(f"no free slot for endpoint {endpoint}", request=request)
        try:
            response = self.inner.handle_request(request)
            # the body too is read inside the slot: Autotask counts the request until then
            response.read()
            if response.status_code >= 400:
                response = _translate(response, request)
            return response
        finally:
            self.limiter.release(endpoint, token)

    def close(self) -> None:
        self.inner.close()


def _translate(response: httpx.Response, request: httpx.Request) -> httpx.Response:
    text = response.content[:4000].decode("utf-8", "replace").lower()
    status: int | None = None
    if any(code in text for code in THREAD_LIMIT_CODES):
        status = 429
    elif response.status_code == 500 and PERMISSION_TEXT in text:
        status = 403
    if status is None:
        return response
    headers = [(k, v) for k, v in response.headers.items() if k.lower() != "retry-after"]
    return httpx.Response(status, headers=headers, content=response.content, request=request)

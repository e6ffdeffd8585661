"""Request budgets: sliding-window request limits and vendor pauses per connector instance.

``MemoryBudget`` is per process (no Redis configured); ``RedisBudget`` is shared by every
worker on every machine and is atomic (one Lua script per acquire, using the Redis clock).
Both block for at most ``max_wait`` seconds and otherwise raise ``RateLimited`` so the
actor can reschedule instead of holding a worker.

A budget also carries the source's *pause*: when the vendor answers 429 with
``Retry-After``, ``send`` calls ``pause(seconds)``, and before each request ``send`` reads
``paused_for()`` and waits the pause out within its inline bound or raises ``RateLimited``
with the seconds left. ``acquire`` itself only counts requests, so every pause wait goes
through the retry policy's (patchable) sleep.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import redis

from connectors.base import RateLimited, RequestBudget, TransientError

__all__ = ["MemoryBudget", "RedisBudget", "RequestBudget", "make_budget"]


class MemoryBudget:
    """Sliding-window budget kept in this process (thread-safe)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        max_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        source: str | None = None,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit must be >= 1 and window_seconds > 0")
        self.limit = limit
        self.window = window_seconds
        self.max_wait = max_wait
        self.source = source
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _try(self, cost: int) -> float:
        """Take ``cost`` slots now and return 0, or return the seconds until they free up."""
        now = self._clock()
        with self._lock:
            while self._stamps and self._stamps[0] <= now - self.window:
                self._stamps.popleft()
            if len(self._stamps) + cost <= self.limit:
                self._stamps.extend([now] * cost)
                return 0.0
            blocking = self._stamps[len(self._stamps) + cost - self.limit - 1]
            return max(blocking + self.window - now, 1e-3)

    def acquire(self, cost: int = 1) -> None:
        """Take ``cost`` requests, waiting up to ``max_wait`` seconds in total."""
        _check_cost(cost, self.limit)
        _wait_loop(lambda: self._try(cost), self.max_wait, self._sleep, self.source)

    def remaining(self) -> int | None:
        """Requests still available in the current window."""
        now = self._clock()
        with self._lock:
            used = sum(1 for s in self._stamps if s > now - self.window)
        return self.limit - used

    def pause(self, seconds: float) -> bool:
        """Hold every request of this source for ``seconds``; a longer pause is kept.

        Returns:
            True when this call started or extended the pause.
        """
        until = self._clock() + max(0.0, seconds)
        with self._lock:
            if until <= self._paused_until:
                return False
            self._paused_until = until
            return True

    def paused_for(self) -> float:
        """Seconds left of the vendor's pause (0.0 when requests may go)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())


# KEYS[1] = zset of request stamps, KEYS[2] = the pause key (its TTL is the pause);
# ARGV = limit, window_ms, cost, unique member prefix.
# Returns {granted(0|1), wait_ms, remaining, pause_ms}. Uses the Redis clock so all
# workers agree; cost 0 only reads.
_ACQUIRE = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local paused = redis.call('PTTL', KEYS[2])
if paused < 0 then paused = 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if cost == 0 then
  return {1, 0, limit - used, paused}
end
if used + cost <= limit then
  for i = 1, cost do
    redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0, limit - used - cost, paused}
end
local idx = used + cost - limit - 1
local oldest = redis.call('ZRANGE', KEYS[1], idx, idx, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1 then wait = 1 end
return {0, wait, limit - used, paused}
"""

# KEYS[1] = the pause key; ARGV[1] = pause in ms. Extends, never shortens; returns 1 when
# this call started or extended the pause.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ms then
  return 0
end
redis.call('SET', KEYS[1], '1', 'PX', ms)
return 1
"""


class RedisBudget:
    """Sliding-window budget in Redis, shared by every worker of one connector instance.

    The vendor's pause lives in ``pause_key`` (default ``<key>:pause``) as a key whose TTL
    is the time left, so it ends by itself on the Redis clock.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        limit: int,
        window_seconds: float,
        *,
        max_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        source: str | None = None,
        pause_key: str | None = None,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("limit must be >= 1 and window_seconds > 0")
        self.key = key
        self.pause_key = pause_key or f"{key}:pause"
        self.limit = limit
        self.window_ms = max(1, int(window_seconds * 1000))
        self.max_wait = max_wait
        self.source = source
        self._sleep = sleep
        self._script = redis_client.register_script(_ACQUIRE)
        self._pause = redis_client.register_script(_PAUSE)

    def _call(self, cost: int) -> tuple[bool, float, int, float]:
        args: list[int | str] = [self.limit, self.window_ms, cost, uuid.uuid4().hex]
        try:
            raw = cast(list[Any], self._script(keys=[self.key, self.pause_key], args=args))
        except redis.RedisError as exc:
            raise TransientError("request budget unavailable", source=self.source) from exc
        return bool(int(raw[0])), int(raw[1]) / 1000.0, int(raw[2]), int(raw[3]) / 1000.0

    def _try(self, cost: int) -> float:
        granted, wait, _, _ = self._call(cost)
        return 0.0 if granted else wait

    def acquire(self, cost: int = 1) -> None:
        """Take ``cost`` requests, waiting up to ``max_wait`` seconds in total."""
        _check_cost(cost, self.limit)
        _wait_loop(lambda: self._try(cost), self.max_wait, self._sleep, self.source)

    def remaining(self) -> int | None:
        """Requests still available in the current window (read-only)."""
        return self._call(0)[2]

    def pause(self, seconds: float) -> bool:
        """Hold every request of this source, in every worker, for ``seconds``.

        Returns:
            True when this call started or extended the pause.
        """
        ms = max(1, int(seconds * 1000))
        try:
            return bool(int(cast(Any, self._pause(keys=[self.pause_key], args=[ms]))))
        except redis.RedisError as exc:
            raise TransientError("request budget unavailable", source=self.source) from exc

    def paused_for(self) -> float:
        """Seconds left of the vendor's pause (0.0 when requests may go; read-only)."""
        return self._call(0)[3]


def _wait_loop(
    attempt: Callable[[], float],
    max_wait: float,
    sleep: Callable[[float], None],
    source: str | None,
) -> None:
    """Call ``attempt`` until it grants, sleeping its waits up to ``max_wait`` in total."""
    waited = 0.0
    while True:
        wait = attempt()
        if wait == 0.0:
            return
        if waited + wait > max_wait:
            raise RateLimited("request budget spent", retry_after=wait, source=source)
        sleep(wait)
        waited += wait


def _check_cost(cost: int, limit: int) -> None:
    if cost < 1 or cost > limit:
        raise ValueError(f"cost must be between 1 and the limit ({limit})")


def make_budget(
    source: str,
    per_minute: int,
    *,
    redis_client: redis.Redis | None = None,
    max_wait: float = 5.0,
    namespace: str = "msphub",
) -> RequestBudget:
    """The budget for one connector instance: Redis-backed when a client is given."""
    if redis_client is not None:
        return RedisBudget(
            redis_client,
            f"{namespace}:budget:{source}",
            per_minute,
            60,
            max_wait=max_wait,
            source=source,
            pause_key=f"{namespace}:pause:{source}",
        )
    return MemoryBudget(per_minute, 60, max_wait=max_wait, source=source)

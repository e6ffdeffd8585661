"""Fault switches of a vendor sandbox: forced failures, slow responses, lost and repeated
webhooks, plus request counting. Thread-safe; shared by the HTTP gate and the dispatcher."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Failure:
    """A forced error answer: ``status`` (+ ``Retry-After``); ``after_apply`` means the
    write was applied first and only its answer is replaced (the ambiguous failure)."""

    status: int
    retry_after: int | None = None
    after_apply: bool = False


@dataclass(frozen=True)
class GateAction:
    """What the gate does with one API request."""

    delay_ms: int
    failure: Failure | None


class FaultSwitches:
    """The switches a test, a demo or the ``/_sandbox`` control API flips."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """No forced failures, no delay, every webhook delivered once."""
        with self._lock:
            self._fail: tuple[int, Failure] = (0, Failure(429))
            self._fail_writes: tuple[int, Failure] = (0, Failure(500, after_apply=True))
            self._delay_ms = 0
            self._drop_next = 0
            self._drop_probability = 0.0
            self._duplicate_next = 0
            self.dropped = 0
            self.duplicated = 0

    # -- HTTP -----------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` before doing anything."""
        with self._lock:
            self._fail = (count, Failure(status, retry_after))

    def fail_next_writes_after_apply(self, count: int, *, status: int = 500) -> None:
        """Apply the next ``count`` writes (POST/PUT/PATCH/DELETE), then answer ``status``
        instead of their result: the caller cannot tell whether the write happened."""
        with self._lock:
            self._fail_writes = (count, Failure(status, after_apply=True))

    def set_delay(self, ms: int) -> None:
        """Delay every API response by ``ms`` milliseconds."""
        with self._lock:
            self._delay_ms = ms

    def next_action(self, method: str = "GET") -> GateAction:
        """The delay and forced failure for one API request (consumes one failure)."""
        with self._lock:
            count, failure = self._fail
            if count > 0:
                self._fail = (count - 1, failure)
                return GateAction(self._delay_ms, failure)
            count, failure = self._fail_writes
            if count > 0 and method.upper() in WRITE_METHODS:
                self._fail_writes = (count - 1, failure)
                return GateAction(self._delay_ms, failure)
            return GateAction(self._delay_ms, None)

    def record_request(self, method: str, path: str) -> None:
        """Count one API request."""
        with self._lock:
            self._requests[f"{method} {path}"] += 1

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """How many API requests matched ``method`` and/or ``path`` (exact)."""
        with self._lock:
            return sum(
                n
                for key, n in self._requests.items()
                if (method is None or key.split(" ", 1)[0] == method)
                and (path is None or key.split(" ", 1)[1] == path)
            )

    # -- webhooks -------------------------------------------------------------------------

    def drop_webhooks(self, *, next: int = 0, probability: float = 0.0) -> None:
        """Drop the next ``next`` webhooks, then each one with ``probability``."""
        with self._lock:
            self._drop_next, self._drop_probability = next, probability

    def duplicate_webhooks(self, next: int) -> None:
        """Deliver each of the next ``next`` webhooks twice (vendors retry and repeat)."""
        with self._lock:
            self._duplicate_next = next

    def copies(self) -> int:
        """How many times to deliver the next webhook: 0 (dropped), 1, or 2 (duplicated)."""
        with self._lock:
            if self._drop_next > 0:
                self._drop_next -= 1
                self.dropped += 1
                return 0
            if self._drop_probability and self._rng.random() < self._drop_probability:
                self.dropped += 1
                return 0
            if self._duplicate_next > 0:
                self._duplicate_next -= 1
                self.duplicated += 1
                return 2
            return 1

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and the control API."""
        with self._lock:
            return {"requests": sum(self._requests.values()), "dropped": self.dropped,
                    "duplicated": self.duplicated}

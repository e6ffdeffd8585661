"""Background delivery of webhooks from a sandbox to registered URLs, with the drop and
duplicate switches applied."""

from __future__ import annotations

import queue
import threading
from collections import deque
from urllib.parse import urlsplit

import httpx

from connectors.sandbox.faults import FaultSwitches

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

Delivery = tuple[str, bytes, dict[str, str]]


class WebhookDispatcher:
    """A queue drained by a few worker threads that POST webhook bodies.

    Non-blocking for the code that changes records. Only loopback URLs are called unless
    ``loopback_only`` is False (a sandbox never reaches out to the network by default).
    ``send`` applies the ``faults`` drop/duplicate switches; ``submit`` queues as is.
    """

    def __init__(self, *, workers: int = 2, loopback_only: bool = True, timeout: float = 5.0,
                 faults: FaultSwitches | None = None, name: str = "sandbox-webhooks"):
        self.workers = workers
        self.loopback_only = loopback_only
        self.timeout = timeout
        self.faults = faults or FaultSwitches()
        self.name = name
        self.deliveries: deque[tuple[str, int | str]] = deque(maxlen=10_000)
        self.counts = {"queued": 0, "delivered": 0, "failed": 0, "refused": 0}
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        if self._threads:
            return
        for i in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True, name=f"{self.name}-{i}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers after the queue drains."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """Queue a webhook as the switches say (0, 1 or 2 copies); returns copies queued."""
        copies = self.faults.copies()
        return sum(1 for _ in range(copies) if self.submit(url, body, headers))

    def submit(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        """Queue one delivery; False when the URL is refused (not loopback)."""
        host = (urlsplit(url).hostname or "").lower()
        with self._idle:
            if self.loopback_only and host not in _LOOPBACK:
                self.counts["refused"] += 1
                return False
            self._pending += 1
            self.counts["queued"] += 1
        self._queue.put((url, body, headers))
        return True

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued webhook was attempted; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                url, body, headers = item
                outcome: int | str
                try:
                    outcome = client.post(url, content=body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                ok = isinstance(outcome, int) and outcome < 300
                with self._idle:
                    self.deliveries.append((urlsplit(url).path, outcome))
                    self.counts["delivered" if ok else "failed"] += 1
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

"""The runtime one process runs on: services, live rules, sources, broker and dispatch."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq.rate_limits import ConcurrentRateLimiter

from connectors.base import Enricher, is_thin
from hub.config.live_rules import RuleHolder
from hub.config.schedules import ScheduleEntry
from hub.core.events import Event
from hub.core.mapping.engine import RuleSet
from hub.errors import ConfigError
from hub.runtime.broker import Dispatch
from hub.services.context import HubContext
from hub.services.scheduled_launches import check as check_schedules
from hub.services.sources import Sources

log = structlog.get_logger()


@dataclass
class Runtime:
    """What the actors, the scheduler, the API and the CLI of one process share.

    Built only by :func:`hub.runtime.root.build_runtime`; passed down from there.
    """

    ctx: HubContext
    rules: RuleHolder
    sources: Sources
    broker: dramatiq.Broker
    dispatch: Dispatch
    limiter_backend: Any  # dramatiq rate-limiter backend: Redis, or in-memory
    namespace: str = "msphub"
    schedules: list[ScheduleEntry] = field(default_factory=list)
    _last_check: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enrich(self, event: Event) -> list[Event]:
        """The full record(s) behind a thin webhook event (vendor I/O); others as they are."""
        src = self.sources.get(event.source)
        if src is None or not isinstance(src.connector, Enricher) or not is_thin(event):
            return [event]
        return src.connector.enrich(event)

    def live_rules(self) -> RuleSet:
        """The current rules, reloading changed files at most once a second."""
        now = time.monotonic()
        if now - self._last_check > 1.0:
            with self._lock:
                if now - self._last_check > 1.0:
                    self._last_check = now
                    self.rules.maybe_reload()
        return self.rules.rules

    def current_schedules(self) -> list[ScheduleEntry]:
        """config/schedules.yaml as it is now; a broken edit keeps the last good list."""
        try:
            self.schedules = check_schedules(self.ctx)
        except ConfigError as exc:
            log.error("schedules_invalid", file=exc.file, line=exc.line, reason=exc.message)
        return self.schedules

    def poll_lock(self, source: str, stream: str) -> ConcurrentRateLimiter:
        """A limit-1 lock so polls of one (source, stream) never overlap, across workers."""
        return ConcurrentRateLimiter(  # type: ignore[no-untyped-call]
            self.limiter_backend, f"{self.namespace}:poll:{source}:{stream}",
            limit=1, ttl=15 * 60 * 1000)

    def stop(self) -> None:
        """Close connectors and the database pool."""
        self.sources.close()
        self.ctx.engine.dispose()

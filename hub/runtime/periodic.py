"""Periodic jobs (sent by the scheduler, run by workers) and the scheduler loop itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import structlog

from hub.runtime.process import Runtime
from hub.services import inbox, writeback
from hub.services.checks import Gate, run_checks
from hub.services.notification_delivery import deliver_due
from hub.services.overdue import find_overdue_steps
from hub.services.scheduled_launches import launch_due

log = structlog.get_logger()

# job name → how often the scheduler sends it
JOBS: dict[str, float] = {"requeue": 60.0, "overdue": 60.0, "digests": 300.0,
                          "schedules": 60.0, "checks": 60.0, "notifications": 15.0}
STALE_EVENT = timedelta(minutes=5)
STALE_NOTE = timedelta(minutes=5)


def requeue_unfinished(rt: Runtime, *, events_older_than: timedelta = STALE_EVENT,
                       notes_older_than: timedelta = STALE_NOTE) -> tuple[int, int]:
    """Send again inbox events and outbox notes left pending (a crash, a lost message).

    Processing and delivery are idempotent, so a duplicate message has no second effect.
    """
    with rt.ctx.sessions() as session:
        events = inbox.unfinished(session, older_than=rt.ctx.clock() - events_older_than)
    notes = writeback.unfinished(rt.ctx, older_than=notes_older_than)
    rt.dispatch.events(events)
    rt.dispatch.notes(notes)
    if events or notes:
        log.info("requeued_unfinished", events=len(events), notes=len(notes))
    return len(events), len(notes)


def listing_gate(rt: Runtime) -> Gate:
    """One device listing per (source, client) per the source's poll interval, shared by
    every worker (the rate-limiter backend: Redis, or in-memory without it)."""
    def gate(source: str, client: str) -> bool:
        src = rt.sources.get(source)
        every = src.poll_interval().total_seconds() if src is not None else 300.0
        key = f"{rt.namespace}:checks:{source}:{client}"
        return bool(rt.limiter_backend.add(key, 1, int(max(every, 1.0) * 1000)))

    return gate


def run(rt: Runtime, job: str) -> None:
    """Run one periodic job by name."""
    if job == "requeue":
        requeue_unfinished(rt)
    elif job == "overdue":
        find_overdue_steps(rt.ctx)  # its notes are dispatched when it commits
    elif job == "digests":
        writeback.flush_digests(rt.ctx)
    elif job == "schedules":
        launch_due(rt.ctx, rt.current_schedules())
    elif job == "notifications":
        deliver_due(rt.ctx)  # email, Teams, Slack: each retried with backoff, then dead
    elif job == "checks":
        run_checks(rt.ctx, rt.sources, gate=listing_gate(rt))  # notes go out on commit
    else:
        log.warning("unknown_periodic_job", job=job)


class Scheduler:
    """Sends periodic-job and poll messages on time; does no work itself.

    One scheduler per deployment (``msphub scheduler``, or a thread inside
    ``msphub serve`` in embedded mode).
    """

    def __init__(self, rt: Runtime, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rt = rt
        self.clock = clock
        self._next: dict[str, float] = {}

    def tick(self) -> list[str]:
        """Send whatever is due now; returns what was sent (for tests and logs)."""
        now = self.clock()
        sent: list[str] = []
        for job, every in JOBS.items():
            if self._next.get(job, 0.0) <= now:
                self.rt.dispatch.job(job)
                self._next[job] = now + every
                sent.append(job)
        for src in self.rt.sources:
            if not src.spec.poll.enabled or "poller" not in {
                    str(c) for c in src.connector.manifest.capabilities}:
                continue
            every = src.poll_interval().total_seconds()
            for stream in src.streams():
                key = f"poll:{src.name}:{stream}"
                if self._next.get(key, 0.0) <= now:
                    self.rt.dispatch.poll(src.name, stream)
                    self._next[key] = now + every
                    sent.append(key)
        return sent

    def run_forever(self, stop: threading.Event, *, resolution: float = 1.0) -> None:
        """Tick until ``stop`` is set; a failing tick is logged and the loop goes on."""
        log.info("scheduler_started")
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the outer edge: keep scheduling whatever one tick did
                log.exception("scheduler_tick_failed")
            stop.wait(resolution)
        log.info("scheduler_stopped")

"""Embedded mode: the workers and the scheduler as threads inside one process (no Redis)."""

from __future__ import annotations

import threading
from datetime import timedelta

import dramatiq
import structlog

from hub.runtime.periodic import Scheduler, requeue_unfinished
from hub.runtime.process import Runtime

log = structlog.get_logger()


class EmbeddedWorkers:
    """A dramatiq worker on the runtime's broker plus the scheduler loop, in this process."""

    def __init__(self, rt: Runtime, *, threads: int) -> None:
        self.rt = rt
        self.worker = dramatiq.Worker(rt.broker, worker_threads=threads, worker_timeout=100)
        self.scheduler = Scheduler(rt)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start consuming, pick up what a previous run left unfinished, start scheduling."""
        self.worker.start()
        requeue_unfinished(self.rt, events_older_than=timedelta(0),
                           notes_older_than=timedelta(0))
        self._thread = threading.Thread(target=self.scheduler.run_forever, args=(self._stop,),
                                        name="msphub-scheduler", daemon=True)
        self._thread.start()
        log.info("embedded_workers_started", threads=self.worker.worker_threads)

    def stop(self) -> None:
        """Stop scheduling, then let the worker finish what it is doing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.worker.stop(timeout=10_000)

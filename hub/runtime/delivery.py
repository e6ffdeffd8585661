"""Handing new outbox notes to delivery: at once in the worker whose commit wrote them, or
as messages to the workers.

A worker that has just committed a batch posts its notes itself (one hop fewer than a
message per note); what fails transiently goes to the queue, whose retries honour
backoff and the vendor's Retry-After. Either way the outbox row is the idempotent
fallback: a note handed over twice is posted once (lease and marker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

from connectors.base import AuthFailed, ConnectorError, PermanentError
from hub.runtime.broker import DELIVER_NOTE
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.deadletters import mark_dead

log = structlog.get_logger()

Send = Callable[[list[int]], None]
Queue = Callable[..., None]  # Dispatch.notes: (note ids, *, delay in ms)
RETRY_MS = 1000  # a note that failed transiently is queued again after this (or Retry-After)
_collected: ContextVar[list[int] | None] = ContextVar("msphub_new_notes", default=None)


@contextmanager
def collecting() -> Iterator[list[int]]:
    """Within this block, notes committed in this thread are collected, not queued."""
    ids: list[int] = []
    token = _collected.set(ids)
    try:
        yield ids
    finally:
        _collected.reset(token)


def handoff(queue: Send) -> Send:
    """The after-commit hand-over: to the collector of :func:`collecting`, else ``queue``."""
    def send(note_ids: list[int]) -> None:
        collector = _collected.get()
        if collector is not None:
            collector.extend(note_ids)
        else:
            queue(note_ids)
    return send


def deliver_now(rt: Runtime, note_ids: list[int], *, fallback: Queue | None) -> None:
    """One delivery attempt for these notes, now, together (three statements in all).

    Args:
        fallback: where a note goes after a transient failure (the queue); None leaves it
            pending for the hub's requeue sweep (a CLI command in embedded mode).
    """
    for note_id, outcome in writeback.deliver_many(rt.ctx, rt.sources, note_ids).items():
        if not isinstance(outcome, ConnectorError) or isinstance(outcome, AuthFailed):
            continue  # delivered, or waiting for keys that work (the note stays pending)
        if isinstance(outcome, PermanentError):
            mark_dead(rt.ctx, DELIVER_NOTE, note_id, f"{type(outcome).__name__}: {outcome}")
        elif fallback is not None:
            wait = getattr(outcome, "retry_after", None)
            fallback([note_id], delay=int(wait * 1000) if wait else RETRY_MS)
        else:
            log.warning("note_delivery_deferred", note_id=note_id, reason=str(outcome))

"""dramatiq actors: thin, idempotent, taking ids; each calls one service function."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq import broker as _broker
from dramatiq.brokers.stub import StubBroker

from connectors.base import Enricher, PermanentError, RateLimited, is_thin
from hub import writeback
from hub.errors import MappingError
from hub.events import Event
from hub.pipeline import process_event
from hub.runtime import Runtime

log = structlog.get_logger()

# Actors bind to the global broker when declared; never let dramatiq invent a Redis one.
# Runtime.start() re-binds them to the process's real broker.
if _broker.global_broker is None:
    dramatiq.set_broker(StubBroker())

# Inline waits longer than this become a rescheduled message instead of a sleeping worker.
MAX_INLINE_WAIT = 5.0


@dramatiq.actor(queue_name="events", max_retries=10, min_backoff=500, max_backoff=300_000,
                throws=(PermanentError, MappingError))
def process_inbox_item(event_id: int) -> None:
    """Apply the mapping rules to one inbox event, then dispatch its notes."""
    rt = Runtime.current()

    def enrich(event: Event) -> list[Event]:
        src = rt.sources.get(event.source)
        if src is None or not isinstance(src.connector, Enricher) or not is_thin(event):
            return [event]
        return src.connector.enrich(event)

    try:
        result = process_event(rt.ctx, rt.live_rules(), event_id, enrich=enrich)
    except RateLimited as exc:
        raise dramatiq.Retry(delay=int((exc.retry_after or 30) * 1000)) from exc
    for extra_id in result.extra_events:
        process_inbox_item.send(extra_id)
    # result.notes were dispatched by the context's after-commit hook


@dramatiq.actor(queue_name="outbox", max_retries=20, min_backoff=1000, max_backoff=600_000,
                throws=(PermanentError,))
def deliver_outbox_item(note_id: int) -> None:
    """Post one pending note to its PSA ticket; safe to run twice."""
    rt = Runtime.current()
    try:
        writeback.deliver(rt.ctx, rt.sources, note_id)
    except RateLimited as exc:
        # Vendor asked us to wait: reschedule instead of holding a worker thread.
        raise dramatiq.Retry(delay=int((exc.retry_after or 30) * 1000)) from exc


@dramatiq.actor(queue_name="polls", max_retries=3, min_backoff=5000,
                throws=(PermanentError,))
def poll_source(source: str, stream: str) -> None:
    """Fetch new pages of one stream and queue the new events."""
    from hub.polling import poll_once

    rt = Runtime.current()
    new_ids: list[int] = []
    with rt.poll_lock(source, stream).acquire(raise_on_failure=False) as acquired:
        if not acquired:
            log.info("poll_skipped_running", source=source, stream=stream)
            return
        try:
            new_ids = poll_once(rt.ctx, rt.sources, source, stream)
        except RateLimited as exc:
            raise dramatiq.Retry(delay=int((exc.retry_after or 30) * 1000)) from exc
    for event_id in new_ids:
        process_inbox_item.send(event_id)


@dramatiq.actor(queue_name="periodic", max_retries=0)
def run_periodic(job: str) -> None:
    """Run one periodic job by name (the scheduler only sends these messages)."""
    from hub import periodic

    periodic.run(Runtime.current(), job)


ACTORS: tuple[Any, ...] = (process_inbox_item, deliver_outbox_item, poll_source, run_periodic)


def bind(broker: dramatiq.Broker) -> None:
    """Declare every actor on ``broker`` (the process's Redis or stub broker)."""
    for actor in ACTORS:
        actor.broker = broker
        broker.declare_actor(actor)


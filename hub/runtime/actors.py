"""dramatiq actors: thin, idempotent, taking ids; each calls one service function.

:func:`declare_actors` declares them on the process's broker around its :class:`Runtime`,
so every actor works on the services its entry point built (no module-level state).
"""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog

from connectors.base import AuthFailed, PermanentError, RateLimited
from hub.errors import MappingError
from hub.runtime import periodic
from hub.runtime.broker import DELIVER_NOTE, POLL_SOURCE, PROCESS_EVENT, RUN_PERIODIC
from hub.runtime.delivery import collecting, deliver_now
from hub.runtime.process import Runtime
from hub.services import writeback
from hub.services.pipeline import process_batch, process_event
from hub.services.polling import poll_once

log = structlog.get_logger()

# an event whose predecessor (same ticket) another worker holds is tried again after this
DEFER_MS = 500


def _retry_later(exc: RateLimited) -> dramatiq.Retry:
    """The vendor asked us to wait: reschedule instead of holding a worker thread."""
    return dramatiq.Retry(delay=int((exc.retry_after or 30) * 1000))


def declare_actors(broker: dramatiq.Broker,
                   hub: Runtime) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every actor on ``broker``, working on ``hub``; returns them by name."""

    def process_inbox_item(event_id: int, alone: bool = False) -> None:
        """Process this inbox event in a batch with other pending ones (``alone``: only
        this one, so a failure is its own: retried, then a dead letter); then post the
        notes the batch wrote."""
        try:
            with collecting() as notes:
                if alone:
                    result = process_event(hub.ctx, hub.live_rules(), event_id,
                                           enrich=hub.enrich)
                    extra, broken, deferred = result.extra_events, [], []
                else:
                    batch = process_batch(hub.ctx, hub.live_rules(), [event_id],
                                          enrich=hub.enrich)
                    extra, broken, deferred = batch.extra_events, batch.broken, batch.deferred
        except RateLimited as exc:
            raise _retry_later(exc) from exc
        hub.dispatch.events(extra)
        for one in broken:
            hub.dispatch.event_alone(one)
        hub.dispatch.events(deferred, delay=DEFER_MS)
        deliver_now(hub, notes, fallback=hub.dispatch.notes)

    def deliver_outbox_item(note_id: int) -> None:
        """Post one pending note to its PSA ticket; safe to run twice."""
        try:
            writeback.deliver(hub.ctx, hub.sources, note_id)
        except RateLimited as exc:
            raise _retry_later(exc) from exc
        except AuthFailed:
            return  # logged once by source health; the note waits, pending, for new keys

    def poll_source(source: str, stream: str) -> None:
        """Fetch new pages of one stream and queue the new events."""
        with hub.poll_lock(source, stream).acquire(raise_on_failure=False) as acquired:
            if not acquired:
                log.info("poll_skipped_running", source=source, stream=stream)
                return
            try:
                new_ids = poll_once(hub.ctx, hub.sources, source, stream)
            except RateLimited as exc:
                raise _retry_later(exc) from exc
            except AuthFailed:
                return  # logged once by source health; polls hold until the keys change
        hub.dispatch.events(new_ids)

    def run_periodic(job: str) -> None:
        """Run one periodic job by name (the scheduler only sends these messages)."""
        periodic.run(hub, job)

    declared: list[dramatiq.Actor[Any, Any]] = [
        dramatiq.actor(actor_name=PROCESS_EVENT, broker=broker, queue_name="events",
                       max_retries=10, min_backoff=500, max_backoff=300_000,
                       throws=(PermanentError, MappingError))(process_inbox_item),
        dramatiq.actor(actor_name=DELIVER_NOTE, broker=broker, queue_name="outbox",
                       max_retries=20, min_backoff=1000, max_backoff=600_000,
                       throws=(PermanentError,))(deliver_outbox_item),
        dramatiq.actor(actor_name=POLL_SOURCE, broker=broker, queue_name="polls",
                       max_retries=3, min_backoff=5000, throws=(PermanentError,))(poll_source),
        dramatiq.actor(actor_name=RUN_PERIODIC, broker=broker, queue_name="periodic",
                       max_retries=0)(run_periodic),
    ]
    return {a.actor_name: a for a in declared}

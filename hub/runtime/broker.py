"""The dramatiq broker (Redis, or in-process), its logging middleware and the message dispatch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from connectors.base import TransientError
from hub.logging import bind_context

log = structlog.get_logger()

# Where dramatiq logs "Failed to process message ... with unhandled exception." (ERROR,
# with a traceback) for every exception an actor raises.
DRAMATIQ_WORKER_LOGGER = "dramatiq.worker.WorkerThread"

# Actor names: messages are sent by name, so senders need the broker, not the actors.
PROCESS_EVENT = "process_inbox_item"
DELIVER_NOTE = "deliver_outbox_item"
POLL_SOURCE = "poll_source"
RUN_PERIODIC = "run_periodic"

OnDead = Callable[[str, int, str], None]  # (actor name, item id, error) after the last try


def is_expected_retry(exc: BaseException | None) -> bool:
    """A condition the hub retries on its own (vendor 5xx or 429, a note in flight on
    another worker, a rescheduled job): worth a warning, never a page."""
    return isinstance(exc, TransientError | dramatiq.Retry)


class ExpectedRetryFilter(logging.Filter):
    """Drops dramatiq's ERROR traceback for expected, retried conditions; the
    ``ContextMiddleware`` logs those once at warning with the next attempt instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not is_expected_retry(exc)


def install_retry_filter() -> None:
    """Put one ``ExpectedRetryFilter`` on dramatiq's worker logger (idempotent)."""
    worker_log = logging.getLogger(DRAMATIQ_WORKER_LOGGER)
    if not any(isinstance(f, ExpectedRetryFilter) for f in worker_log.filters):
        worker_log.addFilter(ExpectedRetryFilter())


class ContextMiddleware(Middleware):
    """Binds ``message_id``, the actor and its first argument to the log context, and
    reports a message whose last attempt failed to ``on_dead``.

    An expected, retried condition (``is_expected_retry``) is logged here once, at
    warning, with the reason and when the next attempt runs (``job_retry_scheduled``);
    when the last attempt of one fails it is an error (``job_gave_up``), since a human
    has to look.
    """

    def __init__(self, on_dead: OnDead | None = None) -> None:
        self.on_dead = on_dead
        self._local = threading.local()

    def before_process_message(self, broker: Any, message: Any) -> None:
        cm = bind_context(message_id=message.message_id, actor=message.actor_name,
                          item_id=message.args[0] if message.args else None)
        cm.__enter__()
        self._local.cm = cm
        self._local.message_id = message.message_id
        self._local.retry_delay = None

    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        """Remember the delay Retries picked when it re-enqueues the message in hand."""
        if delay is not None and message.message_id == getattr(self._local, "message_id", None):
            self._local.retry_delay = delay

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if is_expected_retry(exception):
            self._log_retry(message, exception)
        cm = getattr(self._local, "cm", None)
        if cm is not None:
            cm.__exit__(None, None, None)
            self._local.cm = None
        self._local.message_id = None
        if (exception is not None and message.failed and self.on_dead is not None
                and message.args and isinstance(message.args[0], int)):
            self.on_dead(message.actor_name, message.args[0],
                         f"{type(exception).__name__}: {exception}")

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self.after_process_message(broker, message)

    def _log_retry(self, message: Any, exception: BaseException | None) -> None:
        cause = exception.__cause__ if isinstance(exception, dramatiq.Retry) else None
        shown = cause or exception
        reason = f"{type(shown).__name__}: {shown}"
        attempt = int(message.options.get("retries", 0))
        if message.failed:
            log.error("job_gave_up", reason=reason, attempts=attempt)
            return
        delay = getattr(self._local, "retry_delay", None)
        log.warning("job_retry_scheduled", reason=reason, next_attempt=attempt + 1,
                    next_attempt_in_s=None if delay is None else round(delay / 1000, 3))


def make_broker(redis_url: str | None, namespace: str = "msphub", *,
                on_dead: OnDead | None = None) -> dramatiq.Broker:
    """A Redis broker when configured, else an in-process stub broker."""
    broker: dramatiq.Broker
    if redis_url:
        broker = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    # after_* hooks run in reverse order: placed before Retries, ours runs after it and
    # sees ``message.failed`` once the last attempt has been given up.
    broker.add_middleware(ContextMiddleware(on_dead), before=Retries)
    install_retry_filter()
    return broker


class Dispatch:
    """Sends work to the actors declared on one broker (by actor name)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def _send(self, actor: str, *args: Any, delay: int | None = None) -> None:
        self.broker.get_actor(actor).send_with_options(args=args, delay=delay)

    def event(self, event_id: int) -> None:
        """Queue one inbox event for processing."""
        self._send(PROCESS_EVENT, event_id)

    def events(self, event_ids: list[int], *, delay: int | None = None) -> None:
        """Queue inbox events for processing (each message processes a batch)."""
        for event_id in event_ids:
            self._send(PROCESS_EVENT, event_id, delay=delay)

    def event_alone(self, event_id: int) -> None:
        """Queue one event to be processed on its own (it broke inside a batch)."""
        self._send(PROCESS_EVENT, event_id, True)

    def notes(self, note_ids: list[int], *, delay: int | None = None) -> None:
        """Queue outbox notes for delivery (``delay`` in ms)."""
        for note_id in note_ids:
            self._send(DELIVER_NOTE, note_id, delay=delay)

    def poll(self, source: str, stream: str) -> None:
        """Queue one poll of one stream."""
        self._send(POLL_SOURCE, source, stream)

    def job(self, name: str) -> None:
        """Queue one periodic job."""
        self._send(RUN_PERIODIC, name)

"""Receiving webhooks: authenticate, parse, store in the inbox; nothing acts before that."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from connectors.base import (
    ConnectorError,
    MalformedPayload,
    TransientError,
    WebhookReceiver,
    WebhookRejected,
    WebhookRequest,
)
from hub.services.context import HubContext
from hub.services.inbox import UnstorableEvent, add_events, check_storable
from hub.services.sources import Sources
from hub.store.db import transaction

log = structlog.get_logger()

# what a parser may raise on input it did not anticipate (pydantic's ValidationError is a
# ValueError); answered 400 rather than 500
_PARSER_BUGS = (ValueError, TypeError, LookupError, ArithmeticError, RecursionError,
                UnicodeError)


class WebhookError(Exception):
    """A webhook was refused; ``status`` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Received:
    """What happened to one delivery: new inbox ids, and how many were already stored."""

    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    ignored: bool = False

    @property
    def status(self) -> int:
        """202 when something new was accepted, else 200 (a redelivery, or nothing to do)."""
        return 202 if self.new_ids else 200


def receive(ctx: HubContext, sources: Sources, source: str, *, headers: Mapping[str, str],
            body: bytes, query: Mapping[str, str], path_secret: str | None,
            max_body: int) -> Received:
    """Verify, parse and store one webhook delivery.

    Raises:
        WebhookError: 404 unknown source, 413 too large, 401 failed verification,
            400 malformed body — never a half-stored delivery.
    """
    src = sources.get(source)
    if src is None or not isinstance(src.connector, WebhookReceiver):
        raise WebhookError(404, f"no webhook source named '{source}'")
    if len(body) > max_body:
        raise WebhookError(413, f"body of {len(body)} bytes exceeds the limit of {max_body}")
    request = WebhookRequest(headers=headers, body=body, query=query, path_secret=path_secret)
    try:
        src.connector.verify(request)
        events = src.connector.parse(request)
    except MalformedPayload as exc:
        log.warning("webhook_malformed", source=source, reason=str(exc))
        raise WebhookError(exc.status or 400, f"malformed payload: {exc}") from exc
    except WebhookRejected as exc:
        log.warning("webhook_rejected", source=source, reason=str(exc))
        raise WebhookError(exc.status or 401, f"rejected: {exc}") from exc
    except TransientError as exc:
        # e.g. the vendor's signing-key endpoint is down: the sender should retry
        log.warning("webhook_verification_unavailable", source=source, reason=str(exc))
        raise WebhookError(503, f"cannot verify now, retry later: {exc}") from exc
    except ConnectorError as exc:
        log.warning("webhook_verification_failed", source=source, reason=str(exc))
        raise WebhookError(401, f"rejected: {exc}") from exc
    except _PARSER_BUGS as exc:
        # a connector that is not total yet: the body is still the sender's fault, never a
        # 500; one bounded line, no payload
        log.error("webhook_parser_crashed", source=source, error=type(exc).__name__,
                  reason=str(exc)[:200])
        raise WebhookError(400, f"malformed payload ({type(exc).__name__})") from exc
    if not events:
        return Received(ignored=True)
    try:
        for event in events:  # all or nothing: checked before the insert, alike on every db
            check_storable(event)
    except UnstorableEvent as exc:
        log.warning("webhook_unstorable", source=source, field=exc.field)
        raise WebhookError(400, f"malformed payload: {exc}") from exc
    with transaction(ctx.sessions) as session:
        new_ids = add_events(session, events, via="webhook", now=ctx.clock())
    return Received(new_ids=new_ids, duplicates=len(events) - len(new_ids))

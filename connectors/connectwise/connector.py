"""The ConnectWise PSA connector: polling, callbacks, enrichment and write-back.

Polling reads ``lastUpdated>[cursor - lookback]`` sorted by ``id asc``. Sorting by id
keeps page offsets stable while records change during the walk (a record edited
mid-walk keeps its place; sorting on lastUpdated would move it and shift a later record
off the page boundary). The price: the cursor is not monotonic across pages, so both
streams are declared unsorted and every page but the last carries the cursor the run
started from; only the last page advances it (capped at the run's start time).

Echo suppression (our notes, documents and status changes must not come back as work):
callbacks are registered with ``isSelfSuppressedFlag``; callbacks with ``Action=updated``
whose ``MemberId`` (or entity ``_info.updatedBy``) is our API member are dropped; polled
and enriched records last updated by our API member yield only ``*.created`` events.
``skipCallback`` is not used: it would hide our status changes from other integrations.
The API member is ``config.api_member``, else learned from our first posted note.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from urllib.parse import urlencode

import httpx
import structlog

from connectors.base import (
    Capability,
    Cursor,
    MalformedPayload,
    Manifest,
    NoteRef,
    NotFound,
    Page,
    PermanentError,
    RequestBudget,
    StreamSpec,
    WebhookRejected,
    WebhookRequest,
    is_thin,
)
from connectors.connectwise.client import ConnectWiseClient, Record
from connectors.connectwise.config import CLOUD_API_HOSTS, ConnectWiseConfig
from connectors.connectwise.events import (
    Callback,
    board_allowed,
    callback_events,
    format_time,
    is_echo,
    is_new_since,
    parse_callback,
    parse_time,
    record_events,
    updated_at,
    updated_by,
)
from connectors.connectwise.fields import FIELDS
from connectors.connectwise.signing import SigningKeys, key_url_allowed, signature_ok
from connectors.connectwise.writer import ConnectWiseWriter, NoteFlag
from connectors.http import DEFAULT_RETRY, MemoryBudget, RetryPolicy
from hub.core.events import Event, EventKind, SubjectRef

log = structlog.get_logger()

CURSOR_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STREAMS = {
    "tickets": ("/service/tickets", "ticket"),
    "agreements": ("/finance/agreements", "agreement"),
}
_RECORD_PATHS = {
    "ticket": "/service/tickets/{id}",
    "agreement": "/finance/agreements/{id}",
    "company": "/company/companies/{id}",
}
_CREATED = frozenset(
    {EventKind.TICKET_CREATED, EventKind.AGREEMENT_CREATED, EventKind.COMPANY_CREATED}
)


def _callback(request: WebhookRequest) -> Callback:
    """The delivery's parsed callback, parsed once for ``verify`` and ``parse`` both."""
    parsed = request.memo.get("callback")
    if not isinstance(parsed, Callback):
        parsed = request.memo["callback"] = parse_callback(request.body)
    return parsed


class ConnectWiseConnector:
    """ConnectWise PSA (formerly Manage), REST API 3.0."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor="connectwise",
        display_name="ConnectWise PSA",
        kind="psa",
        capabilities=frozenset(Capability),
        streams={
            "tickets": StreamSpec(
                sorted=False,
                kinds=frozenset(
                    {EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED, EventKind.TICKET_CLOSED}
                ),
                description="Service tickets changed since the cursor",
            ),
            "agreements": StreamSpec(
                sorted=False,
                kinds=frozenset({EventKind.AGREEMENT_CREATED, EventKind.AGREEMENT_UPDATED}),
                description="Agreements (contracts) changed since the cursor",
            ),
        },
        default_poll_interval=timedelta(minutes=5),
        config_model=ConnectWiseConfig,
        sandbox="connectors.connectwise.sandbox:SandboxServer",
        fields=FIELDS,
    )

    def __init__(
        self,
        name: str,
        config: ConnectWiseConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self.budget = budget or MemoryBudget(config.requests_per_minute, 60, source=name)
        self.client = ConnectWiseClient(
            config, source=name, transport=transport, budget=self.budget, retry=retry
        )
        self.writer = ConnectWiseWriter(self.client, config, name)
        self._keys = SigningKeys(self.client.fetch_signing_key)

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> ConnectWiseConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api_member(self) -> str | None:
        """Our API member's identifier (configured, else learned from our own notes)."""
        return self.config.api_member or self.writer.learned_member

    def ticket_url(self, ticket_id: str) -> str | None:
        """The service ticket in the PSA's web UI (the UI host, not the api-* host)."""
        if not ticket_id.isdigit():
            return None
        ui = {api: typed for typed, api in CLOUD_API_HOSTS.items()}
        scheme, _, host = self.config.site.partition("://")
        query = urlencode({"service_recid": ticket_id, "companyName": self.config.company_id})
        return (f"{scheme}://{ui.get(host, host)}/{self.config.codebase}services/system_io/"
                f"Service/fv_sr100_request.rsp?{query}")

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC).replace(microsecond=0)

    # -- Poller -------------------------------------------------------------------------

    def _position(self, cursor: Cursor | None) -> datetime | None:
        if cursor is None:
            return None
        if cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}", source=self.name)
        return parse_time(cursor.position, "cursor.position")

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of events changed since ``cursor`` (minus the lookback).

        Cursors follow the PSA's clock, never the hub's, and move only by timestamps the
        PSA returned: the first run (no cursor) starts at the newest ``lastUpdated`` the
        PSA holds (one newest-first row) minus ``backfill``; every page but the last
        carries the starting cursor, the last one the newest ``lastUpdated`` it read.
        (The hub's clock once capped it: with the PSA an hour behind, tickets whose
        callback was lost were never polled.) Records last changed by our API member are
        left out by the PSA (``_info/updatedBy``), so idle polling after a write-back burst
        stays at one short call per stream.
        """
        if stream not in _STREAMS:
            raise PermanentError(f"unknown stream {stream!r}", source=self.name)
        path, record_type = _STREAMS[stream]
        start = self._position(cursor)
        if start is None:
            start = self._vendor_now(path) - self.config.backfill
        since = start - self.config.poll_lookback
        conditions = f"lastUpdated>[{format_time(since)}]"
        if record_type == "ticket" and self.config.boards:
            names = ",".join(f'"{b}"' for b in self.config.boards)
            conditions = f"({conditions} and board/name in ({names}))"
        member = self.api_member
        if member and '"' not in member:
            conditions = f'{conditions} and _info/updatedBy != "{member}"'
        params = {"conditions": conditions, "orderBy": "id asc"}
        newest = start
        for rows, more in self.client.iter_pages(path, params, self.config.page_size):
            events: list[Event] = []
            for row in rows:
                # Entered inside the window → reported as created. Timestamps have whole
                # seconds, so re-reporting is the safe side: created keys are per record.
                events.extend(self._row_events(record_type, row, since))
                with contextlib.suppress(MalformedPayload):  # already logged by _row_events
                    newest = max(newest, updated_at(row))
            position = start if more else newest
            yield Page(events, Cursor(version=CURSOR_VERSION, position=format_time(position)))
        log.debug("poll_finished", source=self.name, stream=stream)

    def _vendor_now(self, path: str) -> datetime:
        """The PSA's "now" as its data tells it: the newest ``lastUpdated`` of the stream."""
        rows = self.client.get_list(path, {"orderBy": "_info/lastUpdated desc", "pageSize": 1})
        for row in rows:
            with contextlib.suppress(MalformedPayload):
                return updated_at(row)
        return EPOCH  # an empty PSA: everything that appears later is new

    def _row_events(self, record_type: str, row: Record, created_after: datetime) -> list[Event]:
        try:
            if record_type == "ticket" and not board_allowed(row, self.config.boards):
                return []
            events = record_events(
                self.name, record_type, row, is_new=is_new_since(row, created_after)
            )
        except MalformedPayload as exc:
            log.error("poll_record_skipped", source=self.name, id=row.get("id"), error=exc.message)
            return []
        if is_echo(updated_by(row), self.api_member):
            events = [e for e in events if e.kind in _CREATED]
        return events

    # -- WebhookReceiver ----------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check our per-instance secret, then ConnectWise's ``x-content-signature``.

        Raises:
            WebhookRejected: bad/missing secret or signature, or a key URL not allowed.
            MalformedPayload: the body cannot be parsed for ``Metadata.key_url``.
            ConnectorError: the signing key could not be fetched (transient → answer 503).
        """
        secret = self.config.webhook_secret
        if secret is None:
            raise WebhookRejected("webhooks are not configured for this source", source=self.name)
        presented = request.path_secret or request.query.get("token") or ""
        if not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            raise WebhookRejected("bad or missing callback secret", source=self.name)
        if not self.config.require_signature:
            return
        header = request.headers.get("x-content-signature")
        if not header:
            raise WebhookRejected("missing x-content-signature", source=self.name)
        key_url = _callback(request).key_url
        if not key_url:
            raise WebhookRejected("callback has no Metadata.key_url", source=self.name)
        if not key_url_allowed(key_url, self.config.origin):
            raise WebhookRejected("signing key URL is not allowed", source=self.name)
        if not signature_ok(request.body, header, self._keys.get(key_url)):
            raise WebhookRejected("bad x-content-signature", source=self.name)

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Events from a verified callback; echoes of our own writes yield none."""
        callback = _callback(request)
        entity_member = updated_by(callback.entity) if callback.entity is not None else None
        if callback.action == "updated" and (
            is_echo(callback.member_id, self.api_member) or is_echo(entity_member, self.api_member)
        ):
            log.debug("callback_echo_dropped", source=self.name, type=callback.type, id=callback.id)
            return []
        if (
            callback.type == "ticket"
            and callback.entity is not None
            and not board_allowed(callback.entity, self.config.boards)
        ):
            return []
        return callback_events(self.name, callback, received_at=self._now())

    # -- Enricher -----------------------------------------------------------------------

    def enrich(self, event: Event) -> list[Event]:
        """Fetch the record behind a thin callback event (one GET); other events pass through.

        Returns no events when the record is gone, filtered out, or our own echo.
        """
        if not is_thin(event) or event.subject is None:
            return [event]
        record_type = event.subject.type
        path = _RECORD_PATHS.get(record_type)
        if path is None:
            return []
        try:
            record = self.client.get(path.format(id=int(event.subject.id)))
        except NotFound:
            return []
        if not isinstance(record, dict):
            raise PermanentError(f"{record_type} response is not an object", source=self.name)
        if record_type == "ticket" and not board_allowed(record, self.config.boards):
            return []
        action = str(event.data.get("callback", {}).get("action", "updated"))
        events = record_events(self.name, record_type, record, is_new=action == "added")
        if is_echo(updated_by(record), self.api_member):
            events = [e for e in events if e.kind in _CREATED]
        return events

    # -- TicketWriter / WebhookRegistrar (see writer.py) ----------------------------------

    def post_note(
        self, ticket: SubjectRef, text: str, *, key: str, flag: NoteFlag | None = None
    ) -> NoteRef:
        """Post a note carrying ``key``'s marker; ``flag`` overrides ``config.note_flag``."""
        return self.writer.post_note(ticket, text, key=key, flag=flag)

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """The recent note carrying ``key``'s marker, if any."""
        return self.writer.find_note(ticket, key)

    def attach(
        self, ticket: SubjectRef, filename: str, content: bytes, *, title: str, key: str
    ) -> str:
        """Attach a document (idempotent by ``key``); returns the document id."""
        return self.writer.attach(ticket, filename, content, title=title, key=key)

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        """Set the ticket's status by name on its board."""
        self.writer.set_status(ticket, status_name)

    def register_webhooks(self, url: str) -> list[str]:
        """Register (reconcile) our callbacks for ``url``; returns callback ids."""
        return self.writer.register_webhooks(url)

    def remove_webhooks(self, url: str) -> int:
        """Remove our callbacks for ``url``; returns how many were removed."""
        return self.writer.remove_webhooks(url)

    def callback_url(self, url: str) -> str:
        """The URL actually registered for ``url`` (with ``?token=`` when needed)."""
        return self.writer.callback_url(url)

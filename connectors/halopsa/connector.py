"""The HaloPSA connector: polling, webhooks, enrichment and write-back.

Tickets are polled with ``lastupdatefromdate=[cursor - lookback]`` ordered by ``id``
ascending, in Halo's pages. Ordering by id keeps page offsets stable while tickets
change during the walk (no ``lastupdatetodate``: a ticket updated mid-walk would leave
the window and shift the next one off a page boundary), so the stream is unsorted: every
page but the last carries the starting cursor; the last one carries the newest
``last_update`` it read. Cursors follow Halo's clock, never the hub's: the first run
starts at the newest ``last_update`` Halo holds (one newest-first row) minus
``backfill``, so a hub clock ahead of or behind Halo's never skips a change.

``ClientContract`` has no date filter: every poll walks the contracts by id. A contract
with an id above the cursor's (or, on the first run, one modified inside the window that
starts at the newest ``last_modified`` Halo holds) is ``agreement.created``; an older one
modified inside the window is ``agreement.updated``.
The cursor position is ``<time>|<highest id>`` (fixed width, so it sorts).

Webhooks are hints: each names a ticket, which ``enrich`` reads back
(``GET /Tickets/{id}?includedetails=true``) before any rule runs. Deliveries about an
action of our own (its note carries a hub marker, or our API agent made it) are dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import structlog

from connectors.base import (
    Capability,
    Cursor,
    Linkable,
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
from connectors.halopsa.client import HaloPSAClient, Record, check_id
from connectors.halopsa.config import HaloPSAConfig
from connectors.halopsa.events import (
    CLIENT_TYPE,
    Names,
    Policy,
    contract_events,
    created_at,
    format_time,
    halo_time,
    is_echo,
    optional_time,
    parse_time,
    parse_webhook,
    team_allowed,
    ticket_events,
    updated_at,
    webhook_event,
)
from connectors.halopsa.fields import FIELDS
from connectors.halopsa.lookups import HaloLookups
from connectors.halopsa.writer import HaloPSAWriter
from connectors.http import DEFAULT_RETRY, MemoryBudget, RetryPolicy
from connectors.oauth import TokenStore
from hub.core.events import Event, EventKind, SubjectRef

log = structlog.get_logger()

CURSOR_VERSION = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_WIDTH = 12


class HaloPSAConnector:
    """HaloPSA (also HaloITSM and HaloServiceDesk), API v2."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor="halopsa",
        display_name="HaloPSA",
        kind="psa",
        capabilities=frozenset({Capability.POLLER, Capability.WEBHOOK_RECEIVER,
                                Capability.ENRICHER, Capability.TICKET_WRITER}),
        streams={
            "tickets": StreamSpec(
                sorted=False,
                kinds=frozenset({EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED,
                                 EventKind.TICKET_CLOSED}),
                description="Tickets changed since the cursor (lastupdatefromdate)",
            ),
            "contracts": StreamSpec(
                sorted=False,
                kinds=frozenset({EventKind.AGREEMENT_CREATED, EventKind.AGREEMENT_UPDATED}),
                description="Client contracts (ClientContract): new ones and changes",
            ),
        },
        default_poll_interval=timedelta(minutes=5),
        config_model=HaloPSAConfig,
        sandbox="connectors.halopsa.sandbox:SandboxServer",
        fields=FIELDS,
    )

    def __init__(
        self,
        name: str,
        config: HaloPSAConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], datetime] | None = None,
        token_store: TokenStore | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self.budget = budget or MemoryBudget(config.requests_per_minute, 60, source=name)
        self.client = HaloPSAClient(config, source=name, transport=transport,
                                    budget=self.budget, retry=retry, token_store=token_store)
        self.lookups = HaloLookups(self.client)
        self.writer = HaloPSAWriter(self.client, config, name, self.lookups)
        self.policy = Policy(closed_statuses=config.closed_statuses,
                             cancelled_statuses=config.contract_cancelled_statuses)

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> HaloPSAConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api_agent_id(self) -> int | None:
        """Our API agent (configured, else learned from our own actions)."""
        return self.config.api_agent_id or self.writer.learned_agent

    def ticket_url(self, ticket_id: str) -> str | None:
        """The ticket in Halo's agent web UI."""
        if not ticket_id.isascii() or not ticket_id.isdigit():
            return None
        return f"{self.config.url}/ticket?id={ticket_id}"

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    # -- Poller -------------------------------------------------------------------------

    def _position(self, cursor: Cursor | None) -> tuple[datetime | None, int]:
        if cursor is None:
            return None, 0
        if cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}",
                                 source=self.name)
        when, _, top = cursor.position.partition("|")
        if top and not (top.isascii() and top.isdigit()):
            raise PermanentError("cursor position is not <time>|<id>", source=self.name)
        return parse_time(when, "cursor.position"), int(top or 0)

    @staticmethod
    def _cursor(when: datetime, top: int | None = None) -> Cursor:
        position = format_time(when) if top is None else f"{format_time(when)}|{top:0{_ID_WIDTH}d}"
        return Cursor(version=CURSOR_VERSION, position=position)

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of events changed since ``cursor`` (minus the lookback).

        The first run (no cursor) starts at Halo's newest change minus ``backfill``.
        """
        if stream == "tickets":
            return self._poll_tickets(cursor)
        if stream == "contracts":
            return self._poll_contracts(cursor)
        raise PermanentError(f"unknown stream {stream!r}", source=self.name)

    def _names(self, rows: list[Record]) -> Names:
        return self.lookups.names(
            need_types=[r.get("tickettype_id") or 0 for r in rows],
            need_statuses=[r.get("status_id") or 0 for r in rows])

    def _vendor_now(self, path: str, key: str, field: str) -> datetime:
        """Halo's "now" as its data tells it: the newest ``field`` of the listing."""
        params = {"order": field, "orderdesc": "true", "pageinate": "true", "page_size": 1,
                  "page_no": 1}
        for row in self.client.get_list(path, key, params)[:1]:
            with contextlib.suppress(MalformedPayload):
                when = optional_time(row.get(field), field)
                if when is not None:
                    return when
        return EPOCH  # empty (or no timestamps): everything that appears later is new

    def _poll_tickets(self, cursor: Cursor | None) -> Iterator[Page]:
        start = self._position(cursor)[0]
        if start is None:
            start = self._vendor_now("/Tickets", "tickets", "last_update") - self.config.backfill
        since = start - self.config.poll_lookback
        params = {"lastupdatefromdate": halo_time(since), "order": "id", "orderdesc": "false"}
        newest = start
        for page in self.client.iter_pages("/Tickets", "tickets", params):
            names = self._names(page.items)
            events: list[Event] = []
            for row in page.items:
                events.extend(self._ticket_row(row, since, names))
                with contextlib.suppress(MalformedPayload):  # logged by _ticket_row
                    newest = max(newest, updated_at(row))
            yield Page(events, self._cursor(start if page.more else newest))
        log.debug("poll_finished", source=self.name, stream="tickets")

    def _ticket_row(self, row: Record, since: datetime, names: Names) -> list[Event]:
        try:
            if not team_allowed(row, self.config.teams):
                return []
            logged = created_at(row)
            is_new = logged is not None and logged > since
            rid = row.get("id")
            if is_new and "customfields" not in row and isinstance(rid, int) and rid > 0:
                row = self._ticket(rid) or row  # listings leave the custom fields out
            return ticket_events(self.name, row, is_new=is_new, names=names,
                                 policy=self.policy)
        except (MalformedPayload, NotFound) as exc:
            log.error("poll_record_skipped", source=self.name, id=row.get("id"),
                      error=exc.message)
            return []

    def _poll_contracts(self, cursor: Cursor | None) -> Iterator[Page]:
        run_start = self._now()
        start, top = self._position(cursor)
        first_run = start is None
        if start is None:
            start = self._vendor_now("/ClientContract", "contracts", "last_modified") \
                - self.config.backfill
        since = start - self.config.poll_lookback
        newest, highest = start, top
        params = {"order": "id", "orderdesc": "false", "includeinactive": "true"}
        for page in self.client.iter_pages("/ClientContract", "contracts", params):
            events: list[Event] = []
            for row in page.items:
                try:
                    rid = check_id(row.get("id"), "id")
                    when = optional_time(row.get("last_modified"), "last_modified")
                    in_window = when is not None and when >= since
                    is_new = rid > top if not first_run else in_window
                    changed = in_window or (when is None and not first_run)
                    events.extend(contract_events(self.name, row, is_new=is_new,
                                                  changed=changed, now=run_start,
                                                  policy=self.policy))
                except (MalformedPayload, PermanentError) as exc:
                    log.error("poll_record_skipped", source=self.name, id=row.get("id"),
                              error=exc.message)
                    continue
                highest = max(highest, rid)
                if when is not None:
                    newest = max(newest, when)
            if page.more:
                yield Page(events, self._cursor(start, top))
            else:
                yield Page(events, self._cursor(newest, highest))
        log.debug("poll_finished", source=self.name, stream="contracts")

    # -- WebhookReceiver ----------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check the webhook's Basic credentials or secret header, as configured.

        Raises:
            WebhookRejected: webhooks are not configured, or the credentials are wrong.
        """
        secret = self.config.webhook_secret
        if secret is None:
            raise WebhookRejected("webhooks are not configured for this source",
                                  source=self.name)
        expected = secret.get_secret_value().encode()
        if self.config.webhook_auth == "header":
            presented = request.headers.get(self.config.webhook_header.lower(), "").encode()
            if not hmac.compare_digest(presented, expected):
                raise WebhookRejected("bad or missing webhook secret header", source=self.name)
            return
        user, password = _basic(request.headers.get("authorization", ""))
        ok_user = hmac.compare_digest(user.encode(), self.config.webhook_username.encode())
        ok_password = hmac.compare_digest(password.encode(), expected)
        if not (ok_user and ok_password):
            raise WebhookRejected("bad or missing Basic credentials", source=self.name)

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Thin events for the tickets a delivery names; our own actions' echoes dropped."""
        items = parse_webhook(request.body)
        digest = hashlib.sha256(request.body).hexdigest()[:16]
        received = self._now()
        events: list[Event] = []
        for item in items:
            if is_echo(item, self.api_agent_id):
                log.debug("webhook_echo_dropped", source=self.name, ticket=item.ticket_id)
                continue
            # a partial ticket object without its team is decided after the read-back
            ticket = item.ticket
            if ticket is not None and "team" in ticket and not team_allowed(
                    ticket, self.config.teams):
                continue
            events.append(webhook_event(self.name, item, received_at=received, digest=digest))
        return events

    # -- Enricher -----------------------------------------------------------------------

    def _ticket(self, ticket_id: int) -> Record | None:
        try:
            return self.client.get_object(f"/Tickets/{ticket_id}", {"includedetails": "true"})
        except NotFound:
            return None

    def enrich(self, event: Event) -> list[Event]:
        """Read the ticket a thin webhook event names (one GET); others pass through.

        The ticket is ``created`` when Halo logged it at most ``created_window`` before its
        latest change. Returns no events when it is gone or outside the configured teams.
        """
        if not is_thin(event) or event.subject is None:
            return [event]
        record = self._ticket(check_id(event.subject.id, "ticket id"))
        if record is None or not team_allowed(record, self.config.teams):
            return []
        # "recent" on Halo's clock (its own timestamps), never the hub's
        logged = created_at(record)
        is_new = logged is not None and updated_at(record) - logged <= self.config.created_window
        return ticket_events(self.name, record, is_new=is_new, names=self._names([record]),
                             policy=self.policy)

    # -- Directory --------------------------------------------------------------------

    def linkables(self) -> list[Linkable]:
        """Every active Halo client, for link suggestions (``msphub clients suggest``)."""
        found: list[Linkable] = []
        params = {"order": "id", "orderdesc": "false"}
        for page in self.client.iter_pages("/Client", "clients", params):
            for row in page.items:
                rid = row.get("id")
                if isinstance(rid, int) and not isinstance(rid, bool) and rid > 0:
                    name = row.get("name")
                    found.append(Linkable(type=CLIENT_TYPE, id=str(rid),
                                          name=name if isinstance(name, str) else None))
        return found

    # -- TicketWriter (see writer.py) ---------------------------------------------------

    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        """Post a note action carrying ``key``'s marker."""
        return self.writer.post_note(ticket, text, key=key)

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """The recent action carrying ``key``'s marker, if any."""
        return self.writer.find_note(ticket, key)

    def attach(self, ticket: SubjectRef, filename: str, content: bytes, *, title: str,
               key: str) -> str:
        """Attach a file (idempotent by ``key``); returns the attachment id."""
        return self.writer.attach(ticket, filename, content, title=title, key=key)

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        """Set the ticket's status by name."""
        self.writer.set_status(ticket, status_name)


def _basic(header: str) -> tuple[str, str]:
    """(user, password) of a Basic ``Authorization`` header; empty strings when absent."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 1024:
        return "", ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password

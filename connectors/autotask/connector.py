"""The Autotask PSA connector: polling, webhooks, enrichment and write-back.

Streams:

* ``tickets`` — ``lastActivityDate gt [cursor - lookback]``. Autotask cannot sort a
  query, so the stream is unsorted: every page but the last carries the starting cursor,
  the last ``min(newest lastActivityDate, run start)``.
* ``contracts`` — new contracts (``agreement.created``). Contracts have no change
  marker and Autotask has no webhooks for them, so this poll is the only way a new
  contract launches onboarding: ``id gt <last id seen>``. Until a first contract has
  been seen, contracts starting on or after ``today - contract_backfill`` are read.
* ``contract_states`` — ``agreement.updated`` per distinct state of the contracts that
  started within ``contract_state_window`` (a cancelled = inactive contract stops its
  onboarding); the inbox keeps one event per state digest.

Echoes of our own writes: the webhook excludes the API user's resource, webhooks whose
``PersonID`` is that resource are dropped, and polled or enriched tickets whose
``lastActivityResourceID`` is that resource yield only ``ticket.created``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import structlog

from connectors.autotask.client import AutotaskClient, Record
from connectors.autotask.config import AutotaskConfig
from connectors.autotask.contracts import CURSOR_VERSION, ContractStreams
from connectors.autotask.events import (
    TICKET_PICKLISTS,
    activity_at,
    created_at,
    format_time,
    parse_time,
    parse_webhook,
    ticket_events,
    webhook_events,
)
from connectors.autotask.fields import FIELDS
from connectors.autotask.lookups import Directory, Picklists, Resolver
from connectors.autotask.signing import signature_ok
from connectors.autotask.throttle import (
    AutotaskBudget,
    EndpointLimiter,
    MemoryEndpointLimiter,
    RedisEndpointLimiter,
    ThresholdGovernor,
    hourly_budget,
    redis_of,
)
from connectors.autotask.webhooks import DEACTIVATED, WebhookRegistrar
from connectors.autotask.writer import AutotaskWriter
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
from connectors.budget import MemoryBudget, RedisBudget
from connectors.http import DEFAULT_RETRY, RetryPolicy
from hub.core.events import Event, EventKind, SubjectRef

log = structlog.get_logger()



class AutotaskConnector:
    """Autotask PSA (Datto/Kaseya), REST API v1.0."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor="autotask",
        display_name="Autotask PSA",
        kind="psa",
        capabilities=frozenset(Capability),
        streams={
            "tickets": StreamSpec(
                sorted=False,
                kinds=frozenset({EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED,
                                 EventKind.TICKET_CLOSED}),
                description="Tickets with activity since the cursor (lastActivityDate)"),
            "contracts": StreamSpec(
                sorted=False, kinds=frozenset({EventKind.AGREEMENT_CREATED}),
                description="New contracts (Autotask sends no contract webhooks)"),
            "contract_states": StreamSpec(
                sorted=False, kinds=frozenset({EventKind.AGREEMENT_UPDATED}),
                description="Each distinct state of recent contracts (status, dates …)"),
        },
        default_poll_interval=timedelta(minutes=5),
        config_model=AutotaskConfig,
        sandbox="connectors.autotask.sandbox:SandboxServer",
        fields=FIELDS,
    )

    def __init__(
        self,
        name: str,
        config: AutotaskConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], datetime] | None = None,
        limiter: EndpointLimiter | None = None,
        governor: ThresholdGovernor | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        inner = budget or MemoryBudget(config.requests_per_minute, 60, source=name)
        self.governor = governor or ThresholdGovernor(
            slow_above=config.slow_above, stop_above=config.stop_above,
            max_delay=config.max_slowdown_seconds,
            check_interval=config.threshold_check_interval.total_seconds(), source=name)
        self.budget = AutotaskBudget(inner, hourly_budget(name, config.requests_per_hour, inner),
                                     self.governor)
        self.limiter = limiter or _limiter(inner, config)
        self.client = AutotaskClient(config, source=name, limiter=self.limiter,
                                     transport=transport, budget=self.budget, retry=retry,
                                     governor=self.governor)
        ttl = config.picklist_ttl.total_seconds()
        self.picklists = Picklists(self.client, ttl=ttl)
        self.directory = Directory(self.client, ttl=ttl)
        self.resolver = Resolver(self.picklists, self.directory)
        self.writer = AutotaskWriter(self.client, config, name, self.picklists)
        self.registrar = WebhookRegistrar(self.client, config, name)
        self.contracts = ContractStreams(name, config, self.client, self.resolver, self._now)
        self._resource_id = config.api_resource_id
        self._resource_looked_up = config.api_resource_id is not None

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> AutotaskConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    @property
    def api_resource_id(self) -> int | None:
        """Our API user's resource id (configured, else looked up once by user name)."""
        if not self._resource_looked_up:
            self._resource_looked_up = True
            try:
                self._resource_id = self.resolver.resource_id(self.config.username)
            except NotFound:
                log.warning("autotask_api_resource_unknown", source=self.name)
        return self._resource_id

    def ticket_url(self, ticket_id: str) -> str | None:
        """The ticket in Autotask's web UI (the zone's webUrl), once the zone is known."""
        web = self.client.web_url
        if not ticket_id.isdigit() or not web:
            return None
        return f"{web.rstrip('/')}/Mvc/ServiceDesk/TicketDetail.mvc?ticketId={ticket_id}"

    # -- Poller -------------------------------------------------------------------------

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of events of ``stream`` since ``cursor`` (see the module doc)."""
        if cursor is not None and cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}",
                                 source=self.name)
        if stream == "tickets":
            yield from self._poll_tickets(cursor)
        elif stream == "contracts":
            yield from self.contracts.new_contracts(cursor)
        elif stream == "contract_states":
            yield from self.contracts.states()
        else:
            raise PermanentError(f"unknown stream {stream!r}", source=self.name)
        log.debug("poll_finished", source=self.name, stream=stream)

    def _queue_filter(self) -> list[Record]:
        if not self.config.queues:
            return []
        values = [self.picklists.value_of("Tickets", "queueID", q) for q in self.config.queues]
        known = [v for v in values if v is not None]
        if not known:
            raise PermanentError("none of the configured queues exists", source=self.name)
        return [{"op": "in", "field": "queueID", "value": known}]

    def _poll_tickets(self, cursor: Cursor | None) -> Iterator[Page]:
        run_start = self._now()
        start = (parse_time(cursor.position, "cursor.position") if cursor
                 else run_start - self.config.backfill)
        since = start - self.config.poll_lookback
        filters = [{"op": "gt", "field": "lastActivityDate", "value": format_time(since)},
                   *self._queue_filter()]
        newest = start
        for items, more in self.client.query("Tickets", filters):
            self.directory.prefetch(items)
            events: list[Event] = []
            for row in items:
                events.extend(self._polled_ticket(row, since))
                with contextlib.suppress(MalformedPayload):  # logged by _polled_ticket
                    newest = max(newest, activity_at(row))
            position = start if more else max(start, min(newest, run_start))
            yield Page(events, Cursor(version=CURSOR_VERSION, position=format_time(position)))

    def _polled_ticket(self, row: Record, since: datetime) -> list[Event]:
        try:
            entered = created_at(row)
            return self._ticket_events(row, is_new=entered is not None and entered > since)
        except MalformedPayload as exc:
            log.error("poll_record_skipped", source=self.name, id=row.get("id"),
                      error=exc.message)
            return []

    def _ticket_events(self, ticket: Record, *, is_new: bool) -> list[Event]:
        names = self.resolver.names("Tickets", ticket, TICKET_PICKLISTS)
        if self.config.queues:
            queue = (names.labels.get("queueID") or "").casefold()
            if queue not in {q.casefold() for q in self.config.queues}:
                return []
        events = ticket_events(self.name, ticket, names, is_new=is_new)
        resource = self.api_resource_id
        if resource is not None and ticket.get("lastActivityResourceID") == resource:
            events = [e for e in events if e.kind == EventKind.TICKET_CREATED]
        return events

    # -- WebhookReceiver ----------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check ``X-Hook-Signature`` (HMAC-SHA1 with the webhook's secret key).

        Deactivation notices (our ``?deactivated=1`` URL) carry no usable signature: they
        are logged, so an admin re-registers, and refused.

        Raises:
            WebhookRejected: no secret configured, a deactivation notice, or a bad signature.
        """
        secret = self.config.webhook_secret
        if secret is None:
            raise WebhookRejected("webhooks are not configured for this source",
                                  source=self.name)
        if DEACTIVATED.partition("=")[0] in request.query:
            log.warning("autotask_webhook_deactivation_notice", source=self.name)
            raise WebhookRejected("deactivation notices are not trusted; re-register the "
                                  "webhook", source=self.name)
        header = request.headers.get("x-hook-signature")
        if not header:
            raise WebhookRejected("missing X-Hook-Signature", source=self.name)
        if not signature_ok(request.body, header, secret.get_secret_value()):
            raise WebhookRejected("bad X-Hook-Signature", source=self.name)

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Thin ticket events from a verified delivery; our own changes yield none."""
        hook = parse_webhook(request.body)
        resource = self._resource_id  # no lookup on the webhook path (answer within 10 s)
        if hook.action == "update" and resource is not None and hook.person_id == resource:
            log.debug("webhook_echo_dropped", source=self.name, id=hook.id)
            return []
        return webhook_events(self.name, hook, received_at=self._now())

    # -- Enricher -----------------------------------------------------------------------

    def enrich(self, event: Event) -> list[Event]:
        """Read the ticket behind a thin webhook event (one GET, plus cached lookups)."""
        if not is_thin(event) or event.subject is None:
            return [event]
        if event.subject.type != "ticket" or not event.subject.id.isdigit():
            return []
        try:
            ticket = self.client.get_item(f"Tickets/{int(event.subject.id)}")
        except NotFound:
            return []
        self.directory.prefetch([ticket])
        action = str(event.data.get("webhook", {}).get("action", "update"))
        try:
            return self._ticket_events(ticket, is_new=action == "create")
        except MalformedPayload as exc:
            raise PermanentError(f"ticket {event.subject.id}: {exc.message}",
                                 source=self.name) from exc

    # -- TicketWriter / WebhookRegistrar ------------------------------------------------

    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        """Post a note carrying ``key``'s marker."""
        return self.writer.post_note(ticket, text, key=key)

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """The note carrying ``key``'s marker, if any."""
        return self.writer.find_note(ticket, key)

    def attach(self, ticket: SubjectRef, filename: str, content: bytes, *, title: str,
               key: str) -> str:
        """Attach a file once per ``key``; returns the attachment id."""
        return self.writer.attach(ticket, filename, content, title=title, key=key)

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        """Set the ticket's status by name."""
        self.writer.set_status(ticket, status_name)

    def register_webhooks(self, url: str) -> list[str]:
        """Create (or keep) our ticket webhook for ``url``, excluding our API user."""
        return self.registrar.register(url, self.api_resource_id)

    def remove_webhooks(self, url: str) -> int:
        """Delete our ticket webhooks for ``url``."""
        return self.registrar.remove(url)

    # -- Directory (link suggestions) -------------------------------------------------

    def linkables(self) -> list[Linkable]:
        """Every active Autotask company, for link suggestions (``msphub clients suggest``);
        links are ``type: company`` with the numeric company id."""
        found: list[Linkable] = []
        filters = [{"op": "eq", "field": "isActive", "value": True}]
        for items, _more in self.client.query("Companies", filters,
                                              include_fields=["id", "companyName"]):
            for row in items:
                rid, name = row.get("id"), row.get("companyName")
                if isinstance(rid, int) and not isinstance(rid, bool) and rid > 0:
                    found.append(Linkable(type="company", id=str(rid),
                                          name=name[:300] if isinstance(name, str) else None))
        return found

    def threshold_fraction(self) -> float:
        """The database's estimated use of its hourly threshold (0.0 before a reading)."""
        return self.governor.estimate()


def _limiter(inner: RequestBudget, config: AutotaskConfig) -> EndpointLimiter:
    """Endpoint slots shared like the hub's budget: in Redis when it is there."""
    client = redis_of(inner)
    if client is not None and isinstance(inner, RedisBudget):
        return RedisEndpointLimiter(client, f"{inner.key}:slots", config.endpoint_concurrency,
                                    lease_seconds=config.timeout_seconds * 4)
    return MemoryEndpointLimiter(config.endpoint_concurrency)


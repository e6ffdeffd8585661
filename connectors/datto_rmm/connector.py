"""The Datto RMM connector: alert polling, unsigned webhooks re-read from the API, sites.

Polling: Datto's alert listings have no "since" filter and no documented sort order, so
each run walks the open (or resolved) alert pages and keeps alerts whose vendor
timestamp (``timestamp`` for open, ``resolvedOn`` for resolved) is at or after
``cursor - poll_lookback``. Both streams are declared unsorted: every page but the last
carries the cursor the run started from, the last one the newest vendor timestamp seen
(never less than the start). The hub's clock never moves a cursor; the very first run
reads back ``backfill`` from Datto's clock (the first response's ``Date`` header).
Overlapping windows are absorbed by the inbox: keys are ``alert:{uid}:raised|resolved``.

Webhooks: Datto signs nothing, so the URL carries a per-source secret (compared in
constant time) and the body is only a hint: it becomes a thin event, and ``enrich``
re-reads ``GET /v2/alert/{alertUid}`` with the source's own token before any rule runs.
An alert the account does not have (a forged or mistyped UID) answers 404: no event.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Sequence
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
    NotFound,
    Page,
    PermanentError,
    RequestBudget,
    StreamSpec,
    TransientError,
    WebhookRejected,
    WebhookRequest,
    is_thin,
)
from connectors.datto_rmm import inventory
from connectors.datto_rmm.client import AlertState, DattoRMMClient, Record
from connectors.datto_rmm.config import DattoRMMConfig
from connectors.datto_rmm.events import (
    alert_event,
    alert_events,
    format_time,
    parse_position,
    parse_webhook,
    raised_at,
    resolved_at,
    site_record,
    webhook_event,
)
from connectors.datto_rmm.fields import FIELDS
from connectors.http import DEFAULT_RETRY, MemoryBudget, RetryPolicy
from connectors.inventory import ALL_DEVICE_FACTS, DeviceFact, DeviceFacts
from connectors.oauth import TokenStore
from hub.core.events import Event, EventKind

log = structlog.get_logger()

CURSOR_VERSION = 1
STREAMS: dict[str, AlertState] = {"alerts_open": "open", "alerts_resolved": "resolved"}


class DattoRMMConnector:
    """Datto RMM (formerly CentraStage), API v2."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor="datto-rmm",
        display_name="Datto RMM",
        kind="rmm",
        capabilities=frozenset(
            {Capability.POLLER, Capability.WEBHOOK_RECEIVER, Capability.ENRICHER}
        ),
        streams={
            "alerts_open": StreamSpec(
                sorted=False, kinds=frozenset({EventKind.ALERT_RAISED}),
                description="Open alerts raised since the cursor (alert.raised)",
            ),
            "alerts_resolved": StreamSpec(
                sorted=False, kinds=frozenset({EventKind.ALERT_RESOLVED}),
                description="Alerts resolved since the cursor (alert.resolved)",
            ),
        },
        default_poll_interval=timedelta(minutes=5),
        config_model=DattoRMMConfig,
        sandbox="connectors.datto_rmm.sandbox:SandboxServer",
        fields=FIELDS,
    )

    def __init__(
        self,
        name: str,
        config: DattoRMMConfig,
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
        self.client = DattoRMMClient(config, source=name, transport=transport,
                                     budget=self.budget, retry=retry, token_store=token_store)

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> DattoRMMConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Poller -------------------------------------------------------------------------

    def _position(self, cursor: Cursor | None) -> datetime | None:
        if cursor is None:
            return None
        if cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}", source=self.name)
        try:
            return parse_position(cursor.position)
        except MalformedPayload as exc:
            raise PermanentError(f"unreadable cursor ({exc})", source=self.name) from None

    def _stamp(self, state: AlertState, alert: Record) -> datetime | None:
        """The vendor timestamp the stream's cursor follows, or None (logged) when unreadable."""
        try:
            return resolved_at(alert) if state == "resolved" else raised_at(alert)
        except MalformedPayload as exc:
            log.error("poll_record_skipped", source=self.name, id=alert.get("alertUid"),
                      error=exc.message)
            return None

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of alert events at or after ``cursor - poll_lookback``.

        Account-wide by default; per site (``/v2/site/{uid}/alerts/...``) when
        ``config.sites`` is set. See the module docstring for the cursor rules.
        """
        state = STREAMS.get(stream)
        if state is None:
            raise PermanentError(f"unknown stream {stream!r}", source=self.name)
        start = self._position(cursor)
        since = None if start is None else start - self.config.poll_lookback
        scopes: tuple[str | None, ...] = self.config.sites or (None,)
        newest = start
        for index, scope in enumerate(scopes):
            for page in self.client.alerts(state, site_uid=scope):
                if since is None or start is None:
                    # first run: Datto's clock (Date header) minus the backfill
                    since = (page.server_time or self._clock()) - self.config.backfill
                    start = newest = since
                events: list[Event] = []
                fresh = 0
                for alert in page.items:
                    if state == "open" and alert.get("resolved"):
                        continue  # it is (or will be) in the resolved list
                    stamp = self._stamp(state, alert)
                    if stamp is None:
                        continue
                    newest = max(newest or stamp, stamp)
                    if stamp < since:
                        continue
                    fresh += 1
                    try:
                        events.append(alert_event(self.name, alert))
                    except MalformedPayload as exc:
                        log.error("poll_record_skipped", source=self.name,
                                  id=alert.get("alertUid"), error=exc.message)
                stop = (state == "resolved" and self.config.resolved_order == "newest_first"
                        and bool(page.items) and fresh == 0)
                last = (not page.more or stop) and index == len(scopes) - 1
                position = max(start, newest or start) if last else start
                yield Page(events, Cursor(version=CURSOR_VERSION,
                                          position=format_time(position)))
                if stop:
                    break
        log.debug("poll_finished", source=self.name, stream=stream)

    # -- WebhookReceiver ----------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check the per-source secret from the URL path (or ``?token=``) in constant time.

        Raises:
            WebhookRejected: webhooks are not configured, or the secret is missing or wrong.
        """
        secret = self.config.webhook_secret
        if secret is None:
            raise WebhookRejected("webhooks are not configured for this source", source=self.name)
        presented = request.path_secret or request.query.get("token") or ""
        if not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            raise WebhookRejected("bad or missing webhook secret", source=self.name)

    def parse(self, request: WebhookRequest) -> list[Event]:
        """One thin event naming the alert (never trusted: ``enrich`` re-reads it)."""
        hook = parse_webhook(request.body)
        return [webhook_event(self.name, hook, received_at=self._clock())]

    # -- Enricher -----------------------------------------------------------------------

    def enrich(self, event: Event) -> list[Event]:
        """Re-read a webhook's alert from the API; other events pass through.

        Returns no events when Datto has no such alert (404: forged or mistyped).

        Raises:
            TransientError: the webhook says resolved but the API does not show it
                resolved yet (retried later; Datto's API may lag its webhooks).
            PermanentError: the API answered with a different or unreadable alert.
        """
        if not is_thin(event) or event.subject is None or event.subject.type != "alert":
            return [event]
        uid = event.subject.id
        try:
            alert = self.client.alert(uid)
        except NotFound:
            log.warning("webhook_alert_not_found", source=self.name, alert=uid)
            return []
        if alert.get("alertUid") != uid:
            raise PermanentError("the API answered with another alert", source=self.name)
        try:
            events = alert_events(self.name, alert)
        except MalformedPayload as exc:
            raise PermanentError(f"unreadable alert from the API ({exc})",
                                 source=self.name) from None
        webhook = event.data.get("webhook")
        claimed = webhook.get("state") if isinstance(webhook, dict) else None
        if claimed == "resolved":
            resolved = [e for e in events if e.kind is EventKind.ALERT_RESOLVED]
            if not resolved:
                raise TransientError("the API does not show the alert resolved yet",
                                     source=self.name)
            return resolved
        if claimed == "raised":
            return events  # raised first: it takes the webhook's own key
        return events[::-1]  # no claim: the current state first

    # -- directory helpers --------------------------------------------------------------

    def sites(self) -> list[Record]:
        """Every site as a directory record (uid, name, PSA company hint, device count)."""
        return [site_record(site) for site in self.client.sites()]

    def linkables(self) -> list[Linkable]:
        """Every site, for link suggestions; a site integrated with Autotask PSA carries
        that company's id and name (``autotaskCompanyId``/``Name``) as hints."""
        found: list[Linkable] = []
        for site in self.sites():
            if not site.get("id"):
                continue  # a site without a uid cannot be linked (no event names it)
            found.append(Linkable(
                type="site", id=str(site["id"]), name=site.get("name"),
                psa_vendor="autotask" if site.get("psa_company_id") else None,
                psa_company_id=site.get("psa_company_id"),
                psa_company_name=site.get("psa_company_name")))
        return found

    def devices(self, site_uid: str | None = None) -> list[Record]:
        """Devices of the account or of one site, as Datto returns them."""
        return list(self.client.devices(site_uid=site_uid))

    def device_facts(self, site_ids: Sequence[str], *,
                     want: frozenset[DeviceFact] = ALL_DEVICE_FACTS) -> list[DeviceFacts]:
        """``DeviceInventory``: one device listing per site (every fact is on the device
        record, so ``want`` changes nothing); deleted devices are left out.

        Raises:
            NotFound: Datto has no such site (404).
        """
        found: list[DeviceFacts] = []
        for uid in dict.fromkeys(site_ids):
            for record in self.client.devices(site_uid=uid):
                facts = inventory.device_facts(record, uid)
                if facts is not None:
                    found.append(facts)
        return found

    def alert(self, alert_uid: str) -> Event:
        """The current state of one alert as an event (``NotFound`` when there is none)."""
        return alert_event(self.name, self.client.alert(alert_uid))

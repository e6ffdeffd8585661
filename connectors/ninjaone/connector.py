"""The NinjaOne connector: the activity stream, header-secret webhooks re-read from the API,
organizations, devices, active alerts and backup / antivirus / patch status.

Polling (stream ``activities``): ``stream.py`` walks ``/v2/activities`` down to the cursor
and never moves it past a truncated page; each page's cursor is safe to save (sorted).
Each activity's client is its device's organization (``devices.py``).

Webhooks: NinjaOne signs nothing. The webhook is registered through the API
(``PUT /v2/webhook``) with a custom header carrying ``webhook_secret``; ``verify``
checks it on every delivery in constant time. The body is only a hint: a thin event
keyed ``activity:{id}``, and ``enrich`` re-reads that activity and its device from the
API before any rule runs. An id the API does not have although its newest id is past it
(a forged or mistyped id) yields nothing; an id beyond the API's newest is retried
(the API may lag its webhook).
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
from connectors.http import DEFAULT_RETRY, MemoryBudget, RetryPolicy
from connectors.inventory import ALL_DEVICE_FACTS, DeviceFact, DeviceFacts
from connectors.ninjaone import inventory, status
from connectors.ninjaone.client import NinjaOneClient, Record
from connectors.ninjaone.config import NinjaOneConfig
from connectors.ninjaone.devices import DeviceCache
from connectors.ninjaone.events import (
    activity_event,
    alert_record,
    organization_record,
    outcome,
)
from connectors.ninjaone.fields import FIELDS
from connectors.ninjaone.filters import device_filter
from connectors.ninjaone.stream import CURSOR_VERSION, ActivityStream, Position
from connectors.ninjaone.webhooks import parse_webhook, webhook_event
from connectors.oauth import TokenStore
from hub.core.events import Event, EventKind

log = structlog.get_logger()

STREAM = "activities"


class NinjaOneConnector:
    """NinjaOne (NinjaRMM), Public API v2."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor="ninjaone",
        display_name="NinjaOne",
        kind="rmm",
        capabilities=frozenset({Capability.POLLER, Capability.WEBHOOK_RECEIVER,
                                Capability.ENRICHER, Capability.WEBHOOK_REGISTRAR}),
        streams={
            STREAM: StreamSpec(
                sorted=True,
                kinds=frozenset({EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED,
                                 EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED}),
                description="Activities since the cursor (conditions, backup jobs, patch "
                "installs, AV/EDR, devices) as alert.raised / alert.resolved / device.*",
            ),
        },
        default_poll_interval=timedelta(minutes=5),
        config_model=NinjaOneConfig,
        sandbox="connectors.ninjaone.sandbox:SandboxServer",
        fields=FIELDS,
    )

    def __init__(
        self,
        name: str,
        config: NinjaOneConfig,
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
        self.client = NinjaOneClient(config, source=name, transport=transport,
                                     budget=self.budget, retry=retry, token_store=token_store)
        self._devices = DeviceCache(self.client)
        self._stream = ActivityStream(self.client, config, self._events,
                                      df=device_filter(organizations=config.organizations),
                                      clock=self._clock, source=name)

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> NinjaOneConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Poller ---------------------------------------------------------------------------

    def _events(self, activities: list[Record]) -> list[Event]:
        """Events of the activities the hub acts on, each with its device's organization."""
        relevant = [a for a in activities if outcome(a) is not None]
        self._devices.prefetch(a.get("deviceId") for a in relevant)
        events = []
        for activity in relevant:
            try:
                event = activity_event(self.name, activity,
                                       self._devices.get(activity.get("deviceId")))
            except MalformedPayload as exc:
                log.error("poll_record_skipped", source=self.name, id=activity.get("id"),
                          error=exc.message)
                continue
            if event is not None:
                events.append(event)
        return events

    def _position(self, cursor: Cursor | None) -> Position | None:
        if cursor is None:
            return None
        if cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}", source=self.name)
        try:
            return Position.decode(cursor.position)
        except ValueError as exc:
            raise PermanentError(f"unreadable cursor ({exc})", source=self.name) from None

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of activity events after ``cursor`` (walk: ``stream.py``)."""
        if stream != STREAM:
            raise PermanentError(f"unknown stream {stream!r}", source=self.name)
        yield from self._stream.pages(self._position(cursor))
        log.debug("poll_finished", source=self.name, stream=stream)

    # -- WebhookReceiver ------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Check the custom header NinjaOne sends (``webhook_header``) in constant time.

        Raises:
            WebhookRejected: webhooks are not configured, or the header is missing or wrong.
        """
        secret = self.config.webhook_secret
        if secret is None:
            raise WebhookRejected("webhooks are not configured for this source", source=self.name)
        presented = request.headers.get(self.config.webhook_header.lower(), "")
        if not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            raise WebhookRejected("bad or missing webhook secret header", source=self.name)

    def parse(self, request: WebhookRequest) -> list[Event]:
        """One thin event naming the activity (never trusted: ``enrich`` re-reads it)."""
        event = webhook_event(self.name, parse_webhook(request.body), received_at=self._clock())
        return [event] if event is not None else []

    # -- Enricher -------------------------------------------------------------------------

    def enrich(self, event: Event) -> list[Event]:
        """Re-read a webhook's activity and its device from the API; others pass through.

        Returns no events when the API has no such activity (forged or mistyped), the
        activity is not one the hub acts on, or its device is outside ``organizations``.

        Raises:
            TransientError: the id is beyond the API's newest activity (it may lag).
            PermanentError: the API's activity belongs to another alert series than the
                webhook claimed, or is unreadable.
        """
        if not is_thin(event):
            return [event]
        hook = event.data.get("webhook")
        ident = hook.get("activity_id") if isinstance(hook, dict) else None
        if not isinstance(ident, int) or isinstance(ident, bool):
            raise PermanentError("thin event without an activity id", source=self.name)
        record, newest = self.client.activity(ident)
        if record is None:
            if newest is not None and ident <= newest:
                log.warning("webhook_activity_not_found", source=self.name, activity=ident)
                return []
            raise TransientError("the API does not show the activity yet", source=self.name)
        claimed = hook.get("series_uid") if isinstance(hook, dict) else None
        if claimed is not None and record.get("seriesUid") != claimed:
            raise PermanentError("the webhook names another alert series than the API",
                                 source=self.name)
        device = self._devices.get(record.get("deviceId"), fresh=True)
        wanted = self.config.organizations
        if wanted and (device is None or device.get("organizationId") not in wanted):
            log.info("webhook_activity_outside_organizations", source=self.name,
                     activity=ident)
            return []  # not one of the organizations this source watches
        try:
            full = activity_event(self.name, record, device)
        except MalformedPayload as exc:
            raise PermanentError(f"unreadable activity from the API ({exc})",
                                 source=self.name) from None
        return [full] if full is not None else []

    # -- WebhookRegistrar -----------------------------------------------------------------

    def webhook_configuration(self, url: str) -> Record:
        """The ``WebhookConfiguration`` we register: every activity (filtered here, so a
        wrong activity filter can never hide one), devices expanded, the secret header."""
        secret = self.config.webhook_secret
        if secret is None:
            raise PermanentError("set webhook_secret before registering the webhook",
                                 source=self.name)
        body: Record = {
            "url": url,
            "expand": ["device"],
            "headers": [{"name": self.config.webhook_header,
                         "value": secret.get_secret_value()}],
        }
        if self.config.organizations:
            body["organizationIds"] = list(self.config.organizations)
        return body

    def register_webhooks(self, url: str) -> list[str]:
        """Point this API client's webhook at ``url`` (``PUT /v2/webhook``; idempotent)."""
        self.client.put_webhook(self.webhook_configuration(url))
        return [f"api-client:{self.config.client_id}"]

    def remove_webhooks(self, url: str) -> int:
        """Disable this API client's webhook (NinjaOne keeps one per client, whatever URL)."""
        self.client.delete_webhook()
        return 1

    # -- directory and current state ------------------------------------------------------

    def organizations(self) -> list[Record]:
        """Every organization as a directory record (id, name, PSA company hint …)."""
        wanted = set(self.config.organizations or ())
        return [organization_record(org, psa_field=self.config.psa_company_field)
                for org in self.client.organizations()
                if not wanted or org.get("id") in wanted]

    def linkables(self) -> list[Linkable]:
        """Every (configured) organization, for link suggestions; with ``psa_company_field``
        set, its value is the PSA company hint (of ``psa_vendor``)."""
        found: list[Linkable] = []
        for org in self.organizations():
            if not org.get("id"):
                continue  # no id, no event names it
            hint = org.get("psa_company_id")
            found.append(Linkable(type="organization", id=str(org["id"]), name=org.get("name"),
                                  psa_vendor=self.config.psa_vendor if hint else None,
                                  psa_company_id=hint))
        return found

    def devices(self, organization_id: int | None = None) -> list[Record]:
        """Devices of every (configured) organization, or of one, as NinjaOne returns them."""
        return list(self.client.devices(df=self._org_filter(organization_id)))

    def alerts(self, organization_id: int | None = None) -> list[Record]:
        """Active alerts now (``/v2/alerts``), in the ``alert`` shape."""
        found = []
        for alert in self.client.alerts(df=self._org_filter(organization_id)):
            try:
                found.append(alert_record(alert))
            except MalformedPayload as exc:
                log.error("alert_record_skipped", source=self.name, id=alert.get("uid"),
                          error=exc.message)
        return found

    def _org_filter(self, organization_id: int | None) -> str | None:
        orgs = [organization_id] if organization_id is not None else self.config.organizations
        return device_filter(organizations=orgs)

    def backup_jobs(self, organization_id: int | None = None) -> list[status.BackupJob]:
        """Backup job runs of the organization's devices (``/v2/backup/jobs``)."""
        return status.rows(self.client.report(
            "/v2/backup/jobs", {"df": self._org_filter(organization_id)}), status.backup_job)

    def antivirus_status(self, organization_id: int | None = None
                         ) -> list[status.AntivirusStatus]:
        """Antivirus product state per device (``/v2/queries/antivirus-status``)."""
        return status.rows(self.client.report(
            "/v2/queries/antivirus-status", {"df": self._org_filter(organization_id)}),
            status.antivirus_status)

    def patch_installs(self, organization_id: int | None = None, *,
                       failed_only: bool = False, since: datetime | None = None
                       ) -> list[status.PatchRecord]:
        """OS patch installs, successful and failed (``/v2/queries/os-patch-installs``).

        ``since`` is sent as ``installedAfter`` (an ISO date; the format is unverified).
        """
        params = {"df": self._org_filter(organization_id),
                  "status": "FAILED" if failed_only else None,
                  "installedAfter": since.date().isoformat() if since else None}
        return status.rows(self.client.report("/v2/queries/os-patch-installs", params),
                           status.patch_record)

    def pending_patches(self, organization_id: int | None = None) -> list[status.PatchRecord]:
        """OS patches pending, failed or rejected per device (``/v2/queries/os-patches``)."""
        return status.rows(self.client.report(
            "/v2/queries/os-patches", {"df": self._org_filter(organization_id)}),
            status.patch_record)

    def device_facts(self, site_ids: Sequence[str], *,
                     want: frozenset[DeviceFact] = ALL_DEVICE_FACTS) -> list[DeviceFacts]:
        """``DeviceInventory``: per organization id, the device listing and one report per
        fact asked for (``inventory.py``), never a request per device.

        Raises:
            NotFound: an id is not a NinjaOne organization id.
        """
        found: list[DeviceFacts] = []
        for text in dict.fromkeys(site_ids):
            if not text.isdigit():
                raise NotFound(f"{text!r} is not a NinjaOne organization id", source=self.name)
            org = int(text)
            facts = [f for f in (inventory.device_facts(d, text) for d in self.devices(org))
                     if f is not None]
            if facts and DeviceFact.PATCHES in want:
                patches = self.pending_patches(org)
                facts = [inventory.with_patches(f, patches) for f in facts]
            if facts and DeviceFact.ANTIVIRUS in want:
                av = self.antivirus_status(org)
                facts = [inventory.with_antivirus(f, av) for f in facts]
            if facts and DeviceFact.BACKUP in want:
                jobs = self.backup_jobs(org)
                facts = [inventory.with_backups(f, jobs) for f in facts]
            found += facts
        return found

    def device_health(self, organization_id: int | None = None) -> list[status.DeviceHealth]:
        """Health roll-up per device: patch, threat and AV counts (``device-health``)."""
        return status.rows(self.client.report(
            "/v2/queries/device-health", {"df": self._org_filter(organization_id)}),
            status.device_health)

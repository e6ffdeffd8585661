"""The NinjaOne connector: the activity stream, header-secret webhooks re-read from the API,
organizations, devices, active alerts and backup / antivirus / patch status.

Polling (stream ``activities``): ``/v2/activities`` lists newest first, so a page that
comes back full (``pageSize`` items) is *truncated*: activities between the cursor and
that page's lowest id are still unseen. The connector walks down with
``olderThan=<lowest id seen>`` (and ``newerThan=<cursor - id_lookback>``) until a short
page, and only then moves the cursor to the highest id of the walk. What it read is
emitted oldest first in chunks; each chunk's cursor is the highest id below which
everything has been read, so every page's cursor is safe to save (the stream is sorted).
A walk longer than ``max_pages`` ends the poll with a *resume* cursor
(``<low>~<top>~<progress>``): the next poll continues below the lowest id read, and the
cursor reaches ``top`` once the gap is closed. The first poll reads back ``backfill``
from NinjaOne's clock.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import structlog

from connectors.base import (
    Capability,
    Cursor,
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
from connectors.ninjaone import status
from connectors.ninjaone.client import NinjaOneClient, Record
from connectors.ninjaone.config import NinjaOneConfig
from connectors.ninjaone.events import (
    activity_event,
    activity_id,
    alert_record,
    organization_record,
    outcome,
    parse_seconds,
    parse_webhook,
    webhook_event,
)
from connectors.ninjaone.filters import device_filter
from connectors.oauth import TokenStore
from hub.core.events import Event, EventKind

log = structlog.get_logger()

CURSOR_VERSION = 1
STREAM = "activities"
_MAX_ID = 10**19  # ids are int64: 19 digits, so positions are fixed-width 20 digits
_DEVICE_TTL = 3600.0
_DEVICE_CACHE = 10_000


@dataclass(frozen=True)
class Position:
    """Where the activity stream stands: everything ``<= low`` was read; while a walk is
    unfinished, also everything in ``[below, top]``."""

    low: int
    top: int | None = None
    below: int | None = None

    def encode(self) -> str:
        """Fixed-width text that sorts in stream order (a resume sorts after its ``low``
        and before any later ``low``; its progress grows as ``below`` falls)."""
        if self.top is None or self.below is None:
            return f"{self.low:020d}"
        return f"{self.low:020d}~{self.top:020d}~{_MAX_ID - self.below:020d}"

    @classmethod
    def decode(cls, text: str) -> Position:
        """Raises ValueError for text :meth:`encode` did not write."""
        parts = text.split("~")
        if len(parts) == 1 and parts[0].isdigit():
            return cls(int(parts[0]))
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            low, top, progress = (int(p) for p in parts)
            below = _MAX_ID - progress
            if not low < below <= top:
                raise ValueError("inconsistent resume position")
            return cls(low, top, below)
        raise ValueError("not an activity position")


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
        self._devices: dict[int, tuple[float, Record | None]] = {}
        self._df = device_filter(organizations=config.organizations)

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> NinjaOneConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- devices (the activity's organization) --------------------------------------------

    def _device(self, device_id: object, *, fresh: bool = False) -> Record | None:
        """The API's record of a device (cached an hour; None when it is gone)."""
        if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id < 1:
            return None
        now = time.monotonic()
        cached = self._devices.get(device_id)
        if cached is not None and not fresh and now - cached[0] < _DEVICE_TTL:
            return cached[1]
        try:
            record: Record | None = self.client.device(device_id)
        except NotFound:
            record = None
        if len(self._devices) >= _DEVICE_CACHE:
            self._devices.clear()
        self._devices[device_id] = (now, record)
        return record

    def _events(self, activities: list[Record]) -> list[Event]:
        events = []
        for activity in activities:
            if outcome(activity) is None:
                continue  # not a fact the hub acts on: no device lookup either
            try:
                event = activity_event(self.name, activity, self._device(activity.get("deviceId")))
            except MalformedPayload as exc:
                log.error("poll_record_skipped", source=self.name, id=activity.get("id"),
                          error=exc.message)
                continue
            if event is not None:
                events.append(event)
        return events

    # -- Poller ---------------------------------------------------------------------------

    def _position(self, cursor: Cursor | None) -> Position | None:
        if cursor is None:
            return None
        if cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}", source=self.name)
        try:
            return Position.decode(cursor.position)
        except ValueError as exc:
            raise PermanentError(f"unreadable cursor ({exc})", source=self.name) from None

    def _chunks(self, records: list[Record], cursor_of: Callable[[int, bool], Position]
                ) -> Iterator[Page]:
        """Records oldest first in pages of ``page_size``; ``cursor_of(highest id, last)``."""
        ordered = sorted({activity_id(r): r for r in records}.values(), key=activity_id)
        size = self.config.page_size
        chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)] or [[]]
        for index, chunk in enumerate(chunks):
            highest = activity_id(chunk[-1]) if chunk else 0
            yield Page(self._events(chunk), Cursor(
                version=CURSOR_VERSION,
                position=cursor_of(highest, index == len(chunks) - 1).encode()))

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of activity events after ``cursor`` (see the module docstring)."""
        if stream != STREAM:
            raise PermanentError(f"unknown stream {stream!r}", source=self.name)
        start = self._position(cursor)
        if start is None:
            yield from self._first_run()
        else:
            yield from self._walk(start)
        log.debug("poll_finished", source=self.name, stream=stream)

    def _first_run(self) -> Iterator[Page]:
        """Read back ``backfill`` on NinjaOne's clock; the cursor ends at the newest id."""
        older_than: int | None = None
        top, floor_time = 0, None
        kept: list[Record] = []
        for _ in range(self.config.max_pages):
            page = self.client.activities(older_than=older_than, df=self._df)
            if floor_time is None:
                floor_time = (page.server_time or self._clock()) - self.config.backfill
                top = max([activity_id(a) for a in page.items] + [page.last_activity_id or 0])
            fresh = [a for a in page.items if self._after(a, floor_time)]
            kept += fresh
            if len(page.items) < self.config.page_size or len(fresh) < len(page.items):
                break
            older_than = min(activity_id(a) for a in page.items)
        else:
            log.warning("poll_backfill_truncated", source=self.name, pages=self.config.max_pages)

        def cursor_of(highest: int, last: bool) -> Position:
            return Position(top if last else highest)

        yield from self._chunks(kept, cursor_of)

    def _after(self, activity: Record, floor: datetime) -> bool:
        try:
            return parse_seconds(activity.get("activityTime"), "activityTime") >= floor
        except MalformedPayload:
            return True  # kept; _events logs and skips it

    def _walk(self, start: Position) -> Iterator[Page]:
        """Read every activity above the cursor, down to it (see the module docstring)."""
        floor = max(0, start.low - self.config.id_lookback)
        older_than, top = start.below, start.top
        read: list[Record] = []
        complete = False
        for _ in range(self.config.max_pages):
            page = self.client.activities(newer_than=floor, older_than=older_than, df=self._df)
            ids = [activity_id(a) for a in page.items]
            if top is None:
                top = max([*ids, start.low])
            read += page.items
            if len(ids) < self.config.page_size:
                complete = True
                break
            older_than = min(ids)  # truncated: what lies between is still unseen
        top = start.low if top is None else top  # (the loop runs at least once)
        if complete:
            def settled(highest: int, last: bool) -> Position:
                if last:
                    return Position(max(top, start.low))
                return Position(highest) if highest > start.low else start

            yield from self._chunks(read, settled)
            return
        below = older_than if older_than is not None else top
        log.info("poll_walk_resumes", source=self.name, low=start.low, top=top, below=below)

        def resume(highest: int, last: bool) -> Position:
            return Position(start.low, top, below) if last else start

        yield from self._chunks(read, resume)

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

        Returns no events when the API has no such activity (forged or mistyped) or the
        activity is not one the hub acts on.

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
        try:
            full = activity_event(self.name, record,
                                  self._device(record.get("deviceId"), fresh=True))
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

"""The N-central connector: active issues polled per customer/site and diffed into alerts.

N-central has no push and no "since" filter on active issues. Each run lists customers and
sites (to place devices and know which org units exist), then the active issues of every
org unit in scope, and compares them with the set remembered in the cursor
(:mod:`connectors.ncentral.tracking`): a newly listed occurrence → ``alert.raised`` (on a
page of its own, carrying the run's *starting* cursor), a remembered one no longer listed
→ ``alert.resolved`` (on the run's last page, with the new cursor). A run that fails part
way saves no new set: the next run starts from the old one and the inbox absorbs the
raisings it repeats. The stream is unsorted: only the last page moves the cursor.

The ``devices`` stream diffs ``GET /api/devices`` the same way into ``device.added`` /
``device.removed`` (removals only from a complete, non-empty listing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import structlog

from connectors.base import (
    AuthFailed,
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
)
from connectors.http import DEFAULT_RETRY, MemoryBudget, RetryPolicy
from connectors.inventory import ALL_DEVICE_FACTS, DeviceFact, DeviceFacts
from connectors.ncentral import inventory
from connectors.ncentral.client import Listing, NcentralClient, Record
from connectors.ncentral.config import NcentralConfig
from connectors.ncentral.events import (
    customer_record,
    device_data,
    device_event,
    marker,
    normalize_issue,
    raised_event,
    resolved_event,
    site_record,
    task_id,
    transition_time,
)
from connectors.ncentral.fields import FIELDS
from connectors.ncentral.orgunits import OrgMap, build_org_map, is_customer
from connectors.ncentral.tracking import Known, State, decode, encode, reconcile
from hub.core.events import Event, EventKind

log = structlog.get_logger()

CURSOR_VERSION = 1
STREAM = "active_issues"
DEVICES = "devices"
MAX_PAGE_EVENTS = 500  # a first poll of a large server is stored in several transactions


class NcentralConnector:
    """N-able N-central (REST API-Service)."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor="ncentral",
        display_name="N-able N-central",
        kind="rmm",
        capabilities=frozenset({Capability.POLLER}),
        streams={
            STREAM: StreamSpec(
                sorted=False,
                kinds=frozenset({EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED}),
                description="Active issues per customer/site, diffed against the previous "
                "poll (alert.raised / alert.resolved)",
            ),
            DEVICES: StreamSpec(
                sorted=False,
                kinds=frozenset({EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED}),
                description="The device list, diffed against the previous poll "
                "(device.added / device.removed)",
            ),
        },
        default_poll_interval=timedelta(minutes=5),
        config_model=NcentralConfig,
        sandbox="connectors.ncentral.sandbox:SandboxServer",
        fields=FIELDS,
    )

    def __init__(
        self,
        name: str,
        config: NcentralConfig,
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
        self.client = NcentralClient(config, source=name, transport=transport,
                                     budget=self.budget, retry=retry)

    def close(self) -> None:
        """Release HTTP connections."""
        self.client.close()

    def __enter__(self) -> NcentralConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Poller -------------------------------------------------------------------------

    def _state(self, cursor: Cursor | None) -> State | None:
        if cursor is None:
            return None
        if cursor.version != CURSOR_VERSION:
            raise PermanentError(f"unsupported cursor version {cursor.version}", source=self.name)
        try:
            return decode(cursor.position)
        except MalformedPayload as exc:
            raise PermanentError(f"unreadable cursor ({exc})", source=self.name) from None

    def org_map(self) -> OrgMap:
        """Customers and sites of this run, the org units to poll and those that exist."""
        customers = self.client.customers()
        sites = self.client.sites()
        for name, listing in (("customers", customers), ("sites", sites)):
            if not listing.complete:
                log.warning("ncentral_listing_incomplete", source=self.name, listing=name,
                            reason=listing.reason)
        return build_org_map(customers, sites, self.config)

    def _issues(self, org_unit: int) -> Listing | None:
        """One org unit's active issues; None (logged) when N-central cannot list them."""
        try:
            listing = self.client.active_issues(org_unit)
        except AuthFailed:
            raise
        except NotFound:
            log.warning("ncentral_org_unit_not_found", source=self.name, org_unit=org_unit)
            return None
        except PermanentError as exc:
            log.error("ncentral_active_issues_failed", source=self.name, org_unit=org_unit,
                      status=exc.status, error=exc.message)
            return None
        if not listing.complete:
            log.warning("ncentral_listing_incomplete", source=self.name,
                        listing="active-issues", org_unit=org_unit, reason=listing.reason)
        return listing

    def poll(self, stream: str, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of newly raised issues, then one page of resolved ones + the cursor.

        See the module docstring; the first run (no cursor) raises only issues that became
        active within ``config.backfill`` of N-central's clock and remembers the others.
        """
        if stream == DEVICES:
            yield from self._poll_devices(cursor)
            return
        if stream != STREAM:
            raise PermanentError(f"unknown stream {stream!r}", source=self.name)
        previous = self._state(cursor)
        org = self.org_map()
        now = org.server_time or self._clock()
        start = previous or State(stamp=now, seq=0, baselined=False, issues={})
        start_cursor = cursor or Cursor(version=CURSOR_VERSION, position=encode(start))
        since = None if start.baselined else now - self.config.backfill
        seen: dict[int, Known] = {}
        complete: set[int] = set()
        for unit in org.targets:
            listing = self._issues(unit)
            if listing is None:
                continue
            events, readable = self._read(listing.items, unit, org, start, seen, since, now)
            if listing.complete and readable:
                complete.add(unit)
            for first in range(0, len(events), MAX_PAGE_EVENTS):
                yield Page(events[first:first + MAX_PAGE_EVENTS], start_cursor)
        outcome = reconcile(start.issues, seen, complete, org.existing)
        for known in outcome.dropped:
            log.info("ncentral_issue_forgotten", source=self.name, task=known.task,
                     org_unit=known.org_unit)
        resolved = [resolved_event(self.name, k.alert, observed_at=now)
                    for k in outcome.resolved]
        final = State(stamp=max(start.stamp, now), seq=start.seq + 1, baselined=True,
                      issues=outcome.remembered)
        log.debug("poll_finished", source=self.name, stream=stream, active=len(seen),
                  resolved=len(resolved), carried=len(outcome.carried))
        yield Page(resolved, Cursor(version=CURSOR_VERSION, position=encode(final)))

    def _read(self, issues: list[Record], unit: int, org: OrgMap, start: State,
              seen: dict[int, Known], since: datetime | None, now: datetime
              ) -> tuple[list[Event], bool]:
        """Record one org unit's listed issues in ``seen``; the events of new occurrences,
        and False when a row was unreadable (the listing then proves nothing gone)."""
        events: list[Event] = []
        readable = True
        for issue in issues:
            try:
                task = task_id(issue)
            except MalformedPayload as exc:
                log.error("poll_record_skipped", source=self.name, org_unit=unit,
                          error=exc.message)
                readable = False
                continue
            if task in seen:
                continue  # listed under a customer and its site: one issue
            if task in start.issues:
                seen[task] = start.issues[task]
                continue
            when = transition_time(issue)
            # no transition time: the run number stands in, the same on a re-run
            occurrence = marker(when) if when else f"s{start.seq + 1:010d}"
            alert = normalize_issue(issue, occurrence=occurrence,
                                    placement=org.placement(issue, unit),
                                    raised_at=when or now, overrides=self.config.categories,
                                    priorities=dict(self.config.priorities))
            seen[task] = Known(task, unit, alert)
            if since is not None and when is not None and when < since:
                continue  # first run: active since before the backfill, remembered only
            events.append(raised_event(self.name, alert, issue))
        return events, readable

    def _poll_devices(self, cursor: Cursor | None) -> Iterator[Page]:
        """Diff the device list: new ids → ``device.added``, vanished → ``device.removed``.

        Removals need a complete listing with readable rows, and a listing that comes back
        empty while devices were remembered removes nothing (a lost permission looks the
        same). The first poll reports every device once as added.
        """
        previous = self._state(cursor)
        listing = self.client.devices()
        now = listing.server_time or self._clock()
        start = previous or State(stamp=now, seq=0, baselined=False, issues={})
        start_cursor = cursor or Cursor(version=CURSOR_VERSION, position=encode(start))
        seen: dict[int, Known] = {}
        added: list[Event] = []
        readable = True
        for device in listing.items:
            try:
                data = device_data(device)
            except MalformedPayload as exc:
                log.error("poll_record_skipped", source=self.name, stream=DEVICES,
                          error=exc.message)
                readable = False
                continue
            did = int(data["id"])
            if did in seen:
                continue
            seen[did] = Known(did, int(data["customer"]["id"] or 0), data)
            if did not in start.issues:
                added.append(device_event(self.name, data, EventKind.DEVICE_ADDED,
                                          observed_at=now, raw=device))
        for first in range(0, len(added), MAX_PAGE_EVENTS):
            yield Page(added[first:first + MAX_PAGE_EVENTS], start_cursor)
        trusted = listing.complete and readable and (bool(seen) or not start.issues)
        if not trusted:
            log.warning("ncentral_devices_not_diffed", source=self.name,
                        reason=listing.reason or ("unreadable rows" if not readable
                                                  else "empty listing"))
        complete = {k.org_unit for k in start.issues.values()} if trusted else set()
        outcome = reconcile(start.issues, seen, complete, None)
        removed = [device_event(self.name, k.alert, EventKind.DEVICE_REMOVED, observed_at=now,
                                raw={"deviceId": k.task, "removed": True})
                   for k in outcome.resolved]
        final = State(stamp=max(start.stamp, now), seq=start.seq + 1, baselined=True,
                      issues=outcome.remembered)
        yield Page(removed, Cursor(version=CURSOR_VERSION, position=encode(final)))

    # -- directory helpers --------------------------------------------------------------

    def customers(self) -> list[Record]:
        """Every customer as a directory record (link type ``customer``)."""
        return [customer_record(c) for c in self.client.customers().items if is_customer(c)]

    def linkables(self) -> list[Linkable]:
        """Every customer, for link suggestions and drift checks (events name customers,
        never sites). An incomplete listing is an error, not a list of deleted customers.

        Raises:
            PermanentError: N-central's customer listing was truncated or warned.
        """
        listing = self.client.customers()
        if not listing.complete:
            raise PermanentError(f"the customer listing is incomplete ({listing.reason})",
                                 source=self.name)
        found: list[Linkable] = []
        for customer in listing.items:
            record = customer_record(customer)
            if is_customer(customer) and record["id"]:
                found.append(Linkable(type="customer", id=record["id"], name=record["name"]))
        return found

    def sites(self) -> list[Record]:
        """Every site with its customer (events name the customer, never the site)."""
        return [site_record(s) for s in self.client.sites().items]

    def device_facts(self, site_ids: Sequence[str], *,
                     want: frozenset[DeviceFact] = ALL_DEVICE_FACTS) -> list[DeviceFacts]:
        """``DeviceInventory``: one device listing per customer id (``inventory.py``: only
        the last check-in is known). An incomplete listing is an error, never a verdict.

        Raises:
            NotFound: an id is not an N-central org unit id.
            PermanentError: N-central's listing was truncated or warned.
        """
        found: list[DeviceFacts] = []
        for text in dict.fromkeys(site_ids):
            if not text.strip().isdigit():
                raise NotFound(f"{text!r} is not an N-central org unit id", source=self.name)
            listing = self.client.devices(int(text))
            if not listing.complete:
                raise PermanentError(f"the device listing of {text} is incomplete "
                                     f"({listing.reason})", source=self.name)
            found += [f for f in (inventory.device_facts(d, text) for d in listing.items)
                      if f is not None]
        return found

    def devices(self, org_unit_id: int | None = None) -> list[Record]:
        """Devices of the user's view or of one customer/site, as N-central returns them."""
        return list(self.client.devices(org_unit_id).items)

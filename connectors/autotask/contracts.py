"""The contract streams: Autotask has no webhooks for contracts, so polling is how a new
contract reaches the hub ("new contract → client onboarding").

* ``contracts``: ``id gt <highest id seen>`` → ``agreement.created`` (the cursor is the id,
  zero-padded so positions sort as strings). Until a first contract is seen, contracts
  starting on or after ``today - contract_backfill`` are read, so an existing tenant's
  old contracts do not all launch onboarding.
* ``contract_states``: the contracts that started within ``contract_state_window`` →
  ``agreement.updated`` per distinct state (contracts have no change marker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta

import structlog

from connectors.autotask.client import AutotaskClient, Record
from connectors.autotask.config import AutotaskConfig
from connectors.autotask.events import (
    CONTRACT_PICKLISTS,
    contract_created,
    contract_state,
    format_time,
)
from connectors.autotask.lookups import Resolver
from connectors.base import Cursor, MalformedPayload, Page, PermanentError
from hub.core.events import Event

log = structlog.get_logger()

CURSOR_VERSION = 1
ID_WIDTH = 20


def _midnight(when: datetime, back: timedelta) -> str:
    return format_time(datetime.combine((when - back).date(), time(), tzinfo=UTC))


def contract_position(cursor: Cursor) -> int:
    """The highest contract id a ``contracts`` cursor has seen."""
    text = cursor.position
    if not (text.isascii() and text.isdigit() and len(text) <= ID_WIDTH):
        raise PermanentError("contracts cursor is not an id")
    return int(text)


class ContractStreams:
    """Polls ``Contracts`` for the two contract streams of one connector instance."""

    def __init__(self, name: str, config: AutotaskConfig, client: AutotaskClient,
                 resolver: Resolver, now: Callable[[], datetime]) -> None:
        self.name = name
        self.config = config
        self.client = client
        self.resolver = resolver
        self.now = now

    def new_contracts(self, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of ``agreement.created``; only the last page moves the cursor."""
        last = contract_position(cursor) if cursor else 0
        floor = _midnight(self.now(), self.config.contract_backfill)
        filters = ([{"op": "gt", "field": "id", "value": last}] if last else
                   [{"op": "gte", "field": "startDate", "value": floor}])
        seen_at, newest = self.now(), last
        for items, more in self.client.query("Contracts", filters):
            self.resolver.directory.prefetch(items)
            events: list[Event] = []
            for row in items:
                event = self._event(row, seen_at, created=True)
                if event is not None:
                    events.append(event)
                    newest = max(newest, int(row["id"]))
            position = last if more else newest
            yield Page(events, Cursor(version=CURSOR_VERSION,
                                      position=f"{position:0{ID_WIDTH}d}"))

    def states(self) -> Iterator[Page]:
        """Pages of ``agreement.updated`` (every page carries the run's time)."""
        seen_at = self.now()
        floor = _midnight(seen_at, self.config.contract_state_window)
        position = Cursor(version=CURSOR_VERSION, position=format_time(seen_at))
        for items, _more in self.client.query(
                "Contracts", [{"op": "gte", "field": "startDate", "value": floor}]):
            self.resolver.directory.prefetch(items)
            events = [e for row in items
                      if (e := self._event(row, seen_at, created=False)) is not None]
            yield Page(events, position)

    def _event(self, row: Record, seen_at: datetime, *, created: bool) -> Event | None:
        try:
            names = self.resolver.names("Contracts", row, CONTRACT_PICKLISTS)
            make = contract_created if created else contract_state
            return make(self.name, row, names, seen_at=seen_at)
        except MalformedPayload as exc:
            log.error("poll_record_skipped", source=self.name, id=row.get("id"),
                      error=exc.message)
            return None

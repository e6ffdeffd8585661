"""The tenant's ticket types and statuses by name (``/TicketType``, ``/Status``), cached.

Ticket listings may carry only ``tickettype_id`` and ``status_id``; rules compare names,
and write-back sets a status by name. The lists are small and change rarely: they are
read once, again after ``ttl``, and again (at most once per ``ttl``) when a record names
an id the cache does not know.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from connectors.halopsa.client import HaloPSAClient, Record
from connectors.halopsa.events import Names


def _by_id(rows: list[Record]) -> dict[int, str]:
    out: dict[int, str] = {}
    for row in rows:
        rid, name = row.get("id"), row.get("name")
        if isinstance(rid, int) and not isinstance(rid, bool) and isinstance(name, str):
            out[rid] = name
    return out


class HaloLookups:
    """Id ↔ name of ticket types and statuses for one instance (thread-safe)."""

    def __init__(self, client: HaloPSAClient, *, ttl: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._names: Names | None = None
        self._loaded_at = 0.0
        self._statuses_by_type: dict[int, list[Record]] = {}

    def _load(self) -> Names:
        types = self.client.get_list("/TicketType", "tickettypes", {"showinactive": "true"})
        statuses = self.client.get_list("/Status", "statuses", {"showall": "true"})
        names = Names(ticket_types=_by_id(types), statuses=_by_id(statuses))
        with self._lock:
            self._names, self._loaded_at = names, self._clock()
            self._statuses_by_type.clear()
        return names

    def names(self, *, need_types: Iterable[int] = (), need_statuses: Iterable[int] = ()
              ) -> Names:
        """The cached names, reloaded when stale or when a needed id is unknown."""
        with self._lock:
            names, age = self._names, self._clock() - self._loaded_at
        if names is None or age > self.ttl:
            return self._load()
        unknown = any(t not in names.ticket_types for t in need_types if t) or any(
            s not in names.statuses for s in need_statuses if s)
        if unknown and age > min(60.0, self.ttl):
            return self._load()
        return names

    def status_id(self, name: str, ticket_type_id: int | None) -> int | None:
        """The id of the status called ``name`` (case-insensitive) for the ticket type."""
        wanted = name.casefold()
        for refresh in (False, True):
            for row in self._statuses(ticket_type_id, refresh=refresh):
                rid = row.get("id")
                if str(row.get("name", "")).casefold() == wanted and isinstance(rid, int):
                    return rid
        return None

    def _statuses(self, ticket_type_id: int | None, *, refresh: bool) -> list[Record]:
        key = ticket_type_id or 0
        with self._lock:
            cached = None if refresh else self._statuses_by_type.get(key)
        if cached is not None:
            return cached
        params = {"tickettype_id": ticket_type_id} if ticket_type_id else {"showall": "true"}
        rows = self.client.get_list("/Status", "statuses", params)
        with self._lock:
            self._statuses_by_type[key] = rows
        return rows

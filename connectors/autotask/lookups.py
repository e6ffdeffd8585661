"""Names behind Autotask ids, cached: picklist labels from entity field metadata, company
names and contacts (one ``in`` query per page of records, not one request per record).

A mapping says ``ticket.queue: HR Requests``, never an id, so every picklist value a
record carries is resolved here. A value missing from the cache (an admin just added a
queue) refreshes that entity's metadata once; the refresh is rate-limited to one per
entity per minute so an unknown value cannot spend the budget.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.autotask.client import AutotaskClient, Record
from connectors.autotask.events import Names, picklist_values
from connectors.base import NotFound

MIN_REFRESH = 60.0  # seconds between two refreshes of one entity's metadata
MAX_CACHED = 5000   # companies and contacts kept per connector


@dataclass
class _Entry:
    labels: dict[str, dict[str, str]]  # field (lower-case) → value → label
    read_at: float


class Picklists:
    """Picklist labels per entity and field, read from ``entityInformation/fields``."""

    def __init__(self, client: AutotaskClient, *, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}

    def _load(self, entity: str) -> _Entry:
        labels: dict[str, dict[str, str]] = {}
        for field in self.client.entity_fields(entity):
            if not field.get("isPickList") or not isinstance(field.get("name"), str):
                continue
            values = {}
            for item in field.get("picklistValues") or []:
                if isinstance(item, dict) and item.get("value") is not None:
                    values[str(item["value"])] = str(item.get("label") or "")
            labels[field["name"].lower()] = values
        entry = _Entry(labels, self._clock())
        with self._lock:
            self._cache[entity.lower()] = entry
        return entry

    def _entry(self, entity: str) -> _Entry:
        with self._lock:
            entry = self._cache.get(entity.lower())
        if entry is None or self._clock() - entry.read_at > self.ttl:
            return self._load(entity)
        return entry

    def values(self, entity: str, field: str) -> dict[str, str]:
        """``{value: label}`` of one picklist field (empty when it is not a picklist)."""
        return dict(self._entry(entity).labels.get(field.lower(), {}))

    def label(self, entity: str, field: str, value: Any) -> str | None:
        """The label of ``value``; one metadata refresh when it is unknown."""
        if value is None or value == "":
            return None
        entry = self._entry(entity)
        key = str(value)
        found = entry.labels.get(field.lower(), {}).get(key)
        if found is None and self._clock() - entry.read_at >= MIN_REFRESH:
            found = self._load(entity).labels.get(field.lower(), {}).get(key)
        return found

    def labels_for(self, entity: str, record: Mapping[str, Any],
                   fields: Mapping[str, str]) -> dict[str, str | None]:
        """Labels of every picklist field of ``record`` named in ``fields``."""
        return {name: self.label(entity, name, value)
                for name, value in picklist_values(record, fields).items()}

    def value_of(self, entity: str, field: str, wanted: int | str) -> int | None:
        """The value whose label is ``wanted`` (case-insensitive), or ``wanted`` itself
        when it is already a known value; None when the picklist has neither."""
        for refresh in (False, True):
            entry = self._load(entity) if refresh else self._entry(entity)
            values = entry.labels.get(field.lower(), {})
            if str(wanted) in values:
                return _as_int(str(wanted))
            for value, label in values.items():
                if label.casefold() == str(wanted).strip().casefold():
                    return _as_int(value)
            if self._clock() - entry.read_at < MIN_REFRESH:
                break
        return None


def _as_int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


class Directory:
    """Company names and contacts by id (bounded caches, batched lookups)."""

    def __init__(self, client: AutotaskClient, *, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._companies: OrderedDict[int, tuple[float, str | None]] = OrderedDict()
        self._contacts: OrderedDict[int, tuple[float, dict[str, Any] | None]] = OrderedDict()

    def _missing(self, cache: OrderedDict[int, Any], ids: Iterable[int]) -> list[int]:
        now = self._clock()
        with self._lock:
            return sorted({i for i in ids
                           if i not in cache or now - cache[i][0] > self.ttl})

    def _store(self, cache: OrderedDict[int, Any], key: int, value: Any) -> None:
        with self._lock:
            cache[key] = (self._clock(), value)
            cache.move_to_end(key)
            while len(cache) > MAX_CACHED:
                cache.popitem(last=False)

    def _fetch(self, entity: str, ids: list[int], fields: list[str]) -> dict[int, Record]:
        found: dict[int, Record] = {}
        for start in range(0, len(ids), 200):  # well under the 500-condition cap
            chunk = ids[start:start + 200]
            rows = self.client.query_all(entity, [{"op": "in", "field": "id", "value": chunk}],
                                         include_fields=fields)
            for row in rows:
                if isinstance(row.get("id"), int):
                    found[row["id"]] = row
        return found

    def prefetch(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Look up, in batches, the companies and contacts ``records`` name."""
        rows = list(records)
        companies = self._missing(self._companies, (
            r["companyID"] for r in rows if _positive(r.get("companyID"))))
        contacts = self._missing(self._contacts, (
            r["contactID"] for r in rows if _positive(r.get("contactID"))))
        if companies:
            fetched = self._fetch("Companies", companies, ["id", "companyName"])
            for cid in companies:
                name = fetched.get(cid, {}).get("companyName")
                self._store(self._companies, cid, name if isinstance(name, str) else None)
        if contacts:
            fetched = self._fetch("Contacts", contacts,
                                  ["id", "firstName", "lastName", "emailAddress"])
            for cid in contacts:
                row = fetched.get(cid)
                self._store(self._contacts, cid, _contact(row) if row else None)

    def company_name(self, company_id: Any) -> str | None:
        """The cached company name (call ``prefetch`` first)."""
        if not _positive(company_id):
            return None
        with self._lock:
            hit = self._companies.get(company_id)
        return hit[1] if hit else None

    def contact(self, contact_id: Any) -> dict[str, Any] | None:
        """The cached contact ``{id, name, email}`` (call ``prefetch`` first)."""
        if not _positive(contact_id):
            return None
        with self._lock:
            hit = self._contacts.get(contact_id)
        return dict(hit[1]) if hit and hit[1] else None


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _contact(row: Mapping[str, Any]) -> dict[str, Any]:
    first, last = row.get("firstName") or "", row.get("lastName") or ""
    name = f"{first} {last}".strip() or None
    return {"id": row.get("id"), "name": name, "email": row.get("emailAddress") or None}


class Resolver:
    """Builds the :class:`Names` of records (picklists + directory) for events.py."""

    def __init__(self, picklists: Picklists, directory: Directory) -> None:
        self.picklists = picklists
        self.directory = directory

    def names(self, entity: str, record: Mapping[str, Any],
              fields: Mapping[str, str]) -> Names:
        """Labels, company name and contact of one record (directory prefetched)."""
        return Names(labels=self.picklists.labels_for(entity, record, fields),
                     company_name=self.directory.company_name(record.get("companyID")),
                     contact=self.directory.contact(record.get("contactID")))

    def resource_id(self, username: str) -> int:
        """The API user's resource id (``Resources`` by ``userName``, then by email).

        Raises:
            NotFound: no resource has that user name.
        """
        for field in ("userName", "email"):
            rows = self.picklists.client.query_all(
                "Resources", [{"op": "eq", "field": field, "value": username}],
                include_fields=["id", "userName", "email"])
            for row in rows:
                if _positive(row.get("id")):
                    return int(row["id"])
        raise NotFound("no Autotask resource has the API user's user name")

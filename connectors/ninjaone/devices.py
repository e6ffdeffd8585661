"""Which organization a device belongs to: the API's device records, cached an hour.

Activities carry only ``deviceId``; the event's client is the device's organization. A
poll looks its unknown devices up in batches with one device filter
(``df=id in (...)`` on ``/v2/devices-detailed``); a webhook re-reads its one device
(``GET /v2/device/{id}``), never trusting the body's expanded copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from connectors.base import NotFound
from connectors.ninjaone.client import NinjaOneClient, Record
from connectors.ninjaone.filters import device_filter

TTL = 3600.0
MAX_ENTRIES = 10_000
BATCH = 100


def _device_id(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


class DeviceCache:
    """Device records by id (None: the API has no such device, e.g. deleted since)."""

    def __init__(self, client: NinjaOneClient, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._entries: dict[int, tuple[float, Record | None]] = {}
        self._guard = threading.Lock()  # a poll and an enrichment may share the connector

    def _store(self, device_id: int, record: Record | None) -> None:
        with self._guard:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[device_id] = (self._clock(), record)

    def _cached(self, device_id: int) -> tuple[bool, Record | None]:
        with self._guard:
            entry = self._entries.get(device_id)
        if entry is None or self._clock() - entry[0] >= TTL:
            return False, None
        return True, entry[1]

    def prefetch(self, device_ids: Iterable[object]) -> None:
        """Load every device not cached yet, ``BATCH`` per request."""
        wanted = sorted({i for i in map(_device_id, device_ids)
                         if i is not None and not self._cached(i)[0]})
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start:start + BATCH]
            found = {r.get("id"): r for r in self._client.devices(
                df=device_filter(devices=batch))}
            for device_id in batch:
                self._store(device_id, found.get(device_id))

    def get(self, device_id: object, *, fresh: bool = False) -> Record | None:
        """The device's record (``fresh``: read it from the API now)."""
        ident = _device_id(device_id)
        if ident is None:
            return None
        hit, record = self._cached(ident)
        if hit and not fresh:
            return record
        try:
            record = self._client.device(ident)
        except NotFound:
            record = None
        self._store(ident, record)
        return record

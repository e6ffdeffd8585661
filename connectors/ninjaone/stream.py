"""The activity stream: walking ``/v2/activities`` down to the cursor, and its positions.

``/v2/activities`` lists newest first, so a page that comes back full (``pageSize`` items)
is *truncated*: activities between the cursor and that page's lowest id are still unseen.
A poll asks ``newerThan=<cursor - id_lookback>`` and, while pages come back full,
``olderThan=<lowest id seen>``; only after a short page does the cursor move to the
highest id of the walk. What it read is emitted oldest first in chunks; each chunk's
cursor is the highest id below which everything has been read, so every page's cursor is
safe to save. A walk longer than ``max_pages`` ends with a *resume* position
(``<low>~<top>~<progress>``): the next poll continues below the lowest id read, and the
cursor reaches ``top`` once the gap is closed. The first poll reads back ``backfill``
from NinjaOne's clock (the ``Date`` header) and ends at the newest id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import structlog

from connectors.base import Cursor, MalformedPayload, Page
from connectors.ninjaone.client import NinjaOneClient, Record
from connectors.ninjaone.config import NinjaOneConfig
from connectors.ninjaone.events import activity_id, parse_seconds
from hub.core.events import Event

log = structlog.get_logger()

CURSOR_VERSION = 1
_MAX_ID = 10**19  # ids are int64: 19 digits, so positions are fixed-width 20 digits
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only (str.isdigit also accepts '²')
# Turns read activities (oldest first) into events: (activities) -> events.
ToEvents = Callable[[list[Record]], list[Event]]


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
        if not all(_DIGITS.fullmatch(p) for p in parts):
            raise ValueError("not an activity position")
        if len(parts) == 1:
            return cls(int(parts[0]))
        if len(parts) == 3:
            low, top, progress = (int(p) for p in parts)
            below = _MAX_ID - progress
            if not low < below <= top:
                raise ValueError("inconsistent resume position")
            return cls(low, top, below)
        raise ValueError("not an activity position")


class ActivityStream:
    """Reads the activities after a position and yields them as pages of events."""

    def __init__(self, client: NinjaOneClient, config: NinjaOneConfig, to_events: ToEvents,
                 *, df: str | None, clock: Callable[[], datetime], source: str) -> None:
        self._client = client
        self._config = config
        self._to_events = to_events
        self._df = df
        self._clock = clock
        self._source = source

    def pages(self, start: Position | None) -> Iterator[Page]:
        """Pages of events after ``start`` (None: the first poll, a backfill)."""
        return self._first_run() if start is None else self._walk(start)

    def _chunks(self, records: list[Record], cursor_of: Callable[[int, bool], Position]
                ) -> Iterator[Page]:
        """Records oldest first in pages of ``page_size``; ``cursor_of(highest id, last)``."""
        ordered = sorted({activity_id(r): r for r in records}.values(), key=activity_id)
        size = self._config.page_size
        chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)] or [[]]
        for index, chunk in enumerate(chunks):
            highest = activity_id(chunk[-1]) if chunk else 0
            yield Page(self._to_events(chunk), Cursor(
                version=CURSOR_VERSION,
                position=cursor_of(highest, index == len(chunks) - 1).encode()))

    def _first_run(self) -> Iterator[Page]:
        """Read back ``backfill`` on NinjaOne's clock; the cursor ends at the newest id."""
        older_than: int | None = None
        top, floor = 0, None
        kept: list[Record] = []
        for _ in range(self._config.max_pages):
            page = self._client.activities(older_than=older_than, df=self._df)
            if floor is None:
                floor = (page.server_time or self._clock()) - self._config.backfill
                top = max([activity_id(a) for a in page.items] + [page.last_activity_id or 0])
            fresh = [a for a in page.items if _at_or_after(a, floor)]
            kept += fresh
            if len(page.items) < self._config.page_size or len(fresh) < len(page.items):
                break
            older_than = min(activity_id(a) for a in page.items)
        else:
            log.warning("poll_backfill_truncated", source=self._source,
                        pages=self._config.max_pages)

        def cursor_of(highest: int, last: bool) -> Position:
            return Position(top if last else highest)

        yield from self._chunks(kept, cursor_of)

    def _walk(self, start: Position) -> Iterator[Page]:
        """Read every activity above the cursor, down to it."""
        floor = max(0, start.low - self._config.id_lookback)
        older_than, top = start.below, start.top
        read: list[Record] = []
        complete = False
        for _ in range(self._config.max_pages):
            page = self._client.activities(newer_than=floor, older_than=older_than, df=self._df)
            ids = [activity_id(a) for a in page.items]
            if top is None:
                top = max([*ids, start.low])
            read += page.items
            if len(ids) < self._config.page_size:
                complete = True
                break
            older_than = min(ids)  # truncated: what lies between is still unseen
        end = start.low if top is None else top  # (the loop runs at least once)
        if complete:
            def settled(highest: int, last: bool) -> Position:
                if last:
                    return Position(max(end, start.low))
                return Position(highest) if highest > start.low else start

            yield from self._chunks(read, settled)
            return
        below = older_than if older_than is not None else end
        log.info("poll_walk_resumes", source=self._source, low=start.low, top=end, below=below)

        def resume(highest: int, last: bool) -> Position:
            return Position(start.low, end, below) if last else start

        yield from self._chunks(read, resume)


def _at_or_after(activity: Record, floor: datetime) -> bool:
    try:
        return parse_seconds(activity.get("activityTime"), "activityTime") >= floor
    except MalformedPayload:
        return True  # kept: turning it into an event logs and skips it

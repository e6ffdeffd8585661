"""The write-back contract every PSA connector shares: one marker format, one way to find it.

Every write the hub makes to a ticket (a note, an attachment) carries the marker of its
idempotency key. After a write that may have reached the vendor (a timeout, a 5xx after
the vendor applied it) the hub looks for the marker before writing again, so a note or a
document lands once however often delivery is retried. Vendors differ only in where the
marker lives (note text, attachment title or file name) and how recent items are listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MARKER_PREFIX = "[msphub:"


def marker(key: str) -> str:
    """The idempotency marker for ``key``, embedded in note texts and attachment titles."""
    return f"{MARKER_PREFIX}{key}]"


def with_marker(text: str, key: str) -> str:
    """``text`` ending with ``key``'s marker (unchanged when it already carries it)."""
    mark = marker(key)
    return text if mark in text else f"{text}\n\n{mark}"


def marked_title(title: str, key: str, max_length: int) -> str:
    """``title`` cut so that it and ``key``'s marker fit in ``max_length`` characters."""
    mark = marker(key)
    room = max_length - len(mark) - 1
    if room < 1:
        raise ValueError(f"a title of {max_length} characters cannot hold the marker {mark}")
    return f"{title[:room].rstrip()} {mark}"


def find_marked(records: Iterable[Mapping[str, Any]], key: str,
                fields: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The first record whose ``fields`` (any of them) carry ``key``'s marker."""
    mark = marker(key)
    for record in records:
        if any(mark in str(record.get(field) or "") for field in fields):
            return record
    return None


def has_hub_marker(text: object) -> bool:
    """True when ``text`` carries a marker of the hub's own (an echo of our write)."""
    return isinstance(text, str) and MARKER_PREFIX in text

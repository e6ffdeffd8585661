"""Did-you-mean for near misses of known names (``ticket.bord`` → ``ticket.board``)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

CUTOFF = 0.6
"""difflib ratio a candidate needs: ``enginer``/``engineer`` 0.93, ``ncentrall`` 0.95,
unrelated names of similar length stay well under it."""


def did_you_mean(word: str, candidates: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """The known name closest to ``word`` (case-insensitive), or None when none is close."""
    by_folded: dict[str, str] = {}
    for name in candidates:
        by_folded.setdefault(name.casefold(), name)
    folded = word.casefold()
    if folded in by_folded and by_folded[folded] != word:
        return by_folded[folded]  # only the case differs
    matches = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=cutoff)
    return by_folded[matches[0]] if matches and by_folded[matches[0]] != word else None


def hint(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else an empty string (to append)."""
    match = did_you_mean(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""


def listing(names: Iterable[str], *, limit: int = 30) -> str:
    """Names for a message, comma-separated; long lists end in ``… (N more)``."""
    items = sorted(set(names))
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} … ({len(items) - limit} more)"


_LISTED = re.compile(r"unknown (?P<what>[\w ]+?) '(?P<word>[^']+)' "
                     r"\((?P<label>[\w ]+): (?P<names>[^)]*)\)")


def hint_listed(message: str) -> str:
    """Add "did you mean" to a message of the form ``unknown member 'caroll' (members:
    alice, carol)`` written by code that lists the names but does not suggest one."""
    match = _LISTED.search(message)
    if match is None or "did you mean" in message:
        return message
    names = [n.strip().strip("'") for n in match["names"].split(",")]
    suggestion = hint(match["word"], names)
    if not suggestion:
        return message
    end = match.start("word") + len(match["word"]) + 1
    return message[:end] + suggestion + message[end:]

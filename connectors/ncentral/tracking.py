"""What was active at the previous poll, carried in the poll cursor (pure, no I/O).

N-central lists only what is active now, so "resolved" means "listed at the previous poll
and not now". That previous set must survive a restart and is saved by the hub with the
events of the same page, so it lives in the cursor's ``position``:

```
2024-07-16T14:00:00.000Z~0000000042~<base64url(zlib(JSON))>
   N-central's clock      run number   the remembered issues
```

The clock (never going back) and the run number (one more per run) come first, so
positions of one stream sort in run order (the hub refuses a cursor that goes back). The
JSON is ``{"b": baselined, "i": [[taskId, orgUnitId, alert], ...]}``: each remembered
occurrence with the org unit it was listed under and its normalized ``alert`` (so its
``alert.resolved`` can be built after N-central stopped listing it).

:func:`reconcile` is the diff. An occurrence not listed this run is resolved only when the
org unit it was listed under was read **completely** this run; when that listing failed,
was truncated or warned, it is carried over unchanged (never a mass "resolved" from a
failed page); when its org unit no longer exists (absent from complete listings) it is
dropped without an event.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import MalformedPayload
from connectors.ncentral.events import format_time, parse_time

SEPARATOR = "~"
MAX_STATE_BYTES = 64 * 1024 * 1024  # decompressed bound (a cursor is our own data)


@dataclass(frozen=True)
class Known:
    """An issue occurrence remembered as active: its task, org unit and ``alert`` data."""

    task: int
    org_unit: int
    alert: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class State:
    """The stream's position: clock, run number, whether the first run finished, issues."""

    stamp: datetime
    seq: int
    baselined: bool
    issues: dict[int, Known]


def encode(state: State) -> str:
    """The cursor position for ``state`` (fixed-width prefix, compressed issues)."""
    rows = [[k.task, k.org_unit, k.alert] for k in sorted(state.issues.values(),
                                                          key=lambda k: k.task)]
    raw = json.dumps({"b": state.baselined, "i": rows}, separators=(",", ":"),
                     sort_keys=True, ensure_ascii=False).encode()
    packed = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    return SEPARATOR.join((format_time(state.stamp), f"{state.seq:010d}", packed))


def _unpack(text: str) -> Any:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_STATE_BYTES)
        if inflater.unconsumed_tail:
            raise MalformedPayload("cursor state is too large")
        return json.loads(raw)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise MalformedPayload(f"cursor state is unreadable ({type(exc).__name__})") from None


def decode(position: str) -> State:
    """The state in a position written by :func:`encode`.

    Raises:
        MalformedPayload: the position is not ours or is damaged.
    """
    parts = position.split(SEPARATOR)
    if len(parts) != 3 or not parts[1].isdigit():
        raise MalformedPayload("cursor position is not an N-central issue state")
    stamp = parse_time(parts[0], "cursor.stamp")
    body = _unpack(parts[2])
    if not isinstance(body, dict) or not isinstance(body.get("i"), list):
        raise MalformedPayload("cursor state has no issue list")
    issues: dict[int, Known] = {}
    for row in body["i"]:
        if (not isinstance(row, list) or len(row) != 3 or not isinstance(row[0], int)
                or not isinstance(row[1], int) or not isinstance(row[2], dict)):
            raise MalformedPayload("cursor state has a damaged issue")
        issues[row[0]] = Known(row[0], row[1], row[2])
    return State(stamp=stamp, seq=int(parts[1]), baselined=bool(body.get("b")), issues=issues)


@dataclass(frozen=True)
class Outcome:
    """The diff of one run: occurrences resolved, the next remembered set, those dropped."""

    resolved: list[Known]
    remembered: dict[int, Known]
    carried: list[Known]
    dropped: list[Known]


def reconcile(previous: dict[int, Known], seen: dict[int, Known], complete: set[int],
              existing: set[int] | None) -> Outcome:
    """Diff the previous active set against what this run listed.

    Args:
        previous: the occurrences remembered from the last run, by task.
        seen: the occurrences listed this run, by task (a task already remembered keeps
            its remembered entry, so its occurrence and keys do not change).
        complete: org units whose active issues were read completely this run.
        existing: every org unit that exists, when complete listings say so; else None.
    """
    remembered = dict(seen)
    resolved: list[Known] = []
    carried: list[Known] = []
    dropped: list[Known] = []
    for task, known in sorted(previous.items()):
        if task in seen:
            continue
        if known.org_unit in complete:
            resolved.append(known)
        elif existing is not None and known.org_unit not in existing:
            dropped.append(known)
        else:
            remembered[task] = known
            carried.append(known)
    return Outcome(resolved, remembered, carried, dropped)

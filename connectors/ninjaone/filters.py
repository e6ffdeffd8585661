"""NinjaOne's device filter (``df``) syntax, built from typed parts (pure).

The syntax is NinjaOne's "Public API v2.0.5 Device Filter Syntax" (linked from the spec's
description; vendor notes §2.3): clauses joined by `` AND ``, each ``<field> = <value>``
or ``<field> in (<v1>,<v2>)``, plus the bare words ``online`` / ``offline``; e.g.
``org = 41``, ``org in (2,5) AND class in (WINDOWS_SERVER,WINDOWS_WORKSTATION)``.
Values are ids or enum words only, so nothing an admin or a payload typed is pasted in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


def _clause(field: str, values: Iterable[int | str]) -> str:
    items = list(values)
    if not items:
        raise ValueError(f"device filter {field}: no values")
    for item in items:
        if isinstance(item, bool) or not (
                (isinstance(item, int) and item >= 0)
                or (isinstance(item, str) and _WORD.fullmatch(item))):
            raise ValueError(f"device filter {field}: {item!r} is not an id or enum word")
    if len(items) == 1:
        return f"{field} = {items[0]}"
    return f"{field} in ({','.join(str(i) for i in items)})"


def device_filter(
    *,
    organizations: Iterable[int] | None = None,
    locations: Iterable[int] | None = None,
    devices: Iterable[int] | None = None,
    classes: Iterable[str] | None = None,
    online: bool | None = None,
) -> str | None:
    """The ``df`` value selecting devices by organization, location, id, class and state.

    Returns None when nothing is selected (send no ``df``: every device).

    Raises:
        ValueError: an empty list, a negative id, or a class that is not an enum word.
    """
    clauses = []
    for field, values in (("org", organizations), ("loc", locations), ("id", devices),
                          ("class", classes)):
        if values is not None:
            clauses.append(_clause(field, values))
    if online is not None:
        clauses.append("online" if online else "offline")
    return " AND ".join(clauses) or None

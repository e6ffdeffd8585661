"""The NinjaOne sandbox's reading of the device filter (``df``) syntax subset."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
_CLAUSE = re.compile(r"^(org|loc|id|class)\s*(=|in)\s*(.+)$")


class FilterError(ValueError):
    """A device filter the sandbox cannot read (answered 400)."""


def _state_test(offline: bool) -> Callable[[Record], bool]:
    return lambda device: bool(device.get("offline")) == offline


def _field_test(key: str, values: set[str]) -> Callable[[Record], bool]:
    return lambda device: str(device.get(key)) in values


def device_matcher(df: str | None) -> Callable[[Record], bool]:
    """A predicate for the device filter syntax subset (see the module docstring)."""
    if not df:
        return lambda device: True
    tests: list[Callable[[Record], bool]] = []
    for raw in re.split(r"\s+AND\s+", df.strip()):
        clause = raw.strip()
        if clause in ("online", "offline"):
            tests.append(_state_test(clause == "offline"))
            continue
        match = _CLAUSE.match(clause)
        if match is None:
            raise FilterError(f"unsupported device filter clause {clause!r}")
        field, op, value = match.groups()
        if op == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise FilterError("'in' needs a parenthesised list")
            values = {v.strip() for v in value[1:-1].split(",") if v.strip()}
        else:
            values = {value.strip()}
        key = {"org": "organizationId", "loc": "locationId", "id": "id",
               "class": "nodeClass"}[field]
        tests.append(_field_test(key, values))
    return lambda device: all(test(device) for test in tests)

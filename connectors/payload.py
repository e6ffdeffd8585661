"""Bounded parsing of untrusted webhook input: JSON, ids, timestamps and header values.

Every receiver parses what a stranger sent, before (or while) deciding whether to trust
it, so each function here is *total*: it returns a value or raises
:class:`~connectors.base.MalformedPayload` (an HTTP 400), never ``RecursionError``,
``OverflowError``, ``TypeError`` or a 5,000-digit ``int``.

Bounds (the same for every connector, so a body is accepted or refused alike on SQLite
and PostgreSQL):

* JSON nesting at most :data:`MAX_DEPTH` levels (checked *before* ``json.loads`` recurses);
* strings (values and keys) at most :data:`MAX_STRING` characters, with no NUL and no lone
  UTF-16 surrogate (PostgreSQL ``jsonb`` refuses both; SQLite would store them);
* numbers finite (no ``NaN``, ``Infinity`` or ``1e400``) and integers within 64 bits;
* timestamps between :data:`EARLIEST` and :data:`LATEST` (so converting one to UTC never
  overflows);
* digits only ``[0-9]`` (``str.isdigit`` also accepts ``²`` and ``¹``).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from connectors.base import MalformedPayload

MAX_DEPTH = 32
MAX_STRING = 100_000
MAX_INT = 2**63 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")


def _reject_constant(name: str) -> Any:
    raise MalformedPayload(f"number {name} is not allowed")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedPayload(f"number {text[:40]} is out of range")
    return value


def _parse_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 19 or abs(int(text)) > MAX_INT:
        raise MalformedPayload(f"integer {text[:40]}… is out of range")
    return int(text)


def json_depth(text: str, *, stop_above: int | None = None) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, without recursing (strings skipped).

    Counting stops as soon as the depth exceeds ``stop_above`` (when given).
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def check_value(value: Any, where: str = "body", *, max_depth: int = MAX_DEPTH) -> None:
    """Check a decoded JSON-like value against the bounds (iteratively: no recursion).

    Raises:
        MalformedPayload: too deep, a bad string, or a number out of range; names where.
    """
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise MalformedPayload(f"'{path}' is nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise MalformedPayload(f"'{path}' has a key that is not a string")
                    check_string(key, f"{path} key")
                    stack.append((child, f"{path}.{key[:40]}", depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            check_string(item, path)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_INT:
                raise MalformedPayload(f"'{path}' is an integer out of range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise MalformedPayload(f"'{path}' is not a finite number")
        else:
            raise MalformedPayload(f"'{path}' is not a JSON value")


def check_string(value: str, where: str, *, max_length: int = MAX_STRING) -> None:
    """A string the stores accept alike: bounded, no NUL, no lone surrogate.

    Raises:
        MalformedPayload: naming ``where``.
    """
    if len(value) > max_length:
        raise MalformedPayload(f"'{where}' is longer than {max_length} characters")
    if _BAD_CHAR.search(value):
        raise MalformedPayload(f"'{where}' contains a NUL or an unpaired surrogate character")


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON within the bounds.

    Raises:
        MalformedPayload: not UTF-8 JSON, or outside a bound (the message says which).
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8") from None
    if json_depth(text, stop_above=max_depth) > max_depth:
        raise MalformedPayload(f"JSON is nested more than {max_depth} levels deep")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float,
                           parse_int=_parse_int)
    except MalformedPayload:
        raise
    except (ValueError, RecursionError):
        raise MalformedPayload("body is not valid JSON") from None
    check_value(value, max_depth=max_depth + 1)
    return value


def digits(value: Any, where: str, *, max_digits: int = 18) -> int:
    """An integer written with ASCII digits only (``"42"`` or ``42``), at most ``max_digits``.

    Raises:
        MalformedPayload: missing, a bool, negative, not ``[0-9]``, or too long.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedPayload(f"field '{where}' is missing or not an integer id")
    text = str(value)
    if not (0 < len(text) <= max_digits) or not _ASCII_DIGITS.fullmatch(text):
        raise MalformedPayload(f"field '{where}' is missing or not an integer id")
    return int(text)


def in_window(value: datetime, where: str) -> datetime:
    """``value`` (aware) as UTC, refused outside the sane window.

    Raises:
        MalformedPayload: naive, or before :data:`EARLIEST` / after :data:`LATEST`.
    """
    if value.tzinfo is None:
        raise MalformedPayload(f"field '{where}' has no timezone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise MalformedPayload(f"field '{where}' is outside the supported dates") from None
    if not EARLIEST <= utc <= LATEST:
        raise MalformedPayload(
            f"field '{where}' is outside {EARLIEST:%Y-%m-%d}..{LATEST:%Y-%m-%d}")
    return utc


def header_text(value: str | None, *, max_length: int = 512) -> str:
    """A header value as printable ASCII, stripped, or "" when absent, non-ASCII or too long.

    Signature and timestamp headers are compared as bytes; anything else cannot match.
    """
    if value is None:
        return ""
    value = value.strip()
    if len(value) > max_length or not value.isascii() or not value.isprintable():
        return ""
    return value

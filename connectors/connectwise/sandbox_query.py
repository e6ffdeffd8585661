"""The sandbox's subset of ConnectWise query syntax: ``conditions`` and ``orderBy``.

Supported: ``field op value`` terms joined by ``and`` / ``or`` (``and`` binds tighter)
with parentheses; operators ``= != < <= > >= contains like in``; values ``"text"``,
``[2024-05-01T12:00:00Z]``, numbers, ``true``/``false``/``null`` and ``(v1, v2)`` lists.
Nested fields use ``/`` (``board/name``); a name missing at the top level is looked up
in ``_info`` (``lastUpdated``). Strings compare case-insensitively, like the vendor's SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<date>\[[^\]]*\])|(?P<op><=|>=|!=|=|<|>)'
    r"|(?P<paren>[(),])|(?P<word>[A-Za-z0-9_/.\-:+]+))"
)


class QueryError(ValueError):
    """The conditions or orderBy expression is not understood (→ HTTP 400)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip():
                raise QueryError(f"cannot parse conditions near {text[pos : pos + 20]!r}")
            break
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def field_value(record: Record, path: str) -> Any:
    """Resolve ``board/name``; a top-level miss falls back to ``_info``."""
    parts = path.split("/")
    if parts[0] not in record and isinstance(record.get("_info"), dict):
        current: Any = record["_info"]
    else:
        current = record
    if parts[0] == "_info":
        parts = parts[1:]
        current = record.get("_info") or {}
    for part in parts:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    return value


def _literal(kind: str, text: str) -> Any:
    if kind == "str":
        return text[1:-1].replace('\\"', '"')
    if kind == "date":
        when = datetime.fromisoformat(text[1:-1].strip().replace("Z", "+00:00"))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")  # records store this sortable form
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise QueryError(f"bad value {text!r}") from None


def _compare(op: str, left: Any, right: Any) -> bool:
    left, right = _normalize(left), _normalize(right)
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "in":
        return left in [_normalize(v) for v in right]
    if op == "contains":
        return isinstance(left, str) and str(right) in left
    if op == "like":
        return isinstance(left, str) and fnmatchcase(left, str(right))
    if left is None or right is None:
        return False
    try:
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        )
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("conditions end too early")
        self.pos += 1
        return token

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while (t := self.peek()) and t[0] == "word" and t[1].lower() == "or":
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda r: any(p(r) for p in terms))

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while (t := self.peek()) and t[0] == "word" and t[1].lower() == "and":
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda r: all(p(r) for p in terms))

    def term(self) -> Predicate:
        kind, text = self.take()
        if (kind, text) == ("paren", "("):
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise QueryError("missing ')'")
            return inner
        if kind != "word":
            raise QueryError(f"expected a field name, got {text!r}")
        field = text
        op_kind, op = self.take()
        if op_kind == "word" and op.lower() in ("contains", "like", "in"):
            op = op.lower()
        elif op_kind != "op":
            raise QueryError(f"expected an operator after {field!r}")
        value = self.values() if op == "in" else _literal(*self.take())
        return lambda r: _compare(op, field_value(r, field), value)

    def values(self) -> list[Any]:
        if self.take() != ("paren", "("):
            raise QueryError("'in' needs a (list)")
        items = []
        while True:
            items.append(_literal(*self.take()))
            sep = self.take()
            if sep == ("paren", ")"):
                return items
            if sep != ("paren", ","):
                raise QueryError("bad list after 'in'")


def compile_conditions(text: str | None) -> Predicate:
    """A predicate for a ``conditions`` string (everything matches when empty)."""
    if not text or not text.strip():
        return lambda _r: True
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise QueryError("unexpected text after conditions")
    return predicate


def sort_records(rows: list[Record], order_by: str | None) -> list[Record]:
    """Sort by ``orderBy`` (``"_info/lastUpdated asc, id asc"``); default ``id asc``."""
    keys = [k.split() for k in (order_by or "id asc").split(",") if k.strip()]
    out = list(rows)
    for parts in reversed(keys):
        if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise QueryError(f"bad orderBy {' '.join(parts)!r}")
        field, desc = parts[0], len(parts) == 2 and parts[1].lower() == "desc"

        def key(r: Record, f: str = field) -> tuple[bool, Any]:
            value = _normalize(field_value(r, f))
            return (value is None, value if value is not None else 0)

        out.sort(key=key, reverse=desc)
    return out

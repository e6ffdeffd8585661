"""A small closed condition language shared by mapping rules (``if``) and playbook steps (``when``).

Written in YAML as a mapping of dotted field paths to tests; every entry must hold::

    ticket.type: Leaver                       # equality
    ticket.board: {in: [Service Desk, HR]}    # any of
    ticket.summary: {matches: "(?i)leaver"}   # regular expression (search)
    ticket.priority: {gte: 2, lt: 5}          # several operators: all must hold
    ticket.contact.email: {exists: true}
    any: [{ticket.type: Leaver}, {ticket.subType: Leaver}]
    all: [...]
    not: {ticket.status: Closed}

Operators: eq, ne, in, not_in, matches, exists, gt, gte, lt, lte; combinators any, all, not.
Nothing is ever evaluated as code.

:func:`evaluate` interprets a condition tree (the reference semantics);
:func:`compile_condition` turns the same tree, once, into a closure of small bound
callables with the paths pre-split and string operands pre-folded, for the rule engine's
hot path. Both give the same answer for every condition and context.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from hub.core.events import lookup

Op = Literal["eq", "ne", "in", "not_in", "matches", "exists", "gt", "gte", "lt", "lte"]
OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "matches", "exists", "gt", "gte", "lt", "lte",
)
COMBINATORS: tuple[str, ...] = ("any", "all", "not")


class ConditionSyntaxError(ValueError):
    """A condition is malformed; ``loc`` is the path inside the condition."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        self.loc = loc
        super().__init__(message)


@dataclass(frozen=True)
class FieldTest:
    """One operator applied to one field."""

    path: str
    op: str
    value: Any
    pattern: re.Pattern[str] | None = None

    def describe(self) -> str:
        """Readable form, e.g. ``ticket.type == 'Leaver'``."""
        symbol = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        if self.op in symbol:
            return f"{self.path} {symbol[self.op]} {self.value!r}"
        return f"{self.path} {self.op} {self.value!r}"


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = FieldTest | AllOf | AnyOf | Not
TRUE = AllOf(())


def parse_condition(spec: Any, loc: tuple[str | int, ...] = ()) -> Condition:
    """Compile a YAML condition into a condition tree.

    Raises:
        ConditionSyntaxError: unknown operator, bad regex, wrong value type; ``loc`` says where.
    """
    if spec is None:
        return TRUE
    if not isinstance(spec, dict):
        raise ConditionSyntaxError("a condition must be a mapping of field: test", loc)
    items: list[Condition] = []
    for key, value in spec.items():
        if not isinstance(key, str) or not key:
            raise ConditionSyntaxError("condition keys must be field paths", loc)
        where = (*loc, key)
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise ConditionSyntaxError(f"'{key}' takes a non-empty list of conditions", where)
            subs = tuple(parse_condition(v, (*where, i)) for i, v in enumerate(value))
            items.append(AnyOf(subs) if key == "any" else AllOf(subs))
        elif key == "not":
            items.append(Not(parse_condition(value, where)))
        elif isinstance(value, dict):
            if not value:
                raise ConditionSyntaxError("empty operator mapping", where)
            for op, operand in value.items():
                items.append(_field_test(key, str(op), operand, (*where, str(op))))
        else:
            items.append(_field_test(key, "eq", value, where))
    return items[0] if len(items) == 1 else AllOf(tuple(items))


def _field_test(path: str, op: str, operand: Any, loc: tuple[str | int, ...]) -> FieldTest:
    if op not in OPERATORS:
        raise ConditionSyntaxError(
            f"unknown operator '{op}' (allowed: {', '.join(OPERATORS)})", loc
        )
    if op in ("in", "not_in") and not isinstance(operand, list):
        raise ConditionSyntaxError(f"'{op}' takes a list", loc)
    if op == "exists" and not isinstance(operand, bool):
        raise ConditionSyntaxError("'exists' takes true or false", loc)
    if op in ("gt", "gte", "lt", "lte") and not isinstance(operand, int | float | str | date):
        raise ConditionSyntaxError(f"'{op}' takes a number, date or string", loc)
    pattern = None
    if op == "matches":
        if not isinstance(operand, str):
            raise ConditionSyntaxError("'matches' takes a regular expression string", loc)
        try:
            pattern = re.compile(operand)
        except re.error as exc:
            raise ConditionSyntaxError(f"invalid regular expression: {exc}", loc) from exc
    return FieldTest(path=path, op=op, value=operand, pattern=pattern)


_DATES = (datetime, date)


def _norm(value: Any) -> Any:
    if isinstance(value, _DATES):  # a tuple: no union object built per call
        return value.isoformat()
    return value


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    return bool(_norm(actual) == _norm(expected))


def _compare(actual: Any, op: str, expected: Any) -> bool:
    a, e = _norm(actual), _norm(expected)
    try:
        if isinstance(e, int | float) and isinstance(a, str):
            a = float(a)
        if op == "gt":
            return bool(a > e)
        if op == "gte":
            return bool(a >= e)
        if op == "lt":
            return bool(a < e)
        return bool(a <= e)
    except (TypeError, ValueError):
        return False


def check_field(test: FieldTest, ctx: dict[str, Any]) -> bool:
    """Evaluate one field test against a context (missing fields never match, except exists)."""
    found, actual = lookup(ctx, test.path)
    op = test.op
    if op == "exists":
        return bool(found and actual is not None) == bool(test.value)
    if not found:
        return op in ("ne", "not_in")
    if op == "eq":
        return _equal(actual, test.value)
    if op == "ne":
        return not _equal(actual, test.value)
    if op == "in":
        return any(_equal(actual, v) for v in test.value)
    if op == "not_in":
        return not any(_equal(actual, v) for v in test.value)
    if op == "matches":
        assert test.pattern is not None  # set by _field_test for 'matches'
        return actual is not None and test.pattern.search(str(actual)) is not None
    return _compare(actual, op, test.value)


def evaluate(cond: Condition, ctx: dict[str, Any]) -> bool:
    """True when the condition holds for ``ctx``."""
    if isinstance(cond, FieldTest):
        return check_field(cond, ctx)
    if isinstance(cond, AllOf):
        return all(evaluate(c, ctx) for c in cond.items)
    if isinstance(cond, AnyOf):
        return any(evaluate(c, ctx) for c in cond.items)
    return not evaluate(cond.item, ctx)


def first_failure(cond: Condition, ctx: dict[str, Any]) -> str | None:
    """Describe the first part of ``cond`` that fails for ``ctx`` (for dry runs), or None."""
    if isinstance(cond, FieldTest):
        if check_field(cond, ctx):
            return None
        found, actual = lookup(ctx, cond.path)
        got = repr(actual) if found else "missing"
        return f"{cond.describe()} (got {got})"
    if isinstance(cond, AllOf):
        for c in cond.items:
            reason = first_failure(c, ctx)
            if reason:
                return reason
        return None
    if isinstance(cond, AnyOf):
        if evaluate(cond, ctx):
            return None
        reasons = [first_failure(c, ctx) or "?" for c in cond.items]
        return "none of: " + "; ".join(reasons)
    if evaluate(cond, ctx):
        return None
    return "not: the negated condition holds"


Check = Callable[[Any], bool]
"""A compiled condition: ``check(ctx) -> bool``."""
Getter = Callable[[Any], Any]
"""A compiled field path: ``get(ctx)`` is the value there, or :data:`MISSING`."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What a :data:`Getter` returns when a path segment is absent (``lookup``'s ``found=False``)."""


def path_getter(path: str) -> Getter:
    """Compile a dotted path once; the getter resolves it exactly like ``events.lookup``."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (a,) = parts

        def get1(ctx: Any) -> Any:
            return ctx.get(a, MISSING) if isinstance(ctx, dict) else MISSING

        return get1
    if len(parts) == 2:
        a, b = parts

        def get2(ctx: Any) -> Any:
            if not isinstance(ctx, dict):
                return MISSING
            mid = ctx.get(a, MISSING)
            return mid.get(b, MISSING) if isinstance(mid, dict) else MISSING

        return get2

    def get(ctx: Any) -> Any:
        current = ctx
        for part in parts:
            if not isinstance(current, dict):
                return MISSING
            current = current.get(part, MISSING)
        return current

    return get


def compile_condition(cond: Condition) -> Check:
    """Compile a condition tree once into a check with :func:`evaluate`'s exact semantics.

    Paths are pre-split, string operands casefolded once, ``in`` lists turned into sets,
    regexes already compiled and comparison operators bound; nothing is ``eval``-ed.
    """
    if isinstance(cond, FieldTest):
        return _compile_test(cond)
    if isinstance(cond, Not):
        inner = compile_condition(cond.item)
        return lambda ctx: not inner(ctx)
    checks = tuple(compile_condition(c) for c in cond.items)
    if isinstance(cond, AnyOf):
        if len(checks) == 1:
            return checks[0]

        def any_of(ctx: Any) -> bool:
            for check in checks:  # noqa: SIM110  (no generator per call on the hot path)
                if check(ctx):
                    return True
            return False

        return any_of
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda ctx: first(ctx) and second(ctx)

    def all_of(ctx: Any) -> bool:
        for check in checks:  # noqa: SIM110  (no generator per call on the hot path)
            if not check(ctx):
                return False
        return True

    return all_of


def _always(_ctx: Any) -> bool:
    return True


def _equality(expected: Any, *, negate: bool) -> Callable[[Any], bool]:
    """``v -> (v found and _equal(v, expected))``, or its negation, as one small function."""
    if isinstance(expected, str):
        folded = expected.casefold()
        if negate:
            def ne_text(v: Any) -> bool:
                if isinstance(v, str):
                    return v.casefold() != folded
                return v is MISSING or not bool(_norm(v) == expected)

            return ne_text

        def eq_text(v: Any) -> bool:
            if isinstance(v, str):
                return v.casefold() == folded
            return v is not MISSING and bool(_norm(v) == expected)

        return eq_text
    normed = _norm(expected)
    if negate:
        return lambda v: v is MISSING or not bool(_norm(v) == normed)
    return lambda v: v is not MISSING and bool(_norm(v) == normed)


def _membership(values: list[Any], *, negate: bool) -> Callable[[Any], bool]:
    """``v -> (v found and any(_equal(v, x) for x in values))``, or its negation."""
    folded = frozenset(v.casefold() for v in values if isinstance(v, str))
    others = tuple(_norm(v) for v in values if not isinstance(v, str))
    everything = tuple(_norm(v) for v in values)

    def member(v: Any) -> bool:
        if isinstance(v, str):
            # str vs str compares casefolded; str vs a non-str value compares as written
            return v.casefold() in folded or (bool(others) and any(v == x for x in others))
        if v is MISSING:
            return False
        normed = _norm(v)
        return any(normed == x for x in everything)

    if negate:
        return lambda v: not member(v)
    return member


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


def _compile_test(test: FieldTest) -> Check:
    holds = _value_test(test)
    parts = tuple(test.path.split("."))
    # the path lookup is inlined for the common one- and two-segment paths (one frame less)
    if len(parts) == 1:
        (a,) = parts
        return lambda ctx: holds(ctx.get(a, MISSING) if isinstance(ctx, dict) else MISSING)
    if len(parts) == 2:
        a, b = parts

        def check2(ctx: Any) -> bool:
            mid = ctx.get(a, MISSING) if isinstance(ctx, dict) else MISSING
            return holds(mid.get(b, MISSING) if isinstance(mid, dict) else MISSING)

        return check2
    get = path_getter(test.path)
    return lambda ctx: holds(get(ctx))


def _value_test(test: FieldTest) -> Callable[[Any], bool]:
    """The test on the value at the path (``MISSING`` when absent), operands prepared once."""
    op = test.op
    if op == "exists":
        wanted = bool(test.value)
        return lambda v: (v is not MISSING and v is not None) == wanted
    if op in ("eq", "ne"):
        return _equality(test.value, negate=op == "ne")
    if op in ("in", "not_in"):
        return _membership(test.value, negate=op == "not_in")
    if op == "matches":
        assert test.pattern is not None  # set by _field_test for 'matches'
        search = test.pattern.search
        return lambda v: v is not MISSING and v is not None and search(str(v)) is not None
    order = _ORDER[op]
    expected = _norm(test.value)
    numeric = isinstance(expected, int | float)

    def compare(actual: Any) -> bool:
        if actual is MISSING:
            return False
        a = _norm(actual)
        try:
            if numeric and isinstance(a, str):
                a = float(a)
            return bool(order(a, expected))
        except (TypeError, ValueError):
            return False

    return compare


Explainer = Callable[[Any], str | None]
"""A compiled :func:`first_failure`: ``why(ctx)`` is None when the condition holds."""


def compile_explainer(cond: Condition) -> Explainer:
    """Compile :func:`first_failure` once: one pass gives the verdict and, on failure,
    the same reason text (the reason string is built only when the condition fails)."""
    if isinstance(cond, FieldTest):
        get, holds = path_getter(cond.path), _value_test(cond)
        described = cond.describe()
        parts = tuple(cond.path.split("."))

        def failed(value: Any) -> str:
            return f"{described} (got {'missing' if value is MISSING else repr(value)})"

        if len(parts) == 2:  # the common case, with the lookup inlined as in _compile_test
            a, b = parts

            def why_field2(ctx: Any) -> str | None:
                mid = ctx.get(a, MISSING) if isinstance(ctx, dict) else MISSING
                value = mid.get(b, MISSING) if isinstance(mid, dict) else MISSING
                return None if holds(value) else failed(value)

            return why_field2

        def why_field(ctx: Any) -> str | None:
            value = get(ctx)
            return None if holds(value) else failed(value)

        return why_field
    if isinstance(cond, Not):
        negated = compile_condition(cond.item)
        return lambda ctx: "not: the negated condition holds" if negated(ctx) else None
    whys = tuple(compile_explainer(c) for c in cond.items)
    if isinstance(cond, AnyOf):

        def why_any(ctx: Any) -> str | None:
            reasons = []
            for why in whys:  # one pass: a branch holds exactly when it has no reason
                reason = why(ctx)
                if reason is None:
                    return None
                reasons.append(reason)
            return "none of: " + "; ".join(reasons)

        return why_any
    if len(whys) == 1:
        return whys[0]

    def why_all(ctx: Any) -> str | None:
        for why in whys:
            reason = why(ctx)
            if reason:
                return reason
        return None

    return why_all


def equality_key(value: Any) -> Hashable:
    """The index key of a value: two values ``eq`` treats as equal have equal keys.

    Text is casefolded and dates become casefolded ISO text (``eq`` compares a date with
    text by its ISO form); numbers and booleans keep Python's equality (``1 == 1.0 ==
    True``). The result can be unhashable (a list): such a value equals no indexed one.
    """
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, datetime | date):
        return value.isoformat().casefold()
    return value  # type: ignore[no-any-return]  # Any in, the caller checks hashability


def equality_conjuncts(cond: Condition) -> list[tuple[str, frozenset[Hashable]]]:
    """The ``path eq v`` / ``path in [...]`` tests every match of ``cond`` must pass.

    Only tests in the top-level conjunction count (``all`` nested in it too). Each comes
    as ``(path, keys)``: the condition can only hold when the value at ``path`` is present
    and its :func:`equality_key` is one of ``keys``. Tests with an unhashable operand
    (a list compared with ``eq``) are left out.
    """
    out: list[tuple[str, frozenset[Hashable]]] = []
    stack: list[Condition] = [cond]
    while stack:
        item = stack.pop(0)
        if isinstance(item, AllOf):
            stack[:0] = item.items
        elif isinstance(item, AnyOf) and len(item.items) == 1:
            stack.insert(0, item.items[0])
        elif isinstance(item, FieldTest) and item.op in ("eq", "in"):
            values = item.value if item.op == "in" else [item.value]
            keys = [equality_key(v) for v in values]
            try:
                out.append((item.path, frozenset(keys)))
            except TypeError:
                continue
    return out


def fields_of(cond: Condition) -> set[str]:
    """Every field path a condition reads (to check them against known inputs)."""
    if isinstance(cond, FieldTest):
        return {cond.path}
    if isinstance(cond, AllOf | AnyOf):
        out: set[str] = set()
        for c in cond.items:
            out |= fields_of(c)
        return out
    return fields_of(cond.item)


CONDITION_JSON_SCHEMA: dict[str, Any] = {
    "$id": "#condition",
    "type": "object",
    "description": "Field paths mapped to a value (equality) or to {operator: operand}; "
    "'any', 'all' take lists of conditions, 'not' one condition.",
    "properties": {
        "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
        "all": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
        "not": {"$ref": "#/$defs/condition"},
    },
    "additionalProperties": {
        "anyOf": [
            {"type": ["string", "number", "boolean", "null"]},
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    "eq": {}, "ne": {},
                    "in": {"type": "array"}, "not_in": {"type": "array"},
                    "matches": {"type": "string", "format": "regex"},
                    "exists": {"type": "boolean"},
                    "gt": {}, "gte": {}, "lt": {}, "lte": {},
                },
            },
        ]
    },
}

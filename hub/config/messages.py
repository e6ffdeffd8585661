"""Validation errors in admin words: pydantic's wording (``Extra inputs are not permitted``,
``Input should be 'each', 'digest' or 'none'``) becomes a sentence about the file, with the
keys or values allowed there and a suggestion for a near miss."""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from hub.core.suggest import did_you_mean, hint, listing
from hub.errors import Loc

_QUOTED = re.compile(r"'([^']*)'")
_ID_PATTERN = "^[a-z0-9][a-z0-9_-]*$"
_SIMPLE: dict[str, str] = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list (one '- item' per line, or [a, b])",
    "tuple_type": "must be a list (one '- item' per line, or [a, b])",
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "date_type": "must be a date (YYYY-MM-DD)",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "datetime_type": "must be a date and time (YYYY-MM-DDTHH:MM:SSZ)",
    "datetime_parsing": "must be a date and time (YYYY-MM-DDTHH:MM:SSZ)",
}


def admin_message(err: ErrorDetails, model: type[BaseModel] | None = None) -> str:
    """One pydantic error as an admin reads it.

    Args:
        err: one item of ``ValidationError.errors()``.
        model: the model validated; lets an unknown key name the keys allowed there.
    """
    kind, ctx = err["type"], err.get("ctx") or {}
    loc: Loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = allowed_keys(model, loc[:-1]) if model is not None else []
        if not allowed:
            return f"unknown key '{key}'"
        return f"unknown key '{key}'{hint(key, allowed)} (allowed here: {listing(allowed)})"
    if kind == "missing":
        return f"'{loc[-1]}' is required" if loc else "a required key is missing"
    if kind in ("enum", "literal_error"):
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
        shown = f"'{value}'" if isinstance(value, str | int | float | bool) else "this value"
        return f"{shown} is not allowed here{hint(str(value), choices)}; use one of: " \
               f"{', '.join(choices)}"
    if kind in _SIMPLE:
        message = _SIMPLE[kind]
        if kind == "string_type" and isinstance(value, bool):
            message += " (YAML reads bare yes/no/on/off as true/false: quote the text)"
        return message
    return _bounds(kind, ctx, value) or _cleaned(str(err["msg"]))


def misspelt_key(errors: Sequence[ErrorDetails], err: ErrorDetails) -> str | None:
    """For a missing key, an unknown key beside it that is a near miss of its name."""
    if err["type"] != "missing" or not err["loc"]:
        return None
    *parent, name = err["loc"]
    for other in errors:
        *where, key = other["loc"] or ("",)
        if other["type"] == "extra_forbidden" and where == parent and isinstance(key, str) \
                and did_you_mean(key, [str(name)]) == name:
            return key
    return None


def _bounds(kind: str, ctx: Mapping[str, Any], value: Any) -> str | None:
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == _ID_PATTERN:
            return (f"'{value}' is not a valid id: use lower-case letters, digits, '-' and "
                    "'_', starting with a letter or digit")
        return f"'{value}' does not have the expected form ({ctx.get('pattern')})"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"needs at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"takes at most {ctx.get('max_length')} items"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    words = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
             "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in words:
        word, key = words[kind]
        return f"must be {word} {ctx.get(key)}"
    return None


def _cleaned(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def allowed_keys(model: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    """The keys a mapping at ``loc`` of ``model`` may have (aliases as written in YAML)."""
    target: Any = model
    for part in loc:
        target = _child(target, part)
        if target is None:
            return []
    return _keys(target)


def _members(tp: Any) -> list[Any]:
    """A type without Annotated / Optional wrappers; a union's members."""
    if get_origin(tp) is Annotated:
        return _members(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg) if m is not type(None)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _child(tp: Any, part: str | int) -> Any:
    for member in _members(tp):
        origin, args = get_origin(member), get_args(member)
        if _is_model(member):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
            if part == member.__name__:
                return member  # a union tag pydantic put in the path
        elif origin in (list, tuple, set, frozenset) and args and isinstance(part, int):
            return args[0]
        elif origin is dict and len(args) == 2:
            return args[1]
    return None


def _keys(tp: Any) -> list[str]:
    keys: list[str] = []
    for member in _members(tp):
        if _is_model(member):
            keys += [info.alias or name for name, info in member.model_fields.items()]
    return keys

"""Checks of a rule against the event field catalog: its ``from:`` names, the fields its
``if:`` tests and the fields its templates read (where the path is written out)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from hub.core.mapping.engine import source_key
from hub.core.mapping.fields import FieldCatalog, unknown_field
from hub.core.mapping.schema import Rule
from hub.core.mapping.templates import Template, make_environment
from hub.core.suggest import hint, listing
from hub.errors import Loc

Problem = tuple[str, Loc]
"""A message in admin words and where it is, relative to the rule."""
_GLOBALS = frozenset(make_environment().globals)
"""Names templates have besides the event's (``range``, ``dict`` ...): not fields."""


def source_problems(rule: Rule, known: Collection[str]) -> Iterator[Problem]:
    """``from:`` names that are neither a vendor nor a configured instance."""
    keys = {source_key(k) for k in known}
    for i, name in enumerate(rule.from_ or ()):
        if source_key(name) not in keys:
            yield (f"unknown source '{name}'{hint(name, known)}: 'from' takes vendors and "
                   f"connector instance names (known: {listing(known, limit=20)})",
                   ("from", i))


def condition_paths(spec: Any, loc: Loc = ("if",)) -> Iterator[tuple[str, Loc]]:
    """Every field path an ``if:`` mapping tests, with where it is written."""
    if not isinstance(spec, Mapping):
        return
    for key, value in spec.items():
        where = (*loc, key)
        if key in ("any", "all") and isinstance(value, list):
            for i, item in enumerate(value):
                yield from condition_paths(item, (*where, i))
        elif key == "not":
            yield from condition_paths(value, where)
        elif isinstance(key, str):
            yield key, where


def field_problems(rule: Rule, templates: Mapping[str, Template],
                   catalog: FieldCatalog) -> Iterator[Problem]:
    """Fields the rule reads that no source in its ``from:`` emits for its kinds.

    A rule whose sources declare no fields (a generic webhook without ``fields``) is not
    checked: nothing is known about what it reads.
    """
    kinds = list(rule.on)
    fields = catalog.resolve(rule.from_, kinds)
    if fields is None:
        return
    for path, loc in condition_paths(rule.if_):
        message = unknown_field(path, fields, catalog, rule.from_, kinds)
        if message:
            yield f"field '{path}' {message}", loc
    skip = _GLOBALS
    for name, template in templates.items():
        for path in template.paths:
            if path.split(".")[0] in skip:
                continue
            message = unknown_field(path, fields, catalog, rule.from_, kinds, template=True)
            if message:
                yield (f"the template reads '{path}', which {message}",
                       tuple(name.split(".")))

"""What a connector declares about the normalised ``Event.data`` fields it emits.

Pure data: a manifest lists, per event kind, the fields its events carry, so the hub can
list them (``msphub mappings fields``), offer them to editors (``mappings schema``) and
refuse a rule reading a field no source in its ``from:`` emits (``ticket.bord``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.core.events import EventKind

FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime", "list", "map"]
_FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Row = tuple[str, FieldType, str, Any]
"""``(name, type, description, example)``: one field, written compactly."""


class FieldSpec(BaseModel):
    """One normalised ``Event.data`` field an event kind carries.

    ``type: map`` marks a free-form map (``ticket.custom_fields``, ``alert.context``): any
    key under it is accepted, since its keys are the admin's or the vendor's own names.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_FIELD_NAME, max_length=200,
                      description="Dotted path as rules read it, e.g. ticket.board")
    type: FieldType = Field(default="string", description="Value type; 'map' is open")
    description: str = Field(default="", max_length=500, description="What it holds")
    example: Any = Field(default=None, description="A typical value")


def field_specs(rows: Iterable[Row]) -> tuple[FieldSpec, ...]:
    """Rows as FieldSpecs."""
    return tuple(FieldSpec(name=n, type=t, description=d, example=e) for n, t, d, e in rows)


def for_kinds(kinds: Iterable[EventKind], rows: Iterable[Row]
              ) -> dict[EventKind, tuple[FieldSpec, ...]]:
    """The same fields for several kinds (a ticket's fields for created, updated, closed)."""
    specs = field_specs(rows)
    return {kind: specs for kind in kinds}

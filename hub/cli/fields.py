"""The rows and text of ``msphub mappings fields``: the event field catalog, by kind."""

from __future__ import annotations

import json
from typing import Any

from hub.core.events import EventKind
from hub.core.mapping.engine import source_key
from hub.core.mapping.fields import COMMON, FieldCatalog

EVERY_EVENT = "every event"


def catalog_rows(catalog: FieldCatalog, *, vendor: str | None = None,
                 kind: str | None = None) -> list[dict[str, Any]]:
    """One row per (kind, field): its type, the sources whose events carry it, what it
    holds and an example. Fields of every event come last, under ``every event``."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    wanted = None if vendor is None else source_key(vendor)
    for name, event_kind, info in catalog.entries(inherited=wanted is not None):
        if wanted is not None and source_key(name) != wanted:
            continue
        if kind is not None and event_kind.value != kind:
            continue
        row = merged.setdefault((event_kind.value, info.name), {
            "kind": event_kind.value, "field": info.name, "type": info.type, "sources": [],
            "descriptions": {}, "example": info.example})
        row["sources"].append(name)
        row["descriptions"][name] = info.description
        if row["example"] is None:
            row["example"] = info.example
    rows = sorted(merged.values(), key=lambda r: (_kind_order(r["kind"]), r["field"]))
    rows += [{"kind": EVERY_EVENT, "field": c.name, "type": c.type, "sources": ["*"],
              "descriptions": {"*": c.description}, "example": c.example} for c in COMMON]
    return rows


def _described(row: dict[str, Any]) -> str:
    """``a, b: what`` when the sources agree, else ``a: this; b: that``."""
    texts: dict[str, str] = row["descriptions"]
    if len(set(texts.values())) == 1:
        return f"{', '.join(texts)}: {next(iter(texts.values()))}"
    return "; ".join(f"{name}: {text}" for name, text in texts.items())


def _kind_order(kind: str) -> int:
    return [k.value for k in EventKind].index(kind)


def format_catalog(rows: list[dict[str, Any]]) -> str:
    """The rows as text, one block per event kind."""
    lines: list[str] = []
    width = max((len(r["field"]) for r in rows), default=10)
    current = None
    for row in rows:
        if row["kind"] != current:
            current = row["kind"]
            if lines:
                lines.append("")
            lines.append(current)
        example = "" if row["example"] is None else f"  e.g. {json.dumps(row['example'])}"
        lines.append(f"  {row['field']:<{width}}  {row['type']:<8}  {_described(row)}{example}")
    lines.append("")
    lines.append("'map' fields are open: any key under them may be read "
                 "(ticket.custom_fields['Last Day']).")
    return "\n".join(lines)

"""The event field catalog: which normalised fields each source's events carry, per kind.

Connectors declare their fields in their manifest (the generic webhook in its instance
config); the loader builds a :class:`FieldCatalog` from them. Rules are checked against
it, so ``ticket.bord`` or ``tikcet.contact.name`` is refused with a suggestion instead of
a rule that silently never matches. Pure: no registry, no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.core.events import EventKind
from hub.core.mapping.engine import source_key
from hub.core.suggest import did_you_mean


@dataclass(frozen=True)
class FieldInfo:
    """One field rules may read: ``type`` is string, integer, number, boolean, date,
    datetime, list, object or map (a free-form map: any key under it is accepted)."""

    name: str
    type: str = "string"
    description: str = ""
    example: Any = None

    @property
    def open(self) -> bool:
        """True for a free-form map (``ticket.custom_fields``, ``alert.context``)."""
        return self.type == "map"


KindFields = Mapping[EventKind, Sequence[FieldInfo]]

COMMON: tuple[FieldInfo, ...] = (
    FieldInfo("source", "string", "Connector instance name", "cw-prod"),
    FieldInfo("vendor", "string", "Connector vendor", "connectwise"),
    FieldInfo("kind", "string", "Event kind", "ticket.created"),
    FieldInfo("occurred_at", "datetime", "When it happened (UTC, ISO 8601)",
              "2024-05-01T12:00:00+00:00"),
    FieldInfo("client.key", "string", "Hub client key (null while not linked)", "acme"),
    FieldInfo("client.name", "string", "Hub client name, else the vendor's", "Acme Ltd"),
    FieldInfo("client.tags", "list", "Hub client tags", ["managed"]),
    FieldInfo("client.id", "string", "The vendor's company / site / organization id", "ACME"),
    FieldInfo("client.type", "string", "The vendor record type", "company"),
    FieldInfo("client.vendor_name", "string", "The vendor record's name", "Acme Ltd"),
    FieldInfo("subject.type", "string", "ticket, agreement, alert, device or company", "ticket"),
    FieldInfo("subject.id", "string", "The subject's id in its source", "1234"),
    FieldInfo("subject.source", "string", "The subject's source, when not the event's", None),
)
"""Fields every event has, whatever its source (``Event.context``)."""


@dataclass(frozen=True)
class FieldSet:
    """The fields one rule may read: those of its sources and kinds, plus :data:`COMMON`."""

    leaves: Mapping[str, FieldInfo]
    objects: frozenset[str] = frozenset()
    maps: tuple[str, ...] = ()

    @classmethod
    def of(cls, fields: Iterable[FieldInfo]) -> FieldSet:
        """Index fields: their names, every parent path (an object) and the open maps."""
        leaves: dict[str, FieldInfo] = {}
        for info in (*COMMON, *fields):
            leaves.setdefault(info.name, info)
        objects = {".".join(name.split(".")[:i]) for name in leaves
                   for i in range(1, name.count(".") + 1)}
        maps = tuple(sorted(n for n, info in leaves.items() if info.open))
        return cls(leaves=leaves, objects=frozenset(objects - set(leaves)), maps=maps)

    def has(self, path: str, *, template: bool = False) -> bool:
        """True when a rule may read ``path``.

        A field, a parent of fields (``ticket.contact``) and anything under a free-form
        map are readable. In templates a path may also go past a field
        (``ticket.summary.lower``: a method of its value).
        """
        if path in self.leaves or path in self.objects:
            return True
        if any(path.startswith(m + ".") for m in self.maps):
            return True
        if template:
            parts = path.split(".")
            return any(".".join(parts[:i]) in self.leaves for i in range(1, len(parts)))
        return False

    def names(self) -> list[str]:
        """Every readable path (fields and their parents), for suggestions."""
        return sorted({*self.leaves, *self.objects})


@dataclass(frozen=True)
class Origin:
    """One name ``from:`` may use: a vendor, or a connector instance of a vendor.

    ``fields`` None: the origin declares nothing (a generic webhook without ``fields``, a
    vendor whose connector is not installed), so rules reading it cannot be checked.
    """

    name: str
    vendor: str
    fields: KindFields | None = None
    inherited: bool = False  # an instance carrying its vendor's fields, not its own


@dataclass
class FieldCatalog:
    """Every vendor and instance name with the fields its events carry, by kind."""

    origins: dict[str, Origin] = field(default_factory=dict)

    @classmethod
    def build(cls, vendors: Mapping[str, KindFields | None],
              instances: Mapping[str, tuple[str, KindFields | None]] = {}) -> FieldCatalog:
        """A catalog of vendors (name → fields) and instances (name → (vendor, own fields)).

        An instance without fields of its own carries its vendor's.
        """
        origins: dict[str, Origin] = {}
        for name, kinds in vendors.items():
            origins[source_key(name)] = Origin(name, name, kinds or None)
        for name, (vendor, own) in instances.items():
            inherited = origins.get(source_key(vendor))
            kinds = own or (inherited.fields if inherited else None)
            origins.setdefault(source_key(name),
                               Origin(name, vendor, kinds, inherited=not own and bool(kinds)))
        # a vendor whose instances declare fields (the generic webhook) carries theirs
        for key, origin in list(origins.items()):
            if origin.fields is None and origin.name == origin.vendor:
                merged = _merge(o.fields for o in origins.values()
                                if o.vendor == origin.vendor and o.fields is not None)
                if merged:
                    origins[key] = Origin(origin.name, origin.vendor, merged)
        return cls(origins)

    def names(self) -> list[str]:
        """Every name ``from:`` may use, as written in the configuration."""
        return sorted(o.name for o in self.origins.values())

    def knows(self, name: str) -> bool:
        """True when ``name`` is a vendor or an instance (``from:`` comparison rules)."""
        return source_key(name) in self.origins

    def resolve(self, origins: Sequence[str] | None, kinds: Iterable[EventKind]
                ) -> FieldSet | None:
        """The fields a rule for ``kinds`` from ``origins`` (None: any source) may read.

        Returns:
            None when they cannot be known: a named origin declares no fields, none of
            the names is known, or no origin declares any of the kinds.
        """
        wanted = list(kinds)
        if origins is None:
            chosen = [o for o in self.origins.values() if o.fields is not None]
        else:  # unknown names are refused on their own; the others are still checked
            chosen = [self.origins[k] for k in map(source_key, origins) if k in self.origins]
            if not chosen or any(o.fields is None for o in chosen):
                return None
        found = [info for o in chosen for kind in wanted for info in (o.fields or {}).get(kind, ())]
        return FieldSet.of(found) if found else None

    def emitters(self, path: str, kinds: Iterable[EventKind]) -> list[str]:
        """Vendors whose events of ``kinds`` carry ``path`` (to say where a field exists)."""
        wanted = list(kinds)
        out = set()
        for origin in self.origins.values():
            if origin.fields is None or origin.name != origin.vendor:
                continue
            infos = [i for k in wanted for i in origin.fields.get(k, ())]
            if infos and FieldSet.of(infos).has(path):
                out.add(origin.name)
        return sorted(out)

    def readable(self) -> list[tuple[str, FieldInfo]]:
        """(vendor or instance, field) for every declared field, then ("every event", f)
        for each field of :data:`COMMON`."""
        rows = [(name, info) for name, _kind, info in self.entries()]
        return rows + [("every event", info) for info in COMMON]

    def entries(self, *, inherited: bool = False) -> list[tuple[str, EventKind, FieldInfo]]:
        """(vendor or instance, kind, field) for every declared field, sorted; instances
        repeating their vendor's fields only with ``inherited``."""
        rows = [(o.name, kind, info) for o in self.origins.values()
                if o.fields and (inherited or not o.inherited)
                for kind, infos in o.fields.items() for info in infos]
        return sorted(rows, key=lambda r: (r[1].value, r[2].name, r[0]))


def _merge(groups: Iterable[KindFields | None]) -> dict[EventKind, tuple[FieldInfo, ...]]:
    out: dict[EventKind, dict[str, FieldInfo]] = {}
    for kinds in groups:
        for kind, infos in (kinds or {}).items():
            for info in infos:
                out.setdefault(kind, {}).setdefault(info.name, info)
    return {kind: tuple(by_name.values()) for kind, by_name in out.items()}


def unknown_field(path: str, fields: FieldSet, catalog: FieldCatalog,
                  origins: Sequence[str] | None, kinds: Sequence[EventKind], *,
                  template: bool = False) -> str | None:
    """Why a rule may not read ``path``, in admin words; None when it may.

    The answer continues a sentence naming the path ("field 'ticket.bord' ..."): it
    names the kinds and sources, another vendor that does emit the field, or the closest
    known field (``did you mean 'ticket.board'?``).
    """
    if fields.has(path, template=template):
        return None
    where = ", ".join(k.value for k in kinds)
    sources = "any source" if origins is None else ", ".join(origins)
    message = f"is not in {where} events from {sources}"
    others = [v for v in catalog.emitters(path, kinds)
              if origins is None or source_key(v) not in {source_key(o) for o in origins}]
    if others:
        message += f" (only {', '.join(others)} events carry it)"
        return message
    near = did_you_mean(path, fields.names())
    if near is None and template:
        # a template's path may run past the field it misspells: ticket.bord.lower
        parts = path.split(".")
        for i in range(len(parts) - 1, 1, -1):
            near = did_you_mean(".".join(parts[:i]), fields.names())
            if near:
                break
    if near:
        message += f"; did you mean '{near}'?"
    else:
        roots = sorted({n.split(".")[0] for n in fields.leaves if "." in n})
        message += f" (fields start with: {', '.join(roots)}; see `msphub mappings fields`)"
    return message

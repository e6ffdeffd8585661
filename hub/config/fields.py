"""Build the event field catalog from the connectors' manifests and ``config/connectors.yaml``.

Every registered connector declares the fields its events carry; a generic webhook
instance declares them in its ``config.fields``. Instances are read without resolving
``${VAR}`` references (only names, vendors and fields matter here), so ``mappings check``
works in a checkout without any secret set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.base import Manifest, load_registry
from connectors.fields import FieldSpec
from hub.config.yamlio import read_yaml, validation_error
from hub.core.events import KNOWN_VENDORS, EventKind
from hub.core.mapping.fields import FieldCatalog, FieldInfo, KindFields

_DECLARED = TypeAdapter(dict[EventKind, tuple[FieldSpec, ...]])
WEBHOOK_VENDOR = "webhook"


def to_info(specs: Mapping[EventKind, Iterable[FieldSpec]]
            ) -> dict[EventKind, tuple[FieldInfo, ...]]:
    """Connector declarations as the core's catalog entries."""
    return {kind: tuple(FieldInfo(s.name, s.type, s.description, s.example) for s in rows)
            for kind, rows in specs.items()}


def manifest_fields(manifests: Iterable[Manifest]) -> dict[str, KindFields | None]:
    """vendor → its declared fields (None: it declares none)."""
    return {m.vendor: (to_info(m.fields) or None) for m in manifests}


def configured_instances(path: Path) -> dict[str, tuple[str, KindFields | None]]:
    """Instance name → (vendor, its own declared fields) from ``connectors.yaml``.

    Disabled instances count: a rule may name one before it is switched on. A missing
    file gives none.

    Raises:
        ConfigError: the file cannot be parsed, or a webhook instance's ``fields`` is
            invalid (file, line and key).
    """
    if not path.exists():
        return {}
    doc = read_yaml(path)
    sources = doc.data.get("sources") if isinstance(doc.data, dict) else None
    out: dict[str, tuple[str, KindFields | None]] = {}
    for name, raw in (sources or {}).items() if isinstance(sources, dict) else ():
        if not isinstance(raw, dict) or not isinstance(raw.get("vendor"), str):
            continue  # load_sources reports a malformed instance; nothing to add here
        vendor: str = raw["vendor"]
        config: Any = raw.get("config")
        declared = config.get("fields") if isinstance(config, dict) else None
        own: KindFields | None = None
        if vendor == WEBHOOK_VENDOR and declared:
            try:
                own = to_info(_DECLARED.validate_python(declared))
            except ValidationError as exc:
                raise validation_error(doc, exc, ("sources", str(name), "config", "fields")
                                       ) from exc
        out[str(name)] = (vendor, own)
    return out


def field_catalog(connectors_yaml: Path | None = None,
                  manifests: Iterable[Manifest] | None = None) -> FieldCatalog:
    """The catalog of every registered vendor, the design's vendors not installed here
    (known names, fields unknown) and the instances configured in ``connectors_yaml``."""
    if manifests is None:
        manifests = [cls.manifest for cls in load_registry().values()]
    vendors: dict[str, KindFields | None] = dict.fromkeys(KNOWN_VENDORS)
    vendors.update(manifest_fields(manifests))
    instances = configured_instances(connectors_yaml) if connectors_yaml else {}
    return FieldCatalog.build(vendors, instances)

"""``config/clients.yaml``: hub clients and the vendor records that are each of them.

```yaml
clients:
  acme:                              # the hub client key (yours to choose; stable)
    name: Acme Corp
    calendar: uk-office              # a calendars.yaml name (default: "default")
    tags: [managed-services]
    links:                           # (source instance, vendor object type, vendor id)
      - {source: cw-prod, type: company, id: ACME}
      - {source: datto, type: site, id: 5f6e7d8c-0000-4000-8000-000000000001}
```
"""

from __future__ import annotations

import re
from collections.abc import Collection
from difflib import get_close_matches
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.config.yamlio import read_yaml, validation_error

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
OBJECT_TYPES = ("company", "site", "organization", "customer", "location")


def check_key(key: str) -> str:
    """A client key: letters, digits, ``.``, ``_`` and ``-`` (lower case is the convention).

    Raises:
        ValueError: the key does not have that shape (the message says what does).
    """
    if not KEY.match(key):
        raise ValueError(f"client key {key!r} must be letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit (e.g. acme, globex-uk)")
    return key


class LinkSpec(BaseModel):
    """One vendor record (a PSA company, an RMM site or organization) that is this client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=100,
                        description="Connector instance name from connectors.yaml.")
    type: str = Field(default="company", description=f"One of {', '.join(OBJECT_TYPES)}.")
    id: str = Field(min_length=1, max_length=200, description="The vendor's id for it.")
    name: str | None = Field(default=None, max_length=300)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in OBJECT_TYPES:
            raise ValueError(f"type must be one of {', '.join(OBJECT_TYPES)}")
        return value

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class ClientSpec(BaseModel):
    """A hub client as the admin declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    name: str | None = Field(default=None, max_length=300)
    calendar: str | None = Field(default=None, description="A calendars.yaml name.")
    tags: tuple[str, ...] = ()
    links: tuple[LinkSpec, ...] = ()

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_key(value)


def load_clients(path: Path, *, calendars: Collection[str] | None = None) -> list[ClientSpec]:
    """Load ``config/clients.yaml`` (a missing file declares no clients).

    Raises:
        ConfigError: naming the file, line and key (bad key, unknown calendar, a vendor
            record linked to two clients).
    """
    if not path.exists():
        return []
    doc = read_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict) or set(data) - {"clients"}:
        raise doc.error("expected a top-level 'clients:' mapping of client key to settings")
    entries = data.get("clients") or {}
    if not isinstance(entries, dict):
        raise doc.error("'clients' must map client keys to settings", ("clients",))
    specs: list[ClientSpec] = []
    owner: dict[tuple[str, str, str], str] = {}
    for raw_key, raw in entries.items():
        key = str(raw_key)
        loc = ("clients", key)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise doc.error("a client must be a mapping (name, calendar, tags, links)", loc)
        if "key" in raw:
            raise doc.error("a client's key is its name in this file; remove 'key'",
                            (*loc, "key"))
        unknown = sorted(set(raw) - set(ClientSpec.model_fields))
        if unknown:
            near = get_close_matches(str(unknown[0]), ClientSpec.model_fields, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise doc.error(f"unknown key '{unknown[0]}' (a client has name, calendar, tags "
                            f"and links){hint}", (*loc, unknown[0]))
        try:
            spec = ClientSpec.model_validate({**raw, "key": key})
        except ValidationError as exc:
            raise validation_error(doc, exc, loc) from exc
        if calendars is not None and spec.calendar and spec.calendar not in calendars:
            raise doc.error(f"unknown calendar '{spec.calendar}'; calendars.yaml defines "
                            f"{', '.join(sorted(calendars))}", (*loc, "calendar"))
        for i, link in enumerate(spec.links):
            ident = (link.source, link.type, link.id)
            if ident in owner:
                raise doc.error(f"{link.source} {link.type} {link.id} is already linked to "
                                f"client '{owner[ident]}'", (*loc, "links", i))
            owner[ident] = key
        specs.append(spec)
    return specs

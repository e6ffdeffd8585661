"""The normalized Event every connector produces and every mapping reads (a leaf module)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EventKind(StrEnum):
    """The closed vocabulary of normalized event kinds."""

    TICKET_CREATED = "ticket.created"
    TICKET_UPDATED = "ticket.updated"
    TICKET_CLOSED = "ticket.closed"
    AGREEMENT_CREATED = "agreement.created"
    AGREEMENT_UPDATED = "agreement.updated"
    COMPANY_CREATED = "company.created"
    ALERT_RAISED = "alert.raised"
    ALERT_RESOLVED = "alert.resolved"
    DEVICE_ADDED = "device.added"
    DEVICE_REMOVED = "device.removed"


# Vendor names of the design's connectors (a mapping's `from:` may name any of these
# before its connector is installed or configured).
KNOWN_VENDORS: frozenset[str] = frozenset({
    "connectwise", "autotask", "halopsa", "datto-rmm", "ninjaone", "ncentral", "webhook",
})


class ClientRef(BaseModel):
    """The vendor's company / site / organization an event belongs to.

    The hub resolves it to a hub client through the client directory, by the link
    ``(event source, type, id)``, before any rule runs.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str | None = None
    type: str = Field(default="company", max_length=30,
                      description="The vendor object: company, site, organization, customer")


class HubClientRef(BaseModel):
    """The hub client an event's vendor client resolved to (set by the hub, never a connector)."""

    model_config = ConfigDict(frozen=True)

    key: str
    name: str | None = None
    tags: tuple[str, ...] = ()


class SubjectRef(BaseModel):
    """What the event is about: a ticket, agreement, alert or device in one source."""

    model_config = ConfigDict(frozen=True)

    type: str  # "ticket" | "agreement" | "alert" | "device" | "company"
    id: str
    source: str | None = None  # connector instance name, when it differs from the event's


class Event(BaseModel):
    """One normalized fact from a PSA or RMM.

    ``data`` holds the normalized, dotted-path-addressable fields mappings read
    (``ticket.board``, ``alert.category`` ...); ``raw`` is the vendor payload, untouched.
    """

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="Connector instance name, e.g. cw-prod")
    vendor: str = Field(description="Connector vendor, e.g. connectwise")
    kind: EventKind
    dedupe_key: str = Field(min_length=1, max_length=255)
    occurred_at: datetime
    client: ClientRef | None = None
    subject: SubjectRef | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict)
    hub_client: HubClientRef | None = Field(
        default=None, description="The hub client ``client`` resolved to (set by the hub).")

    @field_validator("occurred_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.astimezone(UTC)

    def context(self) -> dict[str, Any]:
        """The variables mapping conditions and templates see.

        ``data`` keys are merged at the top level (``ticket``, ``alert`` ...), beside
        ``source``, ``vendor``, ``kind``, ``client`` and ``subject``. ``client`` is the
        hub client (``key``, ``name``, ``tags``) with the vendor's record beside it
        (``id``, ``type``, ``vendor_name``); ``key`` is None while it is not linked.
        """
        ctx: dict[str, Any] = dict(self.data)
        ctx.update(
            source=self.source,
            vendor=self.vendor,
            kind=str(self.kind),
            occurred_at=self.occurred_at.isoformat(),
            client=self._client_view(),
            # dict(model) is model_dump() for this flat model, at a fraction of the cost
            subject=dict(self.subject) if self.subject else None,
        )
        return ctx

    def _client_view(self) -> dict[str, Any] | None:
        if self.client is None and self.hub_client is None:
            return None
        vendor = self.client
        hub = self.hub_client
        return {
            "key": hub.key if hub else None,
            "name": (hub.name if hub else None) or (vendor.name if vendor else None),
            "tags": list(hub.tags) if hub else [],
            "id": vendor.id if vendor else None,
            "type": vendor.type if vendor else None,
            "vendor_name": vendor.name if vendor else None,
        }


def lookup(ctx: dict[str, Any], path: str) -> tuple[bool, Any]:
    """Resolve a dotted path (``ticket.contact.name``) in nested dicts.

    Returns:
        ``(found, value)``; ``found`` is False when any segment is missing.
    """
    current: Any = ctx
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return False, None
    return True, current

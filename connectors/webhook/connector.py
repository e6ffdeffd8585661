"""Generic signed-webhook connector for tools without a native connector (and for tests).

A sender signs ``f"{timestamp}.".encode() + body`` with HMAC-SHA256 and a shared secret:

```
X-Msphub-Timestamp: 1714564800
X-Msphub-Signature: sha256=<hex digest>
```

The body is one normalized event or a JSON list of them::

    {"kind": "alert.resolved", "dedupe_key": "backup-42", "occurred_at": "2024-05-01T12:00:00Z",
     "client": {"id": "ACME", "name": "Acme Ltd"}, "subject": {"type": "alert", "id": "42"},
     "data": {"alert": {"category": "backup"}}}
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from connectors import payload as bounded
from connectors.base import (
    Capability,
    MalformedPayload,
    Manifest,
    RequestBudget,
    WebhookRejected,
    WebhookRequest,
)
from connectors.fields import FieldSpec
from hub.core.events import ClientRef, Event, EventKind, SubjectRef

VENDOR = "webhook"
TIMESTAMP_HEADER = "x-msphub-timestamp"
SIGNATURE_HEADER = "x-msphub-signature"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class WebhookConfig(BaseModel):
    """A generic webhook source: one shared secret per instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr = Field(description="Shared HMAC-SHA256 secret (at least 16 characters)")
    tolerance_seconds: int = Field(
        300, ge=1, description="Maximum age (and clock skew) of a request"
    )
    max_events: int = Field(1000, ge=1, description="Most events accepted in one body")
    fields: dict[EventKind, tuple[FieldSpec, ...]] = Field(
        default_factory=dict,
        description="The data fields each kind the sender posts carries, as in a manifest "
        "(`msphub mappings fields`, `mappings check`); none: rules are not field-checked",
    )

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("secret must be at least 16 characters")
        return value


class _Client(ClientRef):
    """The sender's client reference, within the inbox column limits."""

    id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=300)


class _Subject(SubjectRef):
    """The sender's subject reference, within the inbox column limits."""

    type: str = Field(min_length=1, max_length=30)
    id: str = Field(min_length=1, max_length=100)
    source: str | None = Field(default=None, max_length=100)


class _IncomingEvent(BaseModel):
    """One event as a sender posts it."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    dedupe_key: str = Field(min_length=1, max_length=255)
    occurred_at: datetime
    client: _Client | None = None
    subject: _Subject | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must include a timezone (e.g. 'Z')")
        try:
            return bounded.in_window(value, "occurred_at")
        except MalformedPayload as exc:
            raise ValueError(str(exc)) from None


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Msphub-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers a sender attaches (helper for senders and tests)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "X-Msphub-Timestamp": str(ts),
        "X-Msphub-Signature": signature(secret, ts, body),
    }


class WebhookConnector:
    """Receives signed, already-normalized events from any tool."""

    manifest: ClassVar[Manifest] = Manifest(
        vendor=VENDOR,
        display_name="Generic signed webhook",
        kind="generic",
        capabilities=frozenset({Capability.WEBHOOK_RECEIVER}),
        config_model=WebhookConfig,
    )

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        budget: RequestBudget | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock

    def close(self) -> None:
        """Nothing to release (no outbound HTTP)."""

    def verify(self, request: WebhookRequest) -> None:
        """Check timestamp freshness, then the HMAC signature (constant time).

        Raises:
            WebhookRejected: missing/old timestamp or bad signature.
        """
        raw_ts = bounded.header_text(request.headers.get(TIMESTAMP_HEADER))
        given = bounded.header_text(request.headers.get(SIGNATURE_HEADER))
        if not _TIMESTAMP.fullmatch(raw_ts):  # ASCII digits only: isdigit() accepts '²'
            raise WebhookRejected(f"missing or invalid {TIMESTAMP_HEADER}", source=self.name)
        if abs(self._clock() - int(raw_ts)) > self.config.tolerance_seconds:
            raise WebhookRejected("timestamp outside the allowed window", source=self.name)
        expected = signature(self.config.secret.get_secret_value(), raw_ts, request.body)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise WebhookRejected("bad signature", source=self.name)

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Events from a verified body (one object or a list).

        Raises:
            MalformedPayload: naming the bad field, e.g. ``events[2].occurred_at``.
        """
        try:
            payload = bounded.loads(request.body)
        except MalformedPayload as exc:
            raise MalformedPayload(str(exc), source=self.name) from None
        single = isinstance(payload, dict)
        items = [payload] if single else payload
        if not isinstance(items, list) or not items:
            raise MalformedPayload(
                "body must be an event object or a non-empty list", source=self.name
            )
        if len(items) > self.config.max_events:
            raise MalformedPayload(
                f"at most {self.config.max_events} events per body", source=self.name
            )
        events = []
        for index, item in enumerate(items):
            where = "" if single else f"events[{index}]"
            if not isinstance(item, dict):
                raise MalformedPayload(f"{where or 'body'} is not an object", source=self.name)
            try:
                incoming = _IncomingEvent.model_validate(item)
            except ValidationError as exc:
                first = exc.errors()[0]
                path = ".".join(str(p) for p in first["loc"])
                field = f"{where}.{path}" if where else path
                raise MalformedPayload(
                    f"field '{field}': {first['msg']}", source=self.name
                ) from None
            events.append(
                Event(
                    source=self.name,
                    vendor=VENDOR,
                    raw=item,
                    **incoming.model_dump(),
                )
            )
        return events

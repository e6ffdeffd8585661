"""A fake PSA connector for pipeline tests: records notes, can fail on demand."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel

from connectors.base import (
    AuthFailed,
    Capability,
    Manifest,
    NoteRef,
    TransientError,
    WebhookRequest,
)
from hub.core.events import Event, SubjectRef
from hub.services.sources import Source, Sources, SourceSpec


class FakeConfig(BaseModel):
    """No settings."""


class FakePSA:
    """Implements TicketWriter and a trivial WebhookReceiver (body = one Event as JSON).

    ``fail_next`` lists failures for the next post_note calls: ``"500"`` raises a
    TransientError after storing the note (the PSA applied it but answered badly),
    ``"timeout"`` stores the note and raises (the answer was lost), ``"down"`` raises
    without storing, ``"auth"`` refuses the credentials (AuthFailed, nothing stored).
    """

    manifest: ClassVar[Manifest] = Manifest(
        vendor="fakepsa", display_name="Fake PSA", kind="psa",
        capabilities=frozenset({Capability.TICKET_WRITER, Capability.WEBHOOK_RECEIVER}),
        default_poll_interval=timedelta(minutes=5), config_model=FakeConfig,
    )

    def __init__(self, name: str = "psa") -> None:
        self.name = name
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.attachments: list[dict[str, Any]] = []
        self.statuses: dict[str, str] = {}
        self.fail_next: list[str] = []
        self.post_calls = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- WebhookReceiver
    def verify(self, request: WebhookRequest) -> None:
        return None

    def parse(self, request: WebhookRequest) -> list[Event]:
        return [Event.model_validate_json(request.body)]

    # --- TicketWriter
    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        with self._lock:
            self.post_calls += 1
            failure = self.fail_next.pop(0) if self.fail_next else None
            if failure == "down":
                raise TransientError("PSA unavailable", status=503)
            if failure == "auth":
                raise AuthFailed("401 from the PSA: bad API keys", status=401)
            note_id = str(next(self._ids))
            self.notes.setdefault(ticket.id, []).append(
                {"id": note_id, "text": f"{text}\n[msphub:{key}]"})
            if failure in ("500", "timeout"):
                exc = TransientError("PSA error after write" if failure == "500"
                                     else "read timeout", status=500 if failure == "500" else None)
                exc.maybe_applied = True
                raise exc
            return NoteRef(ticket=ticket, id=note_id)

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        with self._lock:
            for note in self.notes.get(ticket.id, []):
                if f"[msphub:{key}]" in note["text"]:
                    return NoteRef(ticket=ticket, id=note["id"])
        return None

    def attach(self, ticket: SubjectRef, filename: str, content: bytes, *, title: str,
               key: str) -> str:
        with self._lock:
            for a in self.attachments:
                if a["key"] == key:
                    return str(a["id"])
            self.attachments.append({"id": len(self.attachments) + 1, "ticket": ticket.id,
                                     "filename": filename, "key": key, "size": len(content)})
            return str(len(self.attachments))

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        self.statuses[ticket.id] = status_name

    def close(self) -> None:
        return None

    def all_notes(self) -> list[str]:
        return [n["text"] for notes in self.notes.values() for n in notes]


def sources_with(psa: FakePSA, *, completed_status: str | None = None) -> Sources:
    """A Sources holding just the fake PSA under its name."""
    spec = SourceSpec(vendor="fakepsa", completed_status=completed_status)
    return Sources({psa.name: Source(psa.name, spec, psa)})  # type: ignore[arg-type]

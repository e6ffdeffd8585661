"""Autotask write-back: ticket notes, the completion record as an attachment, status."""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from connectors.autotask.client import AutotaskClient
from connectors.autotask.config import AutotaskConfig
from connectors.autotask.lookups import Picklists
from connectors.base import NoteRef, NotFound, PermanentError, RateLimited, TransientError
from connectors.writeback import find_marked, marked_title, marker, with_marker
from hub.core.events import SubjectRef

log = structlog.get_logger()

NOTE_TITLE_MAX = 250        # TicketNotes.title
NOTE_TEXT_MAX = 32_000      # TicketNotes.description (plain text)
ATTACHMENT_TITLE_MAX = 128  # TicketAttachments.title
WINDOW_SECONDS = 300.0      # Autotask's attachment byte window (10,000,000 per 5 minutes)


def truncate_file(content: bytes, limit: int) -> bytes:
    """``content`` cut to at most ``limit`` bytes, ending with a line saying so."""
    if len(content) <= limit:
        return content
    notice = (f"\n\n[truncated by msphub at {limit} bytes: Autotask's attachment limit; "
              "the full record is in msphub]\n").encode()
    return content[:max(0, limit - len(notice))] + notice


class AttachmentWindow:
    """Bytes uploaded in the last 5 minutes (this process): Autotask refuses attachments
    for 5 minutes past 10,000,000, so we wait before reaching it."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._sent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def take(self, size: int, *, source: str) -> None:
        """Count ``size`` bytes, or raise ``RateLimited`` with the wait until they fit."""
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0][0] <= now - WINDOW_SECONDS:
                self._sent.popleft()
            used = sum(n for _, n in self._sent)
            if used + size > self.limit and self._sent:
                wait = self._sent[0][0] + WINDOW_SECONDS - now
                raise RateLimited("Autotask attachment bytes per 5 minutes spent",
                                  retry_after=max(1.0, wait), source=source)
            self._sent.append((now, size))


class AutotaskWriter:
    """Implements ``TicketWriter`` over an ``AutotaskClient``."""

    def __init__(self, client: AutotaskClient, config: AutotaskConfig, name: str,
                 picklists: Picklists) -> None:
        self.client = client
        self.config = config
        self.name = name
        self.picklists = picklists
        self.window = AttachmentWindow(config.attachment_window_bytes)

    def ticket_id(self, ticket: SubjectRef) -> int:
        """The numeric id of one of our tickets."""
        if ticket.type != "ticket" or not (ticket.id.isascii() and ticket.id.isdigit()):
            raise PermanentError(f"not an Autotask ticket: {ticket.type}", source=self.name)
        if ticket.source not in (None, self.name):
            raise PermanentError("ticket belongs to another source", source=self.name)
        return int(ticket.id)

    def _picklist(self, entity: str, field: str, wanted: int | str) -> int:
        if isinstance(wanted, int):
            return wanted
        value = self.picklists.value_of(entity, field, wanted)
        if value is None:
            raise PermanentError(f"{entity}.{field} has no value {wanted!r}", source=self.name)
        return value

    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        """Add a note (configured type, publish setting and title) carrying ``key``'s marker.

        Not retried once it may have reached Autotask: on ``TransientError`` with
        ``maybe_applied`` the hub calls ``find_note`` before posting again.
        """
        tid = self.ticket_id(ticket)
        description = with_marker(text, key)
        if len(description) > NOTE_TEXT_MAX:
            description = with_marker(text[:NOTE_TEXT_MAX - 200] + "\n[… truncated]", key)
        body = {
            "ticketID": tid,
            "title": self.config.note_title[:NOTE_TITLE_MAX],
            "description": description,
            "noteType": self._picklist("TicketNotes", "noteType", self.config.note_type),
            "publish": self._picklist("TicketNotes", "publish", self.config.note_publish),
        }
        note_id = self._create_child(tid, "Notes", body)
        return NoteRef(ticket=ticket, id=str(note_id))

    def _create_child(self, tid: int, child: str, body: Mapping[str, Any]) -> int:
        """POST a note or attachment of ticket ``tid``.

        Autotask answers 500, not 404, when the ticket does not exist; after a 500 the
        ticket is read once, so a missing ticket ends as ``NotFound`` (never retried)
        instead of a transient error the outbox would retry until it gives up.
        """
        try:
            return self.client.create(f"Tickets/{tid}/{child}", body)
        except TransientError as exc:
            if exc.status != 500:
                raise
            try:
                self.client.get_item(f"Tickets/{tid}")
            except NotFound:
                raise NotFound(f"ticket {tid} does not exist", source=self.name) from exc
            except TransientError:
                pass
            raise

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """The ticket's note whose description carries ``key``'s marker, if any."""
        tid = self.ticket_id(ticket)
        rows = self.client.query_all("TicketNotes", [
            {"op": "eq", "field": "ticketID", "value": tid},
            {"op": "contains", "field": "description", "value": marker(key)},
        ], include_fields=["id", "ticketID", "description"])
        note = find_marked(rows, key, ("description",))
        return None if note is None else NoteRef(ticket=ticket, id=str(note["id"]))

    def attach(self, ticket: SubjectRef, filename: str, content: bytes, *, title: str,
               key: str) -> str:
        """Attach a file once per ``key`` (its marker is in the title), within Autotask's
        limits: larger files are cut (with a notice), and the 5-minute byte window is
        waited for (``RateLimited``) rather than refused by Autotask."""
        tid = self.ticket_id(ticket)
        existing = self.client.query_all("TicketAttachments", [
            {"op": "eq", "field": "parentID", "value": tid}], include_fields=["id", "title"])
        found = find_marked(existing, key, ("title",))
        if found is not None:
            return str(found["id"])
        data = truncate_file(content, self.config.max_attachment_bytes)
        self.window.take(len(data), source=self.name)
        body = {
            "id": 0,
            "parentID": tid,
            "attachmentType": "FILE_ATTACHMENT",
            "fullPath": filename[:255],
            "title": marked_title(title, key, ATTACHMENT_TITLE_MAX),
            "publish": self.config.attachment_publish,
            "data": base64.b64encode(data).decode("ascii"),
        }
        return str(self._create_child(tid, "Attachments", body))

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        """Set the ticket's status by name (no-op when it is already there).

        Raises:
            NotFound: the status picklist has no such name.
        """
        tid = self.ticket_id(ticket)
        value = self.picklists.value_of("Tickets", "status", status_name)
        if value is None:
            raise NotFound(f"ticket status {status_name!r} not found", source=self.name)
        current = self.client.get_item(f"Tickets/{tid}")
        if current.get("status") == value:
            return
        self.client.update("Tickets", {"id": tid, "status": value})
        log.info("autotask_status_set", source=self.name, ticket=tid, status=value)

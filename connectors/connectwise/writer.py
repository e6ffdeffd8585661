"""ConnectWise write-back (notes, documents, status) and callback registration."""

from __future__ import annotations

import mimetypes
import threading
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog

from connectors.base import NoteRef, NotFound, PermanentError
from connectors.connectwise.client import ConnectWiseClient, Record
from connectors.connectwise.config import ConnectWiseConfig
from connectors.writeback import find_marked, marked_title, with_marker
from hub.core.events import SubjectRef

log = structlog.get_logger()

NoteFlag = Literal["internal", "discussion", "resolution"]
_NOTE_FLAGS: dict[str, str] = {
    "discussion": "detailDescriptionFlag",
    "internal": "internalAnalysisFlag",
    "resolution": "resolutionFlag",
}


def _record_id(record: Any, what: str, source: str) -> str:
    """The ``id`` of a vendor response, or a PermanentError naming what lacked it."""
    rid = record.get("id") if isinstance(record, dict) else None
    if rid is None:
        raise PermanentError(f"{what} response has no id", source=source)
    return str(rid)


class ConnectWiseWriter:
    """Implements ``TicketWriter`` and ``WebhookRegistrar`` over a ``ConnectWiseClient``."""

    def __init__(self, client: ConnectWiseClient, config: ConnectWiseConfig, name: str) -> None:
        self.client = client
        self.config = config
        self.name = name
        self.learned_member: str | None = None  # API member seen on our own notes
        self._statuses: dict[int, list[Record]] = {}
        self._lock = threading.Lock()

    def _ticket_id(self, ticket: SubjectRef) -> int:
        if ticket.type != "ticket" or not ticket.id.isdigit():
            raise PermanentError(f"not a ConnectWise ticket: {ticket.type}", source=self.name)
        if ticket.source not in (None, self.name):
            raise PermanentError("ticket belongs to another source", source=self.name)
        return int(ticket.id)

    def post_note(
        self, ticket: SubjectRef, text: str, *, key: str, flag: NoteFlag | None = None
    ) -> NoteRef:
        """Add a note (exactly one of the three flags set, no notification emails).

        Not retried once it may have reached ConnectWise: on ``TransientError`` with
        ``maybe_applied`` call ``find_note`` before posting again.
        """
        tid = self._ticket_id(ticket)
        body: dict[str, Any] = {
            "text": with_marker(text, key),
            "detailDescriptionFlag": False,
            "internalAnalysisFlag": False,
            "resolutionFlag": False,
            "processNotifications": False,
        }
        body[_NOTE_FLAGS[flag or self.config.note_flag]] = True
        note = self.client.post(f"/service/tickets/{tid}/notes", body)
        member = note.get("member") if isinstance(note, dict) else None
        identifier = member.get("identifier") if isinstance(member, dict) else None
        if isinstance(identifier, str) and identifier:
            self.learned_member = identifier
        return NoteRef(ticket=ticket, id=_record_id(note, "note", self.name))

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """Look for the marker of ``key`` in the ticket's 25 most recent notes."""
        tid = self._ticket_id(ticket)
        notes = self.client.get_list(
            f"/service/tickets/{tid}/notes", {"orderBy": "id desc", "pageSize": 25}
        )
        note = find_marked(notes, key, ("text",))
        return None if note is None else NoteRef(ticket=ticket,
                                                 id=_record_id(note, "note", self.name))

    def attach(
        self, ticket: SubjectRef, filename: str, content: bytes, *, title: str, key: str
    ) -> str:
        """Upload a document to the ticket unless one titled with ``key``'s marker exists."""
        tid = self._ticket_id(ticket)
        existing = self.client.get_list(
            "/system/documents", {"recordType": "Ticket", "recordId": tid}
        )
        found = find_marked(existing, key, ("title",))
        if found is not None:
            return _record_id(found, "document", self.name)
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        fields = {
            "recordType": "Ticket",
            "recordId": str(tid),
            "title": marked_title(title, key, 100),
            "privateFlag": "true",
            "readOnlyFlag": "false",
        }
        doc = self.client.upload("/system/documents", fields, (filename, content, mime))
        return _record_id(doc, "document", self.name)

    def _board_statuses(self, board_id: int, *, refresh: bool = False) -> list[Record]:
        with self._lock:
            cached = None if refresh else self._statuses.get(board_id)
        if cached is not None:
            return cached
        rows = self.client.get_list(f"/service/boards/{board_id}/statuses", {"pageSize": 1000})
        with self._lock:
            self._statuses[board_id] = rows
        return rows

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        """Move the ticket to the named status of its board (no-op when already there).

        Raises:
            NotFound: the board has no active status with that name.
        """
        tid = self._ticket_id(ticket)
        record = self.client.get(f"/service/tickets/{tid}")
        board = (record.get("board") if isinstance(record, dict) else None) or {}
        if not isinstance(board.get("id"), int):
            raise PermanentError("ticket response has no board id", source=self.name)
        current = (record.get("status") or {}).get("name") or ""
        if current.casefold() == status_name.casefold():
            return
        wanted = status_name.casefold()
        for refresh in (False, True):
            for status in self._board_statuses(board["id"], refresh=refresh):
                name = str(status.get("name", "")).casefold()
                if name == wanted and not status.get("inactive") and "id" in status:
                    operation = {"op": "replace", "path": "status", "value": {"id": status["id"]}}
                    self.client.patch(f"/service/tickets/{tid}", [operation])
                    return
        raise NotFound(
            f"status {status_name!r} not found on board {board.get('name')!r}", source=self.name
        )

    def callback_url(self, url: str) -> str:
        """``url`` with ``?token=<webhook_secret>`` added unless the secret is already in it."""
        if self.config.webhook_secret is None:
            raise PermanentError("webhook_secret is not configured", source=self.name)
        secret = self.config.webhook_secret.get_secret_value()
        if '"' in url or not url.startswith(("https://", "http://")):
            raise PermanentError("callback URL must be http(s), without quotes", source=self.name)
        if secret in url:
            return url
        parts = urlsplit(url)
        query = urlencode([*parse_qsl(parts.query), ("token", secret)])
        return urlunsplit(parts._replace(query=query))

    def _existing(self, full_url: str) -> list[Record]:
        return self.client.get_list(
            "/system/callbacks", {"conditions": f'url="{full_url}"', "pageSize": 1000}
        )

    def _desired(self, full_url: str, record_type: str) -> dict[str, Any]:
        return {
            "url": full_url,
            "objectId": 1,
            "type": record_type,
            "level": "owner",
            "description": f"msphub {self.name} {record_type}"[:100],
            "inactiveFlag": False,
            "isSelfSuppressedFlag": self.config.self_suppress_callbacks,
        }

    def register_webhooks(self, url: str) -> list[str]:
        """Ensure exactly one active owner-level callback per configured type for ``url``.

        Entries for ``url`` that differ from what we want (other types, inactive,
        duplicates) are deleted; missing ones are created. Safe to call repeatedly.
        """
        full = self.callback_url(url)
        kept: dict[str, str] = {}
        for entry in self._existing(full):
            rtype = str(entry.get("type", "")).lower()
            desired = self._desired(full, rtype)
            matches = all(entry.get(k) == v for k, v in desired.items() if k != "type")
            if rtype in self.config.callback_types and rtype not in kept and matches:
                kept[rtype] = _record_id(entry, "callback", self.name)
            else:
                self._delete_callback(entry)
        for rtype in self.config.callback_types:
            if rtype not in kept:
                created = self.client.post("/system/callbacks", self._desired(full, rtype))
                kept[rtype] = _record_id(created, "callback", self.name)
                log.info("callback_registered", source=self.name, type=rtype, id=kept[rtype])
        return [kept[t] for t in self.config.callback_types]

    def remove_webhooks(self, url: str) -> int:
        """Delete every callback registered for ``url``; returns how many were deleted."""
        entries = self._existing(self.callback_url(url))
        return sum(self._delete_callback(entry) for entry in entries)

    def _delete_callback(self, entry: Record) -> bool:
        try:
            self.client.delete(f"/system/callbacks/{_record_id(entry, 'callback', self.name)}")
        except NotFound:
            return False  # removed concurrently: the goal is reached
        return True

"""HaloPSA write-back: notes and status changes as ticket actions, evidence as attachments.

Every POST body is an array (Halo's create-or-update). Notes are actions of the
configured outcome (``note_outcome``) with ``hiddenfromuser`` as ``note_visibility``
says and ``sendemail: false``; a status change is an action carrying ``new_status``
(the documented field) and a marked note, so its webhook is recognised as our own echo.
Each note and attachment carries its key's marker (``connectors/writeback.py``): after an
uncertain POST the hub looks for the marker before posting again.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import structlog

from connectors.base import NoteRef, NotFound, PermanentError
from connectors.halopsa.client import HaloPSAClient, Record, check_id
from connectors.halopsa.config import HaloPSAConfig
from connectors.halopsa.events import Names, action_agent, status_name
from connectors.halopsa.lookups import HaloLookups
from connectors.writeback import find_marked, marked_title, with_marker
from hub.core.events import SubjectRef

log = structlog.get_logger()

DESC_LENGTH = 250  # room for an attachment's description (Halo's limit is not documented)


def _record_id(record: Any, what: str, source: str) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    if rid in (None, "", 0):
        raise PermanentError(f"{what} response has no id", source=source)
    return str(rid)


class HaloPSAWriter:
    """Implements ``TicketWriter`` over a ``HaloPSAClient``."""

    def __init__(self, client: HaloPSAClient, config: HaloPSAConfig, name: str,
                 lookups: HaloLookups) -> None:
        self.client = client
        self.config = config
        self.name = name
        self.lookups = lookups
        self.learned_agent: int | None = None  # the API agent seen on our own actions
        self._lock = threading.Lock()

    def _ticket_id(self, ticket: SubjectRef) -> int:
        if ticket.type != "ticket":
            raise PermanentError(f"not a Halo ticket: {ticket.type}", source=self.name)
        if ticket.source not in (None, self.name):
            raise PermanentError("ticket belongs to another source", source=self.name)
        return check_id(ticket.id, "ticket id")

    def _action(self, tid: int, note: str, *, hidden: bool, outcome: str | None = None,
                new_status: int | None = None) -> Record:
        body: Record = {
            "ticket_id": tid,
            "outcome": outcome or self.config.note_outcome,
            "note": note,
            "hiddenfromuser": hidden,
            "sendemail": False,
        }
        if self.config.note_outcome_id is not None and outcome is None:
            body["outcome_id"] = self.config.note_outcome_id
        if new_status is not None:
            body["new_status"] = new_status
        action = self.client.post("/Actions", [body])
        agent = action_agent(action)
        if agent:
            with self._lock:
                self.learned_agent = agent
        return action

    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        """Add a note action carrying ``key``'s marker (no email to the end user).

        Not retried once it may have reached Halo: on ``TransientError`` with
        ``maybe_applied`` the hub calls ``find_note`` before posting again.
        """
        tid = self._ticket_id(ticket)
        hidden = self.config.note_visibility == "private"
        action = self._action(tid, with_marker(text, key), hidden=hidden)
        return NoteRef(ticket=ticket, id=_record_id(action, "action", self.name))

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        """Look for ``key``'s marker in the ticket's actions.

        Every (non-system) action is read: Halo does not document the order ``count``
        cuts in, and a marker missed on a busy ticket would post the note twice.
        """
        tid = self._ticket_id(ticket)
        actions = self.client.get_list("/Actions", "actions", {
            "ticket_id": tid, "excludesys": "true"})
        found = find_marked(actions, key, ("note", "note_html"))
        return None if found is None else NoteRef(
            ticket=ticket, id=_record_id(found, "action", self.name))

    def attach(self, ticket: SubjectRef, filename: str, content: bytes, *, title: str,
               key: str) -> str:
        """Attach a file to the ticket unless one described with ``key``'s marker exists."""
        tid = self._ticket_id(ticket)
        existing = self.client.get_list("/Attachment", "attachments", {"ticket_id": tid})
        found = find_marked(existing, key, ("desc", "note"))
        if found is not None:
            return _record_id(found, "attachment", self.name)
        record = self.client.post("/Attachment", [{
            "ticket_id": tid,
            "filename": filename,
            "data_base64": base64.b64encode(content).decode("ascii"),
            "desc": marked_title(title, key, DESC_LENGTH),
            "isimage": False,
        }])
        return _record_id(record, "attachment", self.name)

    def set_status(self, ticket: SubjectRef, status: str) -> None:
        """Move the ticket to the named status (no-op when it is already there).

        Raises:
            NotFound: the ticket's type has no status of that name.
        """
        tid = self._ticket_id(ticket)
        record = self.client.get_object(f"/Tickets/{tid}")
        type_id = record.get("tickettype_id") if isinstance(
            record.get("tickettype_id"), int) else None
        names: Names = self.lookups.names(need_statuses=[record.get("status_id") or 0])
        current = status_name(record, names) or ""
        if current.casefold() == status.casefold():
            return
        sid = self.lookups.status_id(status, type_id)
        if sid is None:
            raise NotFound(f"status {status!r} not found for the ticket's type",
                           source=self.name)
        note = with_marker(f"Status set to {status} by msphub.", f"status-{tid}-{sid}")
        self._action(tid, note, hidden=True, outcome=self.config.status_outcome,
                     new_status=sid)
        log.info("ticket_status_set", source=self.name, ticket=str(tid), status=status)

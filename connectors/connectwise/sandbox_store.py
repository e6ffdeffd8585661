"""In-memory ConnectWise records for the sandbox, in vendor shapes, behind one lock.

Every change calls ``on_change(type, action, record, member)`` so the sandbox can send
callbacks. Changes made through the HTTP API are by the API member; changes made through
the Python API are by a technician unless ``member=`` says otherwise.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.connectwise.sandbox_query import compile_conditions, sort_records

Record = dict[str, Any]
ChangeHook = Callable[[str, str, Record, str], None]

API_MEMBER_ID = "msphub-api"
TECH_MEMBER_ID = "tech1"
API_MEMBER: Record = {"id": 178, "identifier": API_MEMBER_ID, "name": "msphub API"}
TECH_MEMBER: Record = {"id": 12, "identifier": TECH_MEMBER_ID, "name": "Technician One"}
_BOARDS = {
    1: ("Service Desk", ["New", "In Progress", "Waiting", "Completed", "Closed"]),
    2: ("HR", ["New", "In Progress", "Completed"]),
}
_CLOSED = {"Completed", "Closed"}


class SandboxError(Exception):
    """A vendor-shaped error response (``{code, message, errors}``)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: Record = {"code": code, "message": message}
        if field:
            self.body["errors"] = [{"code": "Invalid", "message": message, "field": field}]


class SandboxStore:
    """Companies, contacts, tickets (+notes), agreements, boards, documents and callbacks."""

    def __init__(self, *, clock: Callable[[], datetime], on_change: ChangeHook | None = None):
        self.clock = clock
        self.on_change = on_change
        self.lock = threading.RLock()
        self._ids = itertools.count(1000)
        self.tables: dict[str, dict[int, Record]] = {
            k: {}
            for k in ("companies", "contacts", "tickets", "agreements", "documents", "callbacks")
        }
        self.notes: dict[int, list[Record]] = {}
        self.contents: dict[int, bytes] = {}
        self.boards: dict[int, Record] = {}
        self.statuses: dict[int, list[Record]] = {}
        status_ids = itertools.count(1)
        for board_id, (name, statuses) in _BOARDS.items():
            self.boards[board_id] = {"id": board_id, "name": name, "inactiveFlag": False}
            self.statuses[board_id] = [
                {
                    "id": next(status_ids),
                    "name": s,
                    "boardId": board_id,
                    "sortOrder": i,
                    "closedStatus": s in _CLOSED,
                    "defaultFlag": i == 0,
                    "inactive": False,
                }
                for i, s in enumerate(statuses)
            ]
        self._names: dict[str, int] = {}

    # -- helpers --------------------------------------------------------------------------

    def now(self) -> str:
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _ref(self, kind: str, name: str | None) -> Record | None:
        if not name:
            return None
        rid = self._names.setdefault(f"{kind}:{name.casefold()}", len(self._names) + 1)
        return {"id": rid, "name": name}

    def _touch(self, record: Record, member: str, *, created: bool = False) -> None:
        stamp = self.now()
        info = record.setdefault("_info", {})
        if created:
            info.update(dateEntered=stamp, enteredBy=member)
        info.update(lastUpdated=stamp, updatedBy=member)

    def _emit(self, rtype: str, action: str, record: Record, member: str) -> Record:
        snapshot = copy.deepcopy(record)
        if self.on_change is not None:
            self.on_change(rtype, action, snapshot, member)
        return snapshot

    def _need(self, table: str, rid: int) -> Record:
        record = self.tables[table].get(rid)
        if record is None:
            raise SandboxError(404, "NotFound", f"{table[:-1]} {rid} not found")
        return record

    def board_by_name(self, name: str) -> Record:
        for board in self.boards.values():
            if board["name"].casefold() == name.casefold():
                return board
        raise SandboxError(400, "InvalidObject", f"board {name!r} does not exist", "board")

    def _status(self, board_id: int, name: str | None = None, sid: int | None = None) -> Record:
        for status in self.statuses[board_id]:
            if (sid is not None and status["id"] == sid) or (
                name is not None and status["name"].casefold() == name.casefold()
            ):
                return status
        raise SandboxError(400, "InvalidObject", "status is not valid for the board", "status")

    def company_ref(self, company_id: int) -> Record:
        company = self._need("companies", company_id)
        return {k: company[k] for k in ("id", "identifier", "name")}

    # -- reads ----------------------------------------------------------------------------

    def query(
        self,
        table: str,
        conditions: str | None,
        order_by: str | None,
        *,
        page: int = 1,
        page_size: int = 25,
        extra: Callable[[Record], bool] | None = None,
    ) -> tuple[list[Record], int]:
        """One page of matching records (deep copies) and the total number of matches."""
        predicate = compile_conditions(conditions)
        with self.lock:
            rows = [
                r
                for r in self.tables[table].values()
                if predicate(r) and (extra is None or extra(r))
            ]
            rows = sort_records(rows, order_by)
            chunk = rows[(page - 1) * page_size : page * page_size]
            return copy.deepcopy(chunk), len(rows)

    def get(self, table: str, rid: int) -> Record:
        with self.lock:
            return copy.deepcopy(self._need(table, rid))

    def ticket_notes(self, ticket_id: int) -> list[Record]:
        with self.lock:
            self._need("tickets", ticket_id)
            return copy.deepcopy(self.notes.get(ticket_id, []))

    # -- writes ---------------------------------------------------------------------------

    def create_company(
        self, name: str, identifier: str | None = None, *, member: str = TECH_MEMBER_ID
    ) -> Record:
        with self.lock:
            record: Record = {
                "id": next(self._ids),
                "identifier": identifier or name.upper().replace(" ", "")[:25],
                "name": name,
                "status": {"id": 1, "name": "Active"},
                "types": [{"id": 1, "name": "Client"}],
                "deletedFlag": False,
            }
            self._touch(record, member, created=True)
            self.tables["companies"][record["id"]] = record
            return self._emit("company", "added", record, member)

    def create_contact(
        self, company_id: int, first_name: str, last_name: str, email: str | None = None
    ) -> Record:
        with self.lock:
            record: Record = {
                "id": next(self._ids),
                "firstName": first_name,
                "lastName": last_name,
                "company": self.company_ref(company_id),
                "communicationItems": [
                    {
                        "type": {"id": 1, "name": "Email"},
                        "value": email,
                        "defaultFlag": True,
                        "communicationType": "Email",
                    }
                ]
                if email
                else [],
            }
            self._touch(record, TECH_MEMBER_ID, created=True)
            self.tables["contacts"][record["id"]] = record
            return copy.deepcopy(record)

    def create_ticket(self, fields: Mapping[str, Any], *, member: str) -> Record:
        with self.lock:
            board = self.board_by_name(fields.get("board") or "Service Desk")
            status = self._status(board["id"], name=fields.get("status") or "New")
            contact = None
            if fields.get("contact_id") is not None:
                contact = self._need("contacts", int(fields["contact_id"]))
            email = next((c["value"] for c in (contact or {}).get("communicationItems", [])), None)
            custom = fields.get("custom_fields") or {}
            record: Record = {
                "id": next(self._ids),
                "summary": str(fields.get("summary") or "")[:100],
                "recordType": "ServiceTicket",
                "board": {"id": board["id"], "name": board["name"]},
                "status": {"id": status["id"], "name": status["name"]},
                "company": self.company_ref(int(fields["company_id"])),
                "contact": {
                    "id": contact["id"],
                    "name": f"{contact['firstName']} {contact['lastName']}",
                }
                if contact
                else None,
                "contactEmailAddress": email,
                "type": self._ref("type", fields.get("type")),
                "subType": self._ref("subtype", fields.get("sub_type")),
                "item": self._ref("item", fields.get("item")),
                "priority": {"id": 3, "name": "Priority 3 - Normal"},
                "agreement": None,
                "closedFlag": False,
                "closedDate": None,
                "closedBy": None,
                "customerUpdatedFlag": False,
                "initialDescription": fields.get("description"),
                "customFields": [
                    {
                        "id": i + 1,
                        "caption": k,
                        "type": "Text",
                        "entryMethod": "EntryField",
                        "numberOfDecimals": 0,
                        "value": v,
                    }
                    for i, (k, v) in enumerate(custom.items())
                ],
            }
            self._touch(record, member, created=True)
            self.tables["tickets"][record["id"]] = record
            return self._emit("ticket", "added", record, member)

    def update_ticket(self, ticket_id: int, changes: Mapping[str, Any], *, member: str) -> Record:
        """Apply simple field changes (status/board/type by name, other fields as given)."""
        with self.lock:
            record = self._need("tickets", ticket_id)
            for key, value in changes.items():
                if key == "board":
                    board = self.board_by_name(value)
                    record["board"] = {"id": board["id"], "name": board["name"]}
                    self._set_status(record, self._status(board["id"], name="New"), member)
                elif key == "status":
                    self._set_status(
                        record, self._status(record["board"]["id"], name=value), member
                    )
                elif key == "status_id":
                    self._set_status(record, self._status(record["board"]["id"], sid=value), member)
                elif key in ("type", "subType", "item"):
                    record[key] = self._ref(key.lower(), value)
                else:
                    record[key] = value
            self._touch(record, member)
            return self._emit("ticket", "updated", record, member)

    def _set_status(self, record: Record, status: Record, member: str) -> None:
        record["status"] = {"id": status["id"], "name": status["name"]}
        closed = bool(status["closedStatus"])
        if closed and not record["closedFlag"]:
            record.update(closedFlag=True, closedDate=self.now(), closedBy=member)
        elif not closed:
            record.update(closedFlag=False, closedDate=None, closedBy=None)

    def patch_ticket(self, ticket_id: int, operations: Any, *, member: str) -> Record:
        """Apply a JSON-Patch array (``replace`` of top-level fields; ``status`` by id)."""
        if not isinstance(operations, list) or not operations:
            raise SandboxError(400, "InvalidObject", "PATCH body must be a JSON-Patch array")
        changes: dict[str, Any] = {}
        for op in operations:
            if not isinstance(op, dict) or op.get("op") != "replace" or not op.get("path"):
                raise SandboxError(400, "InvalidObject", "only 'replace' operations are supported")
            path, value = str(op["path"]).strip("/"), op.get("value")
            if path == "status":
                sid = value.get("id") if isinstance(value, dict) else None
                if not isinstance(sid, int):
                    raise SandboxError(400, "InvalidObject", "status needs an id", "status")
                changes["status_id"] = sid
            elif path in ("summary", "skipCallback", "customerUpdatedFlag", "initialDescription"):
                changes[path] = value
            else:
                raise SandboxError(400, "InvalidObject", f"cannot patch {path!r}", path)
        return self.update_ticket(ticket_id, changes, member=member)

    def add_note(self, ticket_id: int, body: Any, *, member: Record) -> Record:
        if not isinstance(body, dict) or not str(body.get("text") or "").strip():
            raise SandboxError(400, "InvalidObject", "text is required", "text")
        flags = ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")
        if not any(body.get(f) is True for f in flags):
            raise SandboxError(400, "InvalidObject", "a note needs one of the flags set", "flags")
        with self.lock:
            ticket = self._need("tickets", ticket_id)
            stamp = self.now()
            note: Record = {
                "id": next(self._ids),
                "ticketId": ticket_id,
                "text": body["text"],
                **{f: bool(body.get(f)) for f in flags},
                "member": dict(member),
                "dateCreated": stamp,
                "createdBy": member["identifier"],
                "internalFlag": bool(body.get("internalAnalysisFlag")),
                "externalFlag": bool(body.get("detailDescriptionFlag")),
                "_info": {"lastUpdated": stamp, "updatedBy": member["identifier"]},
            }
            self.notes.setdefault(ticket_id, []).append(note)
            # A new note changes the ticket, as in ConnectWise: a ticket callback follows.
            self._touch(ticket, member["identifier"])
            self._emit("ticket", "updated", ticket, member["identifier"])
            return copy.deepcopy(note)

    def create_agreement(self, fields: Mapping[str, Any], *, member: str) -> Record:
        with self.lock:
            start = fields.get("start_date") or self.now()[:10]
            record: Record = {
                "id": next(self._ids),
                "name": fields["name"],
                "type": self._ref("agreementtype", fields.get("type") or "Managed Services"),
                "company": self.company_ref(int(fields["company_id"])),
                "contact": None,
                "startDate": f"{start}T00:00:00Z",
                "endDate": f"{fields['end_date']}T00:00:00Z" if fields.get("end_date") else None,
                "noEndingDateFlag": not fields.get("end_date"),
                "agreementStatus": fields.get("status") or "Active",
                "cancelledFlag": False,
                "customFields": [],
            }
            self._touch(record, member, created=True)
            self.tables["agreements"][record["id"]] = record
            return self._emit("agreement", "added", record, member)

    def update_agreement(
        self, agreement_id: int, changes: Mapping[str, Any], *, member: str
    ) -> Record:
        with self.lock:
            record = self._need("agreements", agreement_id)
            record.update(changes)
            self._touch(record, member)
            return self._emit("agreement", "updated", record, member)

    def add_document(
        self, fields: Mapping[str, str], filename: str, content: bytes, *, member: str
    ) -> Record:
        record_type, record_id = fields.get("recordType"), fields.get("recordId", "")
        if record_type != "Ticket" or not record_id.isdigit():
            raise SandboxError(400, "InvalidObject", "recordType/recordId are required", "recordId")
        with self.lock:
            self._need("tickets", int(record_id))
            rid = next(self._ids)
            record: Record = {
                "id": rid,
                "title": fields.get("title") or filename,
                "fileName": filename,
                "serverFileName": uuid.uuid4().hex,
                "owner": member,
                "linkFlag": False,
                "imageFlag": False,
                "publicFlag": False,
                "readOnlyFlag": fields.get("readOnlyFlag") == "true",
                "size": len(content),
                "guid": str(uuid.uuid4()),
                "recordType": record_type,
                "recordId": int(record_id),
                "_info": {"lastUpdated": self.now(), "updatedBy": member},
            }
            self.tables["documents"][rid] = record
            self.contents[rid] = content
            return copy.deepcopy(record)

    def add_callback(self, body: Any, *, member: Record) -> Record:
        if not isinstance(body, dict) or not body.get("url") or not body.get("type"):
            raise SandboxError(400, "InvalidObject", "url and type are required", "url")
        with self.lock:
            record: Record = {
                "id": next(self._ids),
                "url": body["url"],
                "objectId": body.get("objectId", 1),
                "type": str(body["type"]).lower(),
                "level": body.get("level", "owner"),
                "description": body.get("description"),
                "memberId": member["id"],
                "inactiveFlag": bool(body.get("inactiveFlag", False)),
                "isSelfSuppressedFlag": bool(body.get("isSelfSuppressedFlag", False)),
                "isSoapCallbackFlag": False,
                "payloadVersion": body.get("payloadVersion"),
                "_info": {"lastUpdated": self.now(), "updatedBy": member["identifier"]},
            }
            self.tables["callbacks"][record["id"]] = record
            return copy.deepcopy(record)

    def delete(self, table: str, rid: int) -> None:
        with self.lock:
            self._need(table, rid)
            del self.tables[table][rid]

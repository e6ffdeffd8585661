"""The Autotask sandbox's record routes: ``{Entity}/query`` with POSTed paging, field
metadata with picklists, ticket PATCH, notes and attachments (with Autotask's limits)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.autotask.sandbox_store import PICKLISTS, WEBHOOK_FIELDS, SandboxStore
from connectors.autotask.sandbox_webhooks import errors as _errors

MAX_FILE = 6_000_000
WINDOW_BYTES, WINDOW_SECONDS = 10_000_000, 300.0


class RecordRoutes:
    """Handlers behind the sandbox's router (auth, zone and limits are checked before)."""

    def __init__(self, store: SandboxStore, zone_url: Callable[[], str]) -> None:
        self.store = store
        self.zone_url = zone_url
        self._lock = threading.Lock()
        self._uploads: deque[tuple[float, int]] = deque()
        self._notes_fail = 0

    def fail_notes_after_apply(self, count: int) -> None:
        """Store the next ``count`` notes, then answer 500 instead of their itemId."""
        with self._lock:
            self._notes_fail = count

    def query(self, request: Request, entity: str, parts: list[str], body: Any) -> Response:
        if entity not in self.store.tables:
            return _errors(404, f"unknown entity {entity}")
        if request.method == "GET":
            search = request.query_params.get("search")
            body = json.loads(search) if search else None
        if not isinstance(body, dict):
            return _errors(400, "query body must be an object")
        after = 0
        if len(parts) == 3 and parts[2] == "next":
            token = parse_qs(request.url.query).get("paging", [""])[0]
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
            except (ValueError, binascii.Error):
                return _errors(400, "invalid paging token")
            if state.get("body") != _digest(body):
                return _errors(400, "the next page must be requested with the same query")
            after = int(state["after"])
        limit = body.get("MaxRecords", body.get("maxRecords", 500))
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            return _errors(400, "MaxRecords must be between 1 and 500")
        items, more = self.store.query(entity, body.get("filter") or body.get("Filter") or [],
                                       after=after, limit=limit)
        include = body.get("IncludeFields") or body.get("includeFields")
        if include:
            wanted = {f.lower() for f in include} | {"id"}
            items = [{k: v for k, v in i.items() if k.lower() in wanted} for i in items]
        elif entity == "ticketattachments":
            items = [{k: v for k, v in i.items() if k != "data"} for i in items]
        next_url = None
        if more:
            token = base64.urlsafe_b64encode(json.dumps(
                {"after": items[-1]["id"], "body": _digest(body)}).encode()).decode()
            next_url = f"{self.zone_url()}V1.0/{_title(entity)}/query/next?paging={token}"
        return JSONResponse({"items": items, "pageDetails": {
            "count": len(items), "requestCount": limit, "prevPageUrl": None,
            "nextPageUrl": next_url}})

    def fields(self, entity: str) -> Response:
        if entity == "ticketwebhookfields":
            picklists = {"fieldID": WEBHOOK_FIELDS}
        else:
            picklists = PICKLISTS.get(entity, {})
        fields = [{"name": "id", "dataType": "long", "isPickList": False,
                   "isRequired": True, "picklistValues": None}]
        for name, values in picklists.items():
            fields.append({"name": name, "dataType": "integer", "isPickList": True,
                           "isRequired": False, "picklistValues": [
                               {"value": str(v), "label": label, "isActive": True,
                                "isDefaultValue": False, "sortOrder": i}
                               for i, (v, label) in enumerate(values.items())]})
        return JSONResponse({"fields": fields})

    def patch_ticket(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            return _errors(400, "id is required")
        if self.store.get("tickets", body["id"]) is None:
            return _errors(500, "Ticket not found")
        status = body.get("status")
        if status is not None and status not in PICKLISTS["tickets"]["status"]:
            return _errors(500, f"Value {status} is not a valid status")
        changes = {k: v for k, v in body.items() if k != "id"}
        self.store.update_ticket(body["id"], by=self.store.api_resource["id"], **changes)
        return JSONResponse({"itemId": body["id"]})

    def ticket_child(self, ticket_id: int, child: str, body: Any) -> Response:
        if self.store.get("tickets", ticket_id) is None:
            return _errors(500, "Ticket not found")
        if not isinstance(body, dict):
            return _errors(400, "body must be an object")
        api = self.store.api_resource["id"]
        if child == "notes":
            if not body.get("title") or not body.get("description"):
                return _errors(500, "title and description are required")
            if body.get("noteType") not in PICKLISTS["ticketnotes"]["noteType"] or \
                    body.get("publish") not in PICKLISTS["ticketnotes"]["publish"]:
                return _errors(500, "noteType or publish is not a valid picklist value")
            if len(str(body["description"])) > 32_000:
                return _errors(500, "description is longer than 32000 characters")
            note = self.store.add_note(ticket_id, body, by=api)
            with self._lock:
                lost = self._notes_fail > 0
                self._notes_fail -= 1 if lost else 0
            if lost:
                return _errors(500, "forced by the sandbox after storing the note")
            return JSONResponse({"itemId": note["id"]})
        if child == "attachments":
            try:
                size = len(base64.b64decode(str(body.get("data") or ""), validate=True))
            except (ValueError, binascii.Error):
                return _errors(500, "data is not base64")
            if size > MAX_FILE:
                return _errors(500, "The file exceeds the maximum attachment size")
            if not self._upload_fits(size):
                return _errors(500, "Attachment upload limit of 10000000 bytes per 5 "
                                    "minutes exceeded")
            record = self.store.add_attachment(ticket_id, body, size, by=api)
            return JSONResponse({"itemId": record["id"]})
        return _errors(405, f"tickets/{ticket_id}/{child} is not supported")

    def _upload_fits(self, size: int) -> bool:
        with self._lock:
            now = time.monotonic()
            while self._uploads and self._uploads[0][0] < now - WINDOW_SECONDS:
                self._uploads.popleft()
            if sum(n for _, n in self._uploads) + size > WINDOW_BYTES:
                return False
            self._uploads.append((now, size))
            return True


def _digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _title(entity: str) -> str:
    names = {"tickets": "Tickets", "contracts": "Contracts", "companies": "Companies",
             "contacts": "Contacts", "ticketnotes": "TicketNotes", "resources": "Resources",
             "ticketattachments": "TicketAttachments", "ticketwebhooks": "TicketWebhooks"}
    return names.get(entity, entity)

"""The Autotask sandbox's records and query engine: vendor shapes, picklists, the filter
grammar (``{op, field, value}`` / ``{op: and|or, items}``) and id-ordered paging."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]
# Called after a ticket changed: (action "Create" | "Update", ticket, changed fields, actor).
TicketHook = Callable[[str, Record, set[str], int], None]

PICKLISTS: dict[str, dict[str, dict[int, str]]] = {
    "tickets": {
        "queueID": {29683482: "HR Requests", 29683483: "Service Desk",
                    29683484: "Monitoring Alerts", 29683485: "Projects"},
        "issueType": {17: "User Management", 18: "Hardware", 19: "Software"},
        "subIssueType": {233: "Leaver", 234: "New Starter", 235: "Password Reset",
                         236: "Laptop Repair"},
        "status": {1: "New", 5: "Complete", 7: "Waiting Customer", 8: "In Progress",
                   12: "Waiting Vendor"},
        "priority": {1: "High", 2: "Medium", 3: "Low", 4: "Critical"},
        "ticketType": {1: "Service Request", 2: "Incident", 3: "Problem", 4: "Change Request"},
        "ticketCategory": {3: "Standard", 4: "RMM Alert"},
        "source": {2: "Email", 4: "Phone", 8: "Client Portal"},
    },
    "contracts": {
        "contractType": {1: "Time & Materials", 3: "Fixed Price", 4: "Block Hours",
                         6: "Retainer", 7: "Recurring Service", 8: "Per Ticket"},
        "contractCategory": {11: "Managed Services", 12: "Break-Fix", 13: "Projects"},
        "status": {0: "Inactive", 1: "Active"},
    },
    "ticketnotes": {
        "noteType": {1: "Task Detail", 2: "Resolution", 3: "Summary", 13: "Internal Notes"},
        "publish": {1: "All Autotask Users", 2: "Internal Users"},
    },
}
# Ticket fields a webhook may subscribe to: fieldID → name (TicketWebhookFields' picklist).
WEBHOOK_FIELDS = {1: "status", 2: "issueType", 3: "subIssueType", 4: "queueID", 5: "title",
                  6: "ticketNumber", 7: "companyID", 8: "priority", 9: "contactID",
                  10: "assignedResourceID", 11: "description"}


def stamp(when: datetime) -> str:
    """Autotask's timestamp shape: UTC with milliseconds and ``Z``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _get(record: Mapping[str, Any], field: str) -> Any:
    lowered = field.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    return None


def _compare(left: Any, right: Any) -> int | None:
    """-1/0/1, comparing times as times and text case-insensitively; None: incomparable."""
    lt, rt = _time(left), _time(right)
    if lt is not None and rt is not None:
        a, b = lt, rt
        return (a > b) - (a < b)
    if isinstance(left, bool) or isinstance(right, bool):
        return 0 if left == right else None
    if isinstance(left, int | float) and isinstance(right, int | float):
        return (left > right) - (left < right)
    if isinstance(left, str) and isinstance(right, str):
        x, y = left.casefold(), right.casefold()
        return (x > y) - (x < y)
    if isinstance(left, int) and isinstance(right, str) and right.lstrip("-").isdigit():
        return (left > int(right)) - (left < int(right))
    return None


class FilterError(ValueError):
    """A filter the sandbox (like Autotask) refuses."""


def matches(record: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """Evaluate one Autotask filter condition against a record."""
    op = str(condition.get("op", "")).lower()
    if op in ("and", "or"):
        items = condition.get("items")
        if not isinstance(items, list) or not items:
            raise FilterError(f"'{op}' needs a non-empty items list")
        results = [matches(record, item) for item in items]
        return all(results) if op == "and" else any(results)
    field = condition.get("field")
    if not isinstance(field, str) or not field:
        raise FilterError("a condition needs a field")
    if condition.get("udf"):
        udfs = {u.get("name", "").lower(): u.get("value")
                for u in record.get("userDefinedFields") or []}
        actual = udfs.get(field.lower())
    else:
        actual = _get(record, field)
    value = condition.get("value")
    if op == "exist":
        return actual not in (None, "")
    if op == "notexist":
        return actual in (None, "")
    if op in ("in", "notin"):
        if not isinstance(value, list):
            raise FilterError(f"'{op}' needs a list value")
        if len(value) > 500:
            raise FilterError("at most 500 values in one 'in'")
        found = any(_compare(actual, v) == 0 for v in value)
        return found if op == "in" else not found
    if op in ("contains", "beginswith", "endswith"):
        if not isinstance(actual, str) or not isinstance(value, str):
            return False
        a, v = actual.casefold(), value.casefold()
        return {"contains": v in a, "beginswith": a.startswith(v),
                "endswith": a.endswith(v)}[op]
    cmp = _compare(actual, value)
    if op == "eq":
        return cmp == 0
    if op == "noteq":
        return cmp != 0
    if cmp is None:
        return False
    checks = {"gt": cmp > 0, "gte": cmp >= 0, "lt": cmp < 0, "lte": cmp <= 0}
    if op not in checks:
        raise FilterError(f"unknown operator '{op}'")
    return checks[op]


class SandboxStore:
    """Companies, contacts, tickets, contracts, notes, attachments, resources, webhooks."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 on_ticket: TicketHook | None = None, api_user: str = "api@sandbox.example"
                 ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_ticket = on_ticket
        self.lock = threading.RLock()
        self.tables: dict[str, dict[int, Record]] = {
            name: {} for name in ("companies", "contacts", "tickets", "contracts",
                                  "ticketnotes", "ticketattachments", "resources",
                                  "ticketwebhooks", "ticketwebhookfields",
                                  "ticketwebhookexcludedresources")}
        self._next = 29_000_000
        self.api_resource = self.create_resource("API", "User", user_name=api_user)
        self.technician = self.create_resource("Tess", "Tech", user_name="tess@msp.example")

    def _id(self) -> int:
        self._next += 1
        return self._next

    def now(self) -> str:
        return stamp(self.clock())

    def _insert(self, table: str, record: Record) -> Record:
        with self.lock:
            record.setdefault("id", self._id())
            self.tables[table][record["id"]] = record
            return dict(record)

    def get(self, table: str, record_id: int) -> Record | None:
        with self.lock:
            found = self.tables[table].get(record_id)
            return dict(found) if found is not None else None

    def rows(self, table: str) -> list[Record]:
        with self.lock:
            return [dict(r) for r in sorted(self.tables[table].values(), key=lambda r: r["id"])]

    def query(self, table: str, filters: list[Any], *, after: int, limit: int
              ) -> tuple[list[Record], bool]:
        """Matching rows with id > ``after`` in id order, and whether more follow."""
        if not isinstance(filters, list) or not filters:
            raise FilterError("a query needs at least one filter condition")
        with self.lock:
            hits = [r for r in self.rows(table) if r["id"] > after
                    and all(matches(r, c) for c in filters)]
        return hits[:limit], len(hits) > limit

    # -- people and companies -----------------------------------------------------------

    def create_resource(self, first: str, last: str, *, user_name: str) -> Record:
        """A resource (an Autotask user; API users are resources too)."""
        return self._insert("resources", {"firstName": first, "lastName": last,
                                          "userName": user_name, "email": user_name,
                                          "isActive": True})

    def create_company(self, name: str, **fields: Any) -> Record:
        """A company (a client)."""
        return self._insert("companies", {"companyName": name, "companyType": 1,
                                          "isActive": True, "createDate": self.now(),
                                          **fields})

    def create_contact(self, company_id: int, first: str, last: str, email: str) -> Record:
        """A contact of a company."""
        return self._insert("contacts", {"companyID": company_id, "firstName": first,
                                         "lastName": last, "emailAddress": email,
                                         "isActive": 1})

    # -- tickets --------------------------------------------------------------------------

    def create_ticket(self, title: str, *, company_id: int, queue: int = 29683482,
                      issue_type: int | None = 17, sub_issue_type: int | None = 233,
                      contact_id: int | None = None, status: int = 1,
                      udfs: Mapping[str, Any] | None = None, by: int | None = None,
                      notify: bool = True, **fields: Any) -> Record:
        """A ticket entered by ``by`` (default: the technician); fires the Create webhook."""
        actor = by or self.technician["id"]
        with self.lock:
            tid = self._id()
            now = self.now()
            ticket: Record = {
                "id": tid, "ticketNumber": f"T{self.clock():%Y%m%d}.{tid % 10000:04d}",
                "title": title, "description": fields.pop("description", ""),
                "status": status, "queueID": queue, "issueType": issue_type,
                "subIssueType": sub_issue_type, "ticketType": 1, "ticketCategory": 3,
                "priority": 2, "source": 4, "companyID": company_id, "contactID": contact_id,
                "contractID": None, "createDate": now, "lastActivityDate": now,
                "lastTrackedModificationDateTime": now, "completedDate": None,
                "creatorResourceID": actor, "lastActivityResourceID": actor,
                "assignedResourceID": None,
                "userDefinedFields": [{"name": k, "value": v} for k, v in (udfs or {}).items()],
                **fields,
            }
            self.tables["tickets"][tid] = ticket
            snapshot = dict(ticket)
        if notify and self.on_ticket is not None:
            self.on_ticket("Create", snapshot, set(snapshot), actor)
        return snapshot

    def update_ticket(self, ticket_id: int, *, by: int | None = None, notify: bool = True,
                      **changes: Any) -> Record:
        """Change ticket fields as ``by`` (default: the technician); fires Update."""
        actor = by or self.technician["id"]
        with self.lock:
            ticket = self.tables["tickets"][ticket_id]
            changed = {k for k, v in changes.items() if ticket.get(k) != v}
            ticket.update(changes)
            now = self.now()
            ticket.update(lastActivityDate=now, lastTrackedModificationDateTime=now,
                          lastActivityResourceID=actor)
            if "status" in changed:
                ticket["completedDate"] = now if ticket["status"] == 5 else None
            snapshot = dict(ticket)
        if notify and changed and self.on_ticket is not None:
            self.on_ticket("Update", snapshot, changed, actor)
        return snapshot

    def add_note(self, ticket_id: int, body: Mapping[str, Any], *, by: int) -> Record:
        """A ticket note (bumps the ticket's activity, as Autotask does)."""
        with self.lock:
            ticket = self.tables["tickets"][ticket_id]
            now = self.now()
            note = self._insert("ticketnotes", {
                "ticketID": ticket_id, "title": body.get("title"),
                "description": body.get("description"), "noteType": body.get("noteType"),
                "publish": body.get("publish"), "createDateTime": now,
                "lastActivityDate": now, "creatorResourceID": by})
            ticket.update(lastActivityDate=now, lastActivityResourceID=by)
            return note

    def notes(self, ticket_id: int) -> list[Record]:
        """The ticket's notes, oldest first."""
        return [n for n in self.rows("ticketnotes") if n["ticketID"] == ticket_id]

    def add_attachment(self, ticket_id: int, body: Mapping[str, Any], size: int, *,
                       by: int) -> Record:
        """A ticket attachment (``data`` kept base64, as sent)."""
        with self.lock:
            if ticket_id not in self.tables["tickets"]:
                raise KeyError(ticket_id)
            return self._insert("ticketattachments", {
                "parentID": ticket_id, "parentType": 4, "title": body.get("title"),
                "fullPath": body.get("fullPath"), "attachmentType": body.get("attachmentType"),
                "publish": body.get("publish"), "fileSize": size, "data": body.get("data"),
                "createDate": self.now(), "creatorID": by})

    def attachments(self, ticket_id: int) -> list[Record]:
        """The ticket's attachments."""
        return [a for a in self.rows("ticketattachments") if a["parentID"] == ticket_id]

    # -- contracts -----------------------------------------------------------------------

    def create_contract(self, company_id: int, name: str, *, category: int | None = 11,
                        contract_type: int = 7, start: str | None = None,
                        end: str | None = None, status: int = 1, **fields: Any) -> Record:
        """A contract (no webhook: Autotask has none for contracts)."""
        today = self.clock().astimezone(UTC).date().isoformat()
        with self.lock:
            cid = self._id()
            return self._insert("contracts", {
                "id": cid, "contractName": name, "contractNumber": f"C{cid}",
                "contractType": contract_type, "contractCategory": category,
                "companyID": company_id, "contactID": fields.pop("contact_id", None),
                "startDate": f"{start or today}T00:00:00.000Z",
                "endDate": f"{end}T00:00:00.000Z" if end else None,
                "status": status, "isDefaultContract": False, "description": "",
                "userDefinedFields": [], **fields})

    def update_contract(self, contract_id: int, **changes: Any) -> Record:
        """Change contract fields (status 0 = inactive)."""
        with self.lock:
            contract = self.tables["contracts"][contract_id]
            contract.update(changes)
            return dict(contract)

    # -- webhooks -----------------------------------------------------------------------

    def new_webhook(self, body: Mapping[str, Any]) -> Record:
        """A TicketWebhooks entry (not ready until it has a subscribed field)."""
        record = {k: v for k, v in body.items() if k != "id"}
        record.update(webhookGUID=str(uuid.uuid4()), isReady=False,
                      isActive=bool(body.get("isActive")))
        return self._insert("ticketwebhooks", record)

    def webhook_children(self, table: str, webhook_id: int) -> list[Record]:
        return [r for r in self.rows(table) if r.get("webhookID") == webhook_id]

    def delete_webhook(self, webhook_id: int) -> bool:
        with self.lock:
            gone = self.tables["ticketwebhooks"].pop(webhook_id, None)
            for table in ("ticketwebhookfields", "ticketwebhookexcludedresources"):
                for rid in [r for r, v in self.tables[table].items()
                            if v.get("webhookID") == webhook_id]:
                    del self.tables[table][rid]
            return gone is not None

    def add_webhook_child(self, table: str, webhook_id: int, body: Mapping[str, Any]
                          ) -> Record:
        """A field or excluded resource of a webhook; a subscribed field makes it ready."""
        child = self._insert(table, {**{k: v for k, v in body.items() if k != "id"},
                                     "webhookID": webhook_id})
        self.refresh_ready(webhook_id)
        return child

    def refresh_ready(self, webhook_id: int) -> None:
        with self.lock:
            hook = self.tables["ticketwebhooks"].get(webhook_id)
            if hook is not None:
                hook["isReady"] = any(f.get("isSubscribedField") for f in
                                      self.webhook_children("ticketwebhookfields", webhook_id))

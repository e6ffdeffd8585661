"""The HaloPSA sandbox's records in vendor shapes: clients, tickets, actions, attachments,
contracts and the tenant's ticket types and statuses (thread-safe)."""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]
# Called after a change that Halo would send a webhook for: (event name, ticket, action).
ChangeHook = Callable[[str, Record, Record | None], None]

TICKET_TYPES = {1: "Incident", 2: "Service Request", 27: "Leaver", 28: "New Starter"}
STATUSES = {1: "New", 2: "In Progress", 3: "Waiting on User", 8: "Completed", 9: "Closed"}
CLOSED_STATUS = 9
AGENT_TECH = 3  # a technician's agent id (changes made "in the UI")
# Fields the listing leaves out (Halo sends them on GET /Tickets/{id}?includedetails=true).
DETAIL_ONLY = ("customfields", "details", "tickettype_name", "status_name")


def halo_time(when: datetime) -> str:
    """Halo's wire format: UTC without an offset, milliseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def parse_halo_time(value: str) -> datetime:
    """Parse a filter value the way Halo does (no offset: UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class SandboxError(Exception):
    """A request the sandbox refuses (status and Halo-like message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SandboxStore:
    """One simulated Halo tenant."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 on_change: ChangeHook | None = None, api_agent_id: int = 7) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_change = on_change
        self.api_agent_id = api_agent_id
        self.lock = threading.RLock()
        self.clients: dict[int, Record] = {}
        self.tickets: dict[int, Record] = {}
        self.actions: dict[int, list[Record]] = {}
        self.attachments: dict[int, list[Record]] = {}
        self.contracts: dict[int, Record] = {}
        self.ticket_types = dict(TICKET_TYPES)
        self.statuses = dict(STATUSES)
        self._ids = {"client": 10, "ticket": 4800, "action": 90000, "attachment": 500,
                     "contract": 300, "user": 80}

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def now(self) -> str:
        """The tenant's clock in wire format."""
        return halo_time(self.clock())

    def _emit(self, event: str, ticket: Record, action: Record | None = None) -> None:
        if self.on_change is not None:
            self.on_change(event, dict(ticket), dict(action) if action else None)

    # -- records ----------------------------------------------------------------------

    def create_client(self, name: str) -> Record:
        """A Halo client (customer)."""
        with self.lock:
            cid = self._next("client")
            client: Record = {"id": cid, "name": name, "inactive": False}
            self.clients[cid] = client
            return dict(client)

    def type_id(self, name: str) -> int:
        """The id of a ticket type by name (case-insensitive)."""
        for tid, tname in self.ticket_types.items():
            if tname.casefold() == name.casefold():
                return tid
        raise KeyError(name)

    def create_ticket(self, summary: str, *, client_id: int, ticket_type: str = "Incident",
                      team: str = "Service Desk", user_name: str | None = None,
                      category_1: str | None = None,
                      custom_fields: Mapping[str, Any] | None = None,
                      notify: bool = True) -> Record:
        """A ticket logged by a technician; sends the "New Ticket Logged" webhook."""
        with self.lock:
            client = self.clients[client_id]
            now = self.now()
            tid = self._next("ticket")
            fields = [{"id": 100 + i, "name": "CF" + label.replace(" ", ""), "label": label,
                       "value": value, "display": str(value), "type": 0}
                      for i, (label, value) in enumerate((custom_fields or {}).items())]
            type_id = self.type_id(ticket_type)
            ticket: Record = {
                "id": tid, "summary": summary, "details": f"{summary} (logged in the sandbox)",
                "tickettype_id": type_id, "tickettype_name": self.ticket_types[type_id],
                "status_id": 1, "status_name": self.statuses[1],
                "client_id": client_id, "client_name": client["name"],
                "site_id": client_id * 10, "site_name": "Main",
                "user_id": self._next("user"), "user_name": user_name,
                "user_email": None, "team": team, "agent_id": AGENT_TECH,
                "category_1": category_1, "category_2": None, "priority_id": 3,
                "dateoccurred": now, "datecreated": now, "last_update": now,
                "dateclosed": None, "inactive": False, "deleted": False,
                "customfields": fields,
            }
            self.tickets[tid] = ticket
            self.actions[tid] = []
            self.attachments[tid] = []
            snapshot = dict(ticket)
        if notify:
            self._emit("New Ticket Logged", snapshot)
        return snapshot

    def update_ticket(self, ticket_id: int, changes: Mapping[str, Any], *,
                      notify: bool = True) -> Record:
        """Change fields of a ticket (``POST /Tickets`` with an id, or the UI)."""
        with self.lock:
            ticket = self._ticket(ticket_id)
            for key, value in changes.items():
                if key == "id":
                    continue
                if key == "status_id":
                    self._set_status(ticket, int(value))
                elif key in ticket and key not in ("datecreated", "last_update"):
                    ticket[key] = value
            ticket["last_update"] = self.now()
            snapshot = dict(ticket)
        if notify:
            self._emit("Ticket Updated", snapshot)
        return snapshot

    def close_ticket(self, ticket_id: int) -> Record:
        """A technician closes the ticket."""
        return self.update_ticket(ticket_id, {"status_id": CLOSED_STATUS})

    def _set_status(self, ticket: Record, status_id: int) -> None:
        if status_id not in self.statuses:
            raise SandboxError(400, f"Status {status_id} does not exist")
        ticket["status_id"], ticket["status_name"] = status_id, self.statuses[status_id]
        ticket["dateclosed"] = self.now() if status_id == CLOSED_STATUS else None

    def _ticket(self, ticket_id: int) -> Record:
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise SandboxError(404, f"Ticket {ticket_id} not found")
        return ticket

    def add_action(self, body: Mapping[str, Any], *, agent_id: int) -> Record:
        """An action (note) on a ticket; ``new_status`` moves the ticket too."""
        with self.lock:
            tid = body.get("ticket_id")
            if not isinstance(tid, int):
                raise SandboxError(400, "ticket_id is required")
            ticket = self._ticket(tid)
            outcome = body.get("outcome")
            if not isinstance(outcome, str) or not outcome:
                raise SandboxError(400, "An action type (outcome) is required")
            now = self.now()
            action: Record = {
                "id": self._next("action"), "ticket_id": tid, "outcome": outcome,
                "outcome_id": body.get("outcome_id") or 0, "note": str(body.get("note") or ""),
                "hiddenfromuser": bool(body.get("hiddenfromuser")),
                "sendemail": bool(body.get("sendemail")),
                "new_status": body.get("new_status") or 0,
                "who_agentid": agent_id, "actionby_agent_id": agent_id,
                "datetime": now, "actiondatecreated": now,
            }
            if action["new_status"]:
                self._set_status(ticket, int(action["new_status"]))
            self.actions[tid].append(action)
            ticket["last_update"] = now
            snapshot, ticket_now = dict(action), dict(ticket)
        self._emit("Action Added", ticket_now, snapshot)
        return snapshot

    def add_attachment(self, body: Mapping[str, Any], *, agent_id: int) -> Record:
        """An attachment on a ticket from ``data_base64``."""
        with self.lock:
            tid = body.get("ticket_id")
            if not isinstance(tid, int):
                raise SandboxError(400, "ticket_id is required")
            self._ticket(tid)
            try:
                data = base64.b64decode(str(body.get("data_base64") or ""), validate=True)
            except binascii.Error:
                raise SandboxError(400, "data_base64 is not base64") from None
            record: Record = {
                "id": self._next("attachment"), "ticket_id": tid,
                "filename": str(body.get("filename") or "file"),
                "desc": str(body.get("desc") or ""), "filesize": len(data),
                "isimage": bool(body.get("isimage")), "datecreated": self.now(),
                "agent_id": agent_id, "type": 0,
            }
            self.attachments[tid].append({**record, "_data": data})
            return record

    def create_contract(self, client_id: int, *, ref: str,
                        contract_type: str = "Managed Services", status: str = "Active",
                        start_date: str | None = None) -> Record:
        """A client contract (``ContractHeader``)."""
        with self.lock:
            client = self.clients[client_id]
            now = self.now()
            contract: Record = {
                "id": self._next("contract"), "client_id": client_id,
                "client_name": client["name"], "ref": ref, "contracttype": 1,
                "contracttype_name": contract_type, "contract_status": status,
                "start_date": (start_date or now[:10]) + "T00:00:00",
                "end_date": "1900-01-01T00:00:00", "active": True, "expired": False,
                "site_id": client_id * 10, "last_modified": now,
            }
            self.contracts[contract["id"]] = contract
            return dict(contract)

    def update_contract(self, contract_id: int, **changes: Any) -> Record:
        """Change a contract (``contract_status``, ``end_date`` …)."""
        with self.lock:
            contract = self.contracts[contract_id]
            contract.update(changes)
            contract["last_modified"] = self.now()
            return dict(contract)

    # -- reads ------------------------------------------------------------------------

    def ticket_list(self, since: datetime | None) -> list[Record]:
        """Listing shapes (no detail-only fields), filtered on ``last_update >= since``."""
        with self.lock:
            rows = [dict(t) for t in self.tickets.values()
                    if since is None or parse_halo_time(t["last_update"]) >= since]
        return [{k: v for k, v in r.items() if k not in DETAIL_ONLY} for r in rows]

    def ticket(self, ticket_id: int) -> Record:
        """One ticket with its details."""
        with self.lock:
            return dict(self._ticket(ticket_id))

    def ticket_actions(self, ticket_id: int) -> list[Record]:
        """Actions of a ticket, oldest first."""
        with self.lock:
            return [dict(a) for a in self.actions.get(ticket_id, [])]

    def ticket_attachments(self, ticket_id: int) -> list[Record]:
        """Attachments of a ticket (without their bytes)."""
        with self.lock:
            return [{k: v for k, v in a.items() if k != "_data"}
                    for a in self.attachments.get(ticket_id, [])]

    def attachment_data(self, ticket_id: int, attachment_id: int) -> bytes:
        """The bytes of one attachment."""
        with self.lock:
            for a in self.attachments.get(ticket_id, []):
                if a["id"] == attachment_id:
                    return bytes(a["_data"])
        raise KeyError(attachment_id)

    def client_list(self) -> list[Record]:
        """Every active client."""
        with self.lock:
            return [dict(c) for c in self.clients.values() if not c["inactive"]]

    def contract_list(self) -> list[Record]:
        """Every contract."""
        with self.lock:
            return [dict(c) for c in self.contracts.values()]

"""A local ConnectWise PSA simulator for demos, tests and benchmarks.

```python
with SandboxServer() as server:                 # http://127.0.0.1:<free port>
    cw = server.sandbox
    acme = cw.create_company("Acme Ltd", "ACME")
    ticket = cw.create_ticket("Leaver: J. Doe", company_id=acme["id"], type="Leaver")
    connector = build_connector("connectwise", "cw-sandbox", server.connector_config())
```

It serves the API subset the connector uses in vendor shapes (bare JSON arrays with
``Link`` headers, ``_info.lastUpdated``, ``{code, message, errors}`` error bodies), checks
Basic auth and ``clientId``, and POSTs signed callbacks to registered URLs from worker
threads. Switches come from the sandbox kit (``connectors.sandbox``; Python or
``/_sandbox/...``): forced 429/5xx before or after applying a write, slow responses,
dropped or duplicated callbacks; and ConnectWise's own thin callbacks. Run it standalone
with ``python -m connectors.connectwise.sandbox``.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from starlette.types import ASGIApp

from connectors.base import WebhookRequest
from connectors.connectwise.sandbox_app import build_app
from connectors.connectwise.sandbox_store import API_MEMBER_ID, TECH_MEMBER_ID, Record, SandboxStore
from connectors.connectwise.signing import sign
from connectors.sandbox import FaultSwitches, HostedSandbox, WebhookDispatcher
from hub.core.events import SubjectRef

__all__ = ["ConnectWiseSandbox", "SandboxServer"]


class ConnectWiseSandbox:
    """Simulated tenant: records, switches, callback delivery and the ASGI ``app``."""

    def __init__(
        self,
        *,
        company_id: str = "msphub",
        public_key: str = "sandbox-public",
        private_key: str = "sandbox-private",
        client_id: str = "00000000-0000-4000-8000-000000000000",
        codebase: str = "v4_6_release/",
        clock: Callable[[], datetime] | None = None,
        callback_workers: int = 2,
        loopback_only: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.company_id = company_id
        self.public_key = public_key
        self.private_key = private_key
        self.client_id = client_id
        self.codebase = codebase
        self.base_url = "http://127.0.0.1"  # set by SandboxServer.start()
        self.signing_key = secrets.token_urlsafe(32)
        self.key_id = uuid.uuid4().hex
        self.instance_id = str(uuid.uuid4())
        self.api_member = API_MEMBER_ID
        self.thin_callbacks = False
        self.store = SandboxStore(
            clock=clock or (lambda: datetime.now(UTC)), on_change=self._on_change
        )
        self.faults = FaultSwitches(rng or random.Random())
        self.dispatcher = WebhookDispatcher(workers=callback_workers, loopback_only=loopback_only,
                                            faults=self.faults, name="cw-callbacks")
        self.reset_switches()

    @cached_property
    def app(self) -> ASGIApp:
        """The ASGI app (REST subset + ``/_sandbox`` control API)."""
        return build_app(self)

    # -- switches (the sandbox kit's FaultSwitches) -----------------------------------------

    def reset_switches(self) -> None:
        """No forced failures, no delay, every callback delivered once with its entity."""
        self.faults.reset()
        self.thin_callbacks = False

    def fail_next(self, count: int, *, status: int = 429, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status`` (+ ``Retry-After``)."""
        self.faults.fail_next(count, status=status, retry_after=retry_after)

    def fail_next_writes_after_apply(self, count: int, *, status: int = 500) -> None:
        """Store the next ``count`` writes, then answer ``status`` instead of their result."""
        self.faults.fail_next_writes_after_apply(count, status=status)

    def set_delay(self, ms: int) -> None:
        """Delay every API response by ``ms`` milliseconds."""
        self.faults.set_delay(ms)

    def drop_callbacks(self, *, next: int = 0, probability: float = 0.0) -> None:
        """Drop the next ``next`` callbacks, then each one with ``probability``."""
        self.faults.drop_webhooks(next=next, probability=probability)

    def duplicate_callbacks(self, next: int) -> None:
        """Deliver each of the next ``next`` callbacks twice."""
        self.faults.duplicate_webhooks(next)

    @property
    def dropped(self) -> int:
        """Callbacks dropped by the switches so far."""
        return self.faults.dropped

    def next_gate_action(self) -> tuple[int, tuple[int, int | None] | None]:
        """(delay ms, forced failure) for one API request; consumes one forced failure."""
        action = self.faults.next_action()
        failure = action.failure
        return action.delay_ms, None if failure is None else (failure.status, failure.retry_after)

    def record_request(self, method: str, path: str) -> None:
        """Count one API request."""
        self.faults.record_request(method, path)

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """How many API requests matched ``method`` and/or ``path`` (exact)."""
        return self.faults.request_count(method, path)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and the control API."""
        return {**self.faults.stats(), **self.dispatcher.counts}

    # -- callbacks ------------------------------------------------------------------------

    def _on_change(self, rtype: str, action: str, record: Record, member: str) -> None:
        """Queue a signed callback to every registered URL that covers this change."""
        entity = "" if self.thin_callbacks else json.dumps(record)
        for entry in list(self.store.tables["callbacks"].values()):
            if entry["inactiveFlag"] or entry["type"] != rtype:
                continue
            if not self._covers(entry, record):
                continue
            if entry["isSelfSuppressedFlag"] and member == API_MEMBER_ID:
                continue  # our reading of the flag: the registering member's changes
            copies = self.faults.copies()  # 0: dropped, 2: delivered twice
            if not copies:
                continue
            body = self.callback_body(rtype, action, record, member, entity=entity,
                                      object_id=entry["objectId"])
            for _ in range(copies):
                self.dispatcher.submit(entry["url"], body, self.callback_headers(body))

    def callback_body(self, rtype: str, action: str, record: Record, member: str, *,
                      entity: str, object_id: Any = 1) -> bytes:
        """One callback body as ConnectWise posts it (``Entity`` a JSON string or "")."""
        return json.dumps(
            {
                "MessageId": str(uuid.uuid4()),
                "FromUrl": self.base_url,
                "CompanyId": self.company_id,
                "MemberId": member,
                "Action": action,
                "Type": rtype,
                "ID": record["id"],
                "ProductInstanceId": self.instance_id,
                "PartnerId": "sandbox",
                "CallbackObjectRecId": object_id,
                "Entity": entity,
                "Metadata": {"key_url": self.key_url},
            }
        ).encode()

    def callback_headers(self, body: bytes) -> dict[str, str]:
        """The headers of a callback: its ``x-content-signature`` over ``body``."""
        return {
            "content-type": "application/json",
            "x-content-signature": sign(body, self.signing_key),
        }

    @staticmethod
    def _covers(entry: Record, record: Record) -> bool:
        """Whether a callback entry's level/objectId covers the changed record."""
        level, object_id = str(entry["level"]).lower(), entry["objectId"]
        if level == "owner":
            return True
        parent = {"company": "company", "board": "board"}.get(level)
        if parent is not None:
            ref = record.get(parent) or {}
            return bool(ref.get("id") == object_id or record.get("id") == object_id)
        return bool(record.get("id") == object_id)

    @property
    def key_url(self) -> str:
        """Where callbacks say their signing key can be fetched."""
        return f"{self.base_url}/{self.codebase}system/callbackkey/index.rails?id={self.key_id}"

    def wait_for_callbacks(self, timeout: float = 5.0) -> bool:
        """Block until queued callbacks were attempted (no sleeping); False on timeout."""
        return self.dispatcher.wait_idle(timeout)

    # -- Python API -----------------------------------------------------------------------

    def create_company(self, name: str, identifier: str | None = None) -> Record:
        """Create a company (sends a ``company`` ``added`` callback when registered)."""
        return self.store.create_company(name, identifier)

    def create_contact(
        self, company_id: int, first_name: str, last_name: str, email: str | None = None
    ) -> Record:
        """Create a contact of ``company_id``."""
        return self.store.create_contact(company_id, first_name, last_name, email)

    def create_ticket(
        self,
        summary: str,
        *,
        company_id: int,
        board: str = "Service Desk",
        type: str | None = None,
        sub_type: str | None = None,
        item: str | None = None,
        status: str = "New",
        contact_id: int | None = None,
        description: str | None = None,
        custom_fields: dict[str, Any] | None = None,
        member: str = TECH_MEMBER_ID,
    ) -> Record:
        """Create a ticket as ``member`` (a technician by default); sends ``added``."""
        fields = {
            "summary": summary,
            "company_id": company_id,
            "board": board,
            "type": type,
            "sub_type": sub_type,
            "item": item,
            "status": status,
            "contact_id": contact_id,
            "description": description,
            "custom_fields": custom_fields,
        }
        return self.store.create_ticket(fields, member=member)

    def update_ticket(
        self, ticket_id: int, *, member: str = TECH_MEMBER_ID, **changes: Any
    ) -> Record:
        """Change fields (``status``/``board``/``type`` by name); sends ``updated``."""
        return self.store.update_ticket(ticket_id, changes, member=member)

    def close_ticket(self, ticket_id: int, *, status: str = "Closed", **kw: Any) -> Record:
        """Move the ticket to a closed status."""
        return self.update_ticket(ticket_id, status=status, **kw)

    def create_agreement(
        self,
        company_id: int,
        name: str,
        *,
        type: str = "Managed Services",
        start_date: str | None = None,
        end_date: str | None = None,
        member: str = TECH_MEMBER_ID,
    ) -> Record:
        """Create an agreement (dates as ``YYYY-MM-DD``); sends ``added``."""
        fields = {
            "company_id": company_id,
            "name": name,
            "type": type,
            "start_date": start_date,
            "end_date": end_date,
        }
        return self.store.create_agreement(fields, member=member)

    def update_agreement(
        self, agreement_id: int, *, member: str = TECH_MEMBER_ID, **changes: Any
    ) -> Record:
        """Change agreement fields as given (vendor names); sends ``updated``."""
        return self.store.update_agreement(agreement_id, changes, member=member)

    def ticket(self, ticket_id: int) -> Record:
        """The ticket as the API returns it."""
        return self.store.get("tickets", ticket_id)

    def notes(self, ticket_id: int) -> list[Record]:
        """Notes of a ticket, oldest first."""
        return self.store.ticket_notes(ticket_id)

    def documents(self, ticket_id: int) -> list[Record]:
        """Documents attached to a ticket."""
        with self.store.lock:
            docs = self.store.tables["documents"].values()
            return [dict(d) for d in docs if d["recordId"] == ticket_id]

    def document_content(self, document_id: int) -> bytes:
        """The uploaded bytes of a document."""
        with self.store.lock:
            return self.store.contents[document_id]

    def callbacks(self) -> list[Record]:
        """Registered callback entries."""
        with self.store.lock:
            return [dict(c) for c in self.store.tables["callbacks"].values()]


class SandboxServer(HostedSandbox):
    """Runs a ``ConnectWiseSandbox`` on 127.0.0.1 in a background thread (``Sandbox`` protocol)."""

    sandbox: ConnectWiseSandbox

    def __init__(self, sandbox: ConnectWiseSandbox | None = None, *, port: int = 0, **kw: Any):
        super().__init__(sandbox or ConnectWiseSandbox(**kw), port=port)
        self._company_id: int | None = None

    def connector_config(
        self, *, valid_credentials: bool = True, **overrides: Any
    ) -> dict[str, Any]:
        """Raw ``connectwise`` config for this sandbox (small pages exercise paging)."""
        cw = self.sandbox
        config: dict[str, Any] = {
            "site": self.url,
            "codebase": cw.codebase,
            "company_id": cw.company_id,
            "public_key": cw.public_key,
            "private_key": cw.private_key if valid_credentials else "wrong-private-key",
            "client_id": cw.client_id,
            "webhook_secret": "sandbox-webhook-secret-0123456789",
            "api_member": cw.api_member,
            "page_size": 10,
            "requests_per_minute": 100_000,
        }
        return {**config, **overrides}

    def seed(self, stream: str, count: int) -> None:
        """Create ``count`` tickets or agreements for a fresh company."""
        company = self.sandbox.create_company(f"Seed Co {uuid.uuid4().hex[:6]}")
        for i in range(count):
            if stream == "tickets":
                self.sandbox.create_ticket(f"Seed ticket {i}", company_id=company["id"])
            elif stream == "agreements":
                self.sandbox.create_agreement(company["id"], f"Seed agreement {i}")
            else:
                raise ValueError(f"unknown stream {stream!r}")

    def fail_next(self, count: int, *, status: int, retry_after: int | None = None) -> None:
        """Answer the next ``count`` API requests with ``status``."""
        self.sandbox.fail_next(count, status=status, retry_after=retry_after)

    # -- WebhookSandbox / TicketSandbox (the contract suite) --------------------------------

    signs_webhooks = True  # x-content-signature over the raw body
    completed_status = "Closed"

    def _contract_company(self) -> int:
        if self._company_id is None:
            self._company_id = int(self.sandbox.create_company("Contract Co")["id"])
        return self._company_id

    def webhook_delivery(self, event: str = "created", *, thin: bool = False) -> WebhookRequest:
        """A signed ticket callback (``added`` or ``updated``) for a ticket made now."""
        cw = self.sandbox
        record = cw.create_ticket("Contract ticket", company_id=self._contract_company(),
                                  type="Leaver", custom_fields={"Leaver name": "Jo Bloggs"})
        action = "added"
        if event == "updated":  # a change to a ticket entered yesterday
            with cw.store.lock:
                info = cw.store.tables["tickets"][record["id"]]["_info"]
                entered = datetime.fromisoformat(info["dateEntered"]) - timedelta(days=1)
                info["dateEntered"] = entered.strftime("%Y-%m-%dT%H:%M:%SZ")
            record = cw.update_ticket(record["id"], summary="Contract ticket (changed)")
            action = "updated"
        elif event != "created":
            raise ValueError(f"unknown event {event!r}")
        entity = "" if thin else json.dumps(record)
        body = cw.callback_body("ticket", action, record, TECH_MEMBER_ID, entity=entity)
        return self.webhook_request(body)

    def webhook_request(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        """``body`` signed with the sandbox's key, to our ``?token=`` callback URL."""
        token = secret if secret is not None else self.connector_config()["webhook_secret"]
        return WebhookRequest(headers=self.sandbox.callback_headers(body), body=body,
                              query={"token": token})

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until queued callbacks were attempted."""
        return self.sandbox.wait_for_callbacks(timeout)

    def touch_ticket(self, ticket: SubjectRef) -> None:
        """A technician edits the summary (an ``updated`` callback)."""
        self.sandbox.update_ticket(int(ticket.id), summary=f"Touched {uuid.uuid4().hex[:6]}")

    def a_ticket(self) -> SubjectRef:
        """A new ticket on the Service Desk board (statuses New … Closed)."""
        record = self.sandbox.create_ticket("Contract write-back",
                                            company_id=self._contract_company())
        return SubjectRef(type="ticket", id=str(record["id"]))

    def ticket_status(self, ticket: SubjectRef) -> str:
        """The ticket's status name."""
        return str(self.sandbox.ticket(int(ticket.id))["status"]["name"])

    def attachment_ids(self, ticket: SubjectRef) -> list[str]:
        """Ids of the documents attached to the ticket."""
        return [str(d["id"]) for d in self.sandbox.documents(int(ticket.id))]

    def status_writes(self, ticket: SubjectRef) -> int:
        """PATCHes of the ticket (the writer's only way to change its status)."""
        path = f"/{self.sandbox.codebase}apis/3.0/service/tickets/{int(ticket.id)}"
        return self.sandbox.request_count("PATCH", path)

    def lose_next_note_answer(self) -> None:
        """The next write (posting a note is one POST) is stored, then answered 500."""
        self.sandbox.fail_next_writes_after_apply(1)


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="ConnectWise PSA sandbox on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument(
        "--remote-callbacks", action="store_true", help="deliver callbacks to non-loopback URLs too"
    )
    args = parser.parse_args(argv)
    server = SandboxServer(port=args.port, loopback_only=not args.remote_callbacks)
    server.start()
    print(json.dumps(server.connector_config(), indent=2))
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()

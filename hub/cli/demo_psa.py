"""The PSA side of ``msphub demo``: one small adapter per PSA sandbox, so the same scenario
(a managed-services agreement, a leaver ticket, notes and the completion record on it)
plays on ConnectWise, Autotask and HaloPSA.

The hub reaches vendor packages only through the registry: sandboxes come from
``load_sandbox`` and their Python API is used as the vendor's sandbox documents it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from connectors.base import Connector, load_sandbox
from hub.services.sources import PollSettings

MARKER = re.compile(r"\[msphub:[^\]]+\]")
AT_SERVICE_DESK, AT_USER_MANAGEMENT, AT_LEAVER = 29683483, 17, 233  # sandbox picklist ids


@dataclass
class DemoPSA:
    """One PSA sandbox as the scenario drives it."""

    vendor: str
    source: str
    label: str
    completed_status: str
    poll: PollSettings
    server: Any = None
    company: Any = None
    link_type: str = "company"
    link_id: str = ""

    @property
    def store(self) -> Any:
        sandbox = self.server.sandbox
        return getattr(sandbox, "store", sandbox)

    def start(self, port: int) -> None:
        """Start the vendor's sandbox (registered by its connector's manifest)."""
        cls = load_sandbox(self.vendor)
        if cls is None:
            raise RuntimeError(f"the {self.vendor} connector ships no sandbox")
        self.server = cls(port=port)  # type: ignore[call-arg]
        self.server.start()

    def connector_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.server.connector_config(page_size=100)
        return config

    def create_client(self, name: str) -> None:
        """The client's company in the PSA (before the hub starts, so it can be linked)."""
        if self.vendor == "connectwise":
            self.company = self.server.sandbox.create_company(name, "ACME")
            self.link_type, self.link_id = "company", "ACME"
        elif self.vendor == "autotask":
            self.company = self.store.create_company(name)
            self.link_type, self.link_id = "company", str(self.company["id"])
        else:
            self.company = self.store.create_client(name)
            self.link_type, self.link_id = "customer", str(self.company["id"])

    def connect(self, connector: Connector, url: str) -> str:
        """Make the sandbox call the hub's webhook URL; returns what the output says."""
        if self.vendor == "halopsa":
            secret = self.connector_config()["webhook_secret"]
            self.server.sandbox.add_webhook(url, password=secret)
            return "webhooks to the hub; contracts polled"
        connector.register_webhooks(url)  # type: ignore[attr-defined]
        if self.vendor == "autotask":
            return "ticket webhooks registered; contracts polled"
        return "callbacks registered"

    def sign_agreement(self, name: str) -> None:
        """A managed-services agreement (contract) for the client."""
        today = time.strftime("%Y-%m-%d")
        company_id = self.company["id"]
        if self.vendor == "connectwise":
            self.server.sandbox.create_agreement(company_id, name, type="Managed Services",
                                                 start_date=today)
        elif self.vendor == "autotask":
            self.store.create_contract(company_id, name, category=11)
        else:
            self.store.create_contract(company_id, ref=name)

    def leaver_ticket(self, summary: str, first: str, last: str) -> int:
        """A leaver ticket on the service desk / HR board."""
        company_id = self.company["id"]
        email = f"{first}.{last}@acme.example".lower()
        if self.vendor == "connectwise":
            cw = self.server.sandbox
            contact = cw.create_contact(company_id, first, last, email)
            ticket = cw.create_ticket(summary, company_id=company_id, board="HR",
                                      type="Leaver", contact_id=contact["id"])
        elif self.vendor == "autotask":
            contact = self.store.create_contact(company_id, first, last, email)
            ticket = self.store.create_ticket(
                summary, company_id=company_id, queue=AT_SERVICE_DESK,
                issue_type=AT_USER_MANAGEMENT, sub_issue_type=AT_LEAVER,
                contact_id=contact["id"], udfs={"Leaver Name": f"{first} {last}"})
        else:
            ticket = self.store.create_ticket(
                summary, client_id=company_id, ticket_type="Leaver", team="Service Desk",
                user_name=f"{first} {last}", custom_fields={"Leaver Name": f"{first} {last}"})
        return int(ticket["id"])

    def notes(self, ticket_id: int) -> list[str]:
        """The text of every note on the ticket, oldest first."""
        if self.vendor == "connectwise":
            return [str(n["text"]) for n in self.server.sandbox.notes(ticket_id)]
        if self.vendor == "autotask":
            return [str(n["description"]) for n in self.store.notes(ticket_id)]
        return [str(a["note"]) for a in self.store.ticket_actions(ticket_id)
                if MARKER.search(str(a["note"])) and not a.get("new_status")]

    def documents(self, ticket_id: int) -> int:
        """How many files are attached to the ticket."""
        if self.vendor == "connectwise":
            return len(self.server.sandbox.documents(ticket_id))
        if self.vendor == "autotask":
            return len(self.store.attachments(ticket_id))
        return len(self.store.ticket_attachments(ticket_id))

    def status(self, ticket_id: int) -> str:
        """The ticket's status name."""
        if self.vendor == "connectwise":
            return str(self.server.sandbox.ticket(ticket_id)["status"]["name"])
        if self.vendor == "autotask":
            code = self.store.get("tickets", ticket_id)["status"]
            return "Complete" if code == 5 else str(code)
        return str(self.store.ticket(ticket_id)["status_name"])

    def notes_url(self, ticket_id: int) -> str:
        """Where a person reads the ticket's notes in the sandbox."""
        if self.vendor == "connectwise":
            return f"{self.server.url}/_sandbox/tickets/{ticket_id}/notes"
        return f"{self.server.url} (ticket {ticket_id})"


PSAS = ("connectwise", "autotask", "halopsa")


def demo_psa(vendor: str) -> DemoPSA:
    """The adapter for one of :data:`PSAS`."""
    if vendor == "connectwise":
        return DemoPSA("connectwise", "cw-sandbox", "ConnectWise PSA", "Completed",
                       PollSettings(enabled=True, interval="30s"))
    if vendor == "autotask":
        return DemoPSA("autotask", "autotask-sandbox", "Autotask PSA", "Complete",
                       PollSettings(enabled=True, interval="3s", streams=["contracts"]))
    if vendor == "halopsa":
        return DemoPSA("halopsa", "halo-sandbox", "HaloPSA", "Completed",
                       PollSettings(enabled=True, interval="3s", streams=["contracts"]))
    raise ValueError(f"unknown PSA {vendor!r}; choose one of {', '.join(PSAS)}")

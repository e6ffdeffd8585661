"""Autotask PSA through the hub over real HTTP (embedded ``msphub serve``, SQLite), against
the Autotask sandbox, beside the ConnectWise sandbox the harness always runs.

* a leaver ticket opened by a technician reaches the hub as a signed webhook (registered
  by the connector: fields, our API user excluded, activated) and launches user
  offboarding for the linked hub client; the launch note, a note per step, the
  completion record, its attachment and the status change land on the Autotask ticket,
  each once, and our own writes do not echo back;
* a new Managed Services contract (no webhooks for contracts: polled) launches client
  onboarding;
* a webhook Autotask never delivered is caught by the ticket poll; a 429 storm is waited
  out source-wide; a note Autotask stored but answered 500 for is found by its marker and
  never posted again.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors.autotask.sandbox import SandboxServer
from connectors.base import build_connector
from tests.e2e.harness import Hub, Psa, wait_until
from tests.e2e.steps import approver_token, finish_step

pytestmark = [pytest.mark.slow]

SOURCE = "autotask"
SECRET = "autotask-e2e-webhook-secret-0123456789"
MARKER = re.compile(r"\[msphub:([^\]]+)\]")
POLL = 2  # seconds between the Autotask source's polls
SERVICE_DESK, USER_MANAGEMENT, LEAVER = 29683483, 17, 233
COMPLETE = 5


@pytest.fixture
def autotask() -> Iterator[SandboxServer]:
    """The Autotask sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def _raw_config(at: SandboxServer) -> dict[str, Any]:
    return at.connector_config(page_size=50, timeout_seconds=5, webhook_secret=SECRET)


def _with_autotask(hub: Hub, at: SandboxServer, *, poll: dict[str, Any]) -> None:
    """Add an ``autotask`` source to the hub's connectors.yaml (secrets from ${ENV})."""
    path = hub.root / "config" / "connectors.yaml"
    config = json.loads(path.read_text())  # the harness writes JSON (which is YAML)
    raw = _raw_config(at)
    raw.update(secret="${AT_SECRET}", webhook_secret="${AT_WEBHOOK_SECRET}")
    config["sources"][SOURCE] = {"vendor": "autotask", "poll": poll,
                                 "completed_status": "Complete",
                                 "requests_per_minute": 100_000, "config": raw}
    path.write_text(json.dumps(config, indent=2))
    hub.env.update(AT_SECRET=at.sandbox.secret, AT_WEBHOOK_SECRET=SECRET)


def _register(hub: Hub, at: SandboxServer) -> None:
    """What ``msphub connectors register-webhooks autotask`` does."""
    connector = build_connector("autotask", SOURCE, _raw_config(at))
    try:
        connector.register_webhooks(f"{hub.url}/webhooks/{SOURCE}")  # type: ignore[attr-defined]
    finally:
        connector.close()


def _client(at: SandboxServer, name: str = "Acme Ltd") -> dict[str, int]:
    store = at.sandbox.store
    company = store.create_company(name)
    contact = store.create_contact(company["id"], "Maria", "López", "maria@acme.example")
    return {"company": int(company["id"]), "contact": int(contact["id"])}


def _leaver(at: SandboxServer, client: dict[str, int], name: str) -> int:
    ticket = at.sandbox.store.create_ticket(
        f"Leaver: {name}", company_id=client["company"], queue=SERVICE_DESK,
        issue_type=USER_MANAGEMENT, sub_issue_type=LEAVER, contact_id=client["contact"],
        udfs={"Leaver Name": name})
    return int(ticket["id"])


def _notes(at: SandboxServer, ticket: int) -> list[dict[str, Any]]:
    return [n for n in at.sandbox.store.notes(ticket) if MARKER.search(n["description"])]


def _wait_notes(at: SandboxServer, tickets: list[int], count: int, hub: Hub,
                timeout: float = 60) -> None:
    wait_until(lambda: all(len(_notes(at, t)) >= count for t in tickets), timeout=timeout,
               what=f"{count} note(s) on Autotask tickets {tickets}", detail=hub.detail)


def _inbox(hub: Hub, ticket: int) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in hub.rows(
        "SELECT kind, via, status FROM inbox_events WHERE source = :s AND subject_id = :t "
        "ORDER BY id", s=SOURCE, t=str(ticket))]


def _changes(hub: Hub, ticket: int) -> list[str]:
    """The kinds of the ticket's stored changes: a thin webhook row whose full record was
    stored beside it (``enriched_from``) counts once, as that record."""
    return [str(r[0]) for r in hub.rows(
        "SELECT e.kind FROM inbox_events e WHERE e.source = :s AND e.subject_id = :t AND "
        "NOT EXISTS (SELECT 1 FROM inbox_events x WHERE x.enriched_from = e.id) "
        "ORDER BY e.id", s=SOURCE, t=str(ticket))]


def _note_posts(at: SandboxServer, ticket: int) -> int:
    return at.sandbox.request_count("POST", at.sandbox.api_path(f"Tickets/{ticket}/Notes"))


def _complete_every_step(hub: Hub, run_id: int) -> list[str]:
    """Complete each open step through the REST API until the run is finished (evidence
    forms filled in; sign-offs approved by a second person)."""
    api = httpx.Client(base_url=hub.url, timeout=15, trust_env=False,
                       headers={"Authorization": f"Bearer {hub.admin_token()}"})
    approver = httpx.Client(base_url=hub.url, timeout=15, trust_env=False,
                            headers={"Authorization": f"Bearer {approver_token(hub)}"})
    done: list[str] = []
    with api, approver:
        for _ in range(40):  # bounded: one pass per step at most
            run = api.get(f"/api/runs/{run_id}").raise_for_status().json()
            open_steps = [s for s in run["steps"] if s["status"] == "open"]
            if run["status"] != "active" or not open_steps:
                break
            for step in open_steps:
                finish_step(api, approver, run_id, step,
                            f"autotask evidence for {step['step_id']}")
                done.append(step["step_id"])
        assert api.get(f"/api/runs/{run_id}").json()["status"] == "completed"
    return done


def test_leaver_and_new_contract_end_to_end_on_autotask(
        psa: Psa, autotask: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """The leaver and new-contract scenarios, with every write-back on the Autotask ticket."""
    # Given an Autotask company linked to hub client acme, our webhook registered, and
    # contracts polled every 2 s
    client = _client(autotask)
    hub = make_hub(links={"acme": [(SOURCE, "company", str(client["company"]))]})
    _with_autotask(hub, autotask, poll={"enabled": True, "interval": f"{POLL}s",
                                        "streams": ["contracts"]})
    hub.serve()
    _register(hub, autotask)
    store = autotask.sandbox.store

    # When a technician opens a leaver ticket (queue Service Desk, sub-issue Leaver)
    ticket = _leaver(autotask, client, "John Smith")
    # Then one user-offboarding run is launched for acme, and the launch note is on it
    _wait_notes(autotask, [ticket], 1, hub)
    [(run_id, key, inputs)] = hub.rows(
        "SELECT runs.id, clients.key, runs.inputs FROM runs JOIN clients "
        "ON clients.id = runs.client_id WHERE runs.playbook_id = 'user-offboarding'")
    assert key == "acme"
    assert "John Smith" in str(inputs)  # from the ticket's "Leaver Name" UDF
    [launch] = _notes(autotask, ticket)
    assert "launched" in launch["description"]
    assert (launch["noteType"], launch["publish"], launch["title"]) == (1, 2, "msphub")
    assert _inbox(hub, ticket)[0][:2] == ("ticket.created", "webhook")

    # When every step is completed through the REST API
    done = _complete_every_step(hub, run_id)
    # Then a note per step and the completion record are on the ticket, each once
    expected = 1 + len(done) + 1
    _wait_notes(autotask, [ticket], expected, hub)
    notes = [n["description"] for n in _notes(autotask, ticket)]
    assert len(notes) == expected
    for note, step in zip(notes[1:-1], done, strict=True):
        assert f"autotask evidence for {step}" in note
    assert "COMPLETED" in notes[-1]
    markers = [m for n in notes for m in MARKER.findall(n)]
    assert len(markers) == len(set(markers)) == expected
    # and the completion record is attached and the ticket is Complete
    wait_until(lambda: store.get("tickets", ticket)["status"] == COMPLETE, timeout=30,
               what="the Autotask ticket status Complete", detail=hub.detail)
    [attachment] = store.attachments(ticket)
    assert attachment["fullPath"] == f"msphub-run-{run_id}-evidence.txt"
    assert MARKER.search(attachment["title"])
    assert b"autotask evidence for" in base64.b64decode(attachment["data"])
    wait_until(lambda: hub.statuses("outbox_notes") == {"sent": expected}, timeout=30,
               what="every note sent", detail=hub.detail)
    # and our own notes and status change did not come back (the API user is excluded)
    autotask.sandbox.wait_for_webhooks(10)
    assert _changes(hub, ticket) == ["ticket.created"]

    # When a Managed Services contract is added for Acme (Autotask sends no webhook)
    contract = store.create_contract(client["company"], "Acme - Managed Services",
                                     category=11)
    # Then the contract poll launches client onboarding for acme from that contract
    def onboarding() -> list[Any]:
        return hub.rows(
            "SELECT clients.key, runs.origin_type, runs.origin_id FROM runs JOIN clients ON "
            "clients.id = runs.client_id WHERE runs.playbook_id = 'client-onboarding'")

    wait_until(onboarding, timeout=4 * POLL + 30, what="client onboarding launched",
               detail=hub.detail)
    assert [tuple(r) for r in onboarding()] == [("acme", "agreement", str(contract["id"]))]
    assert hub.scalar("SELECT status FROM inbox_events WHERE source = :s AND kind = "
                      "'agreement.created'", s=SOURCE) == "done"


def test_dropped_webhook_429_storm_and_an_applied_write_never_repeated(
        psa: Psa, autotask: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """A lost webhook is caught by the poll; 429s with Retry-After pause the whole source
    and are waited out; a note Autotask stored but answered 500 for is found by its marker
    and never posted twice."""
    # Given a hub polling Autotask tickets every 2 s, with our webhook registered
    client = _client(autotask)
    hub = make_hub(links={"acme": [(SOURCE, "company", str(client["company"]))]})
    _with_autotask(hub, autotask, poll={"enabled": True, "interval": f"{POLL}s",
                                        "streams": ["tickets"]})
    hub.serve()
    _register(hub, autotask)
    at = autotask.sandbox
    first = _leaver(autotask, client, "First Leaver")
    _wait_notes(autotask, [first], 1, hub)

    # When Autotask never delivers the next ticket's webhook
    at.faults.drop_webhooks(next=1)
    dropped = _leaver(autotask, client, "Lost Webhook")
    assert at.faults.dropped == 1
    # Then the poll finds it: one run, one launch note
    _wait_notes(autotask, [dropped], 1, hub, timeout=4 * POLL + 30)
    assert ("ticket.created", "poll") in [(k, v) for k, v, _s in _inbox(hub, dropped)]
    assert hub.runs_per_ticket()[str(dropped)] == 1

    # When Autotask answers the next 30 API calls with 429 Retry-After: 1 while five
    # leaver tickets come in (their reads, the polls and the launch notes all hit it)
    at.fail_next(30, status=429, retry_after=1)
    stormed = [_leaver(autotask, client, f"Storm {i}") for i in range(5)]
    # Then the storm is waited out and each ticket has exactly one launch note
    _wait_notes(autotask, stormed, 1, hub, timeout=90)
    assert at.faults.next_action().failure is None, "the storm was not used up"
    [serve] = hub.procs
    paused = [r for r in serve.log_events("source_paused") if r.get("source") == SOURCE]
    assert paused, serve.tail()  # the Retry-After paused the source, not one request

    # When Autotask stores the next note but answers 500
    at.fail_next_notes_after_apply(1)
    applied = _leaver(autotask, client, "Applied Then 500")
    # Then the hub finds the note by its marker instead of posting it again
    _wait_notes(autotask, [applied], 1, hub)
    wait_until(lambda: hub.scalar("SELECT status FROM outbox_notes WHERE ticket_id = :t",
                                  t=str(applied)) == "sent", timeout=30,
               what="the applied note recorded sent", detail=hub.detail)
    assert _note_posts(autotask, applied) == 1
    assert any(r.get("ticket") == str(applied)
               for r in serve.log_events("note_found_after_uncertain_send")), serve.tail()

    tickets = [first, dropped, *stormed, applied]
    assert all(len(_notes(autotask, t)) == 1 for t in tickets)
    assert hub.runs_per_ticket() == {str(t): 1 for t in tickets}
    wait_until(lambda: hub.statuses("outbox_notes") == {"sent": len(tickets)}, timeout=30,
               what="every note sent", detail=hub.detail)

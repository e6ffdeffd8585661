"""HaloPSA through the hub over real HTTP (embedded ``msphub serve``, SQLite), against the
HaloPSA sandbox, beside the ConnectWise sandbox the harness always runs.

* a leaver ticket logged in Halo launches user offboarding for the linked hub client; the
  launch note, one note per step, the completion record, its evidence attachment and the
  status change land on the Halo ticket, each once; our own notes' webhooks are echoes;
* a new Managed Services contract (``ClientContract``, polled) launches client onboarding;
* a webhook Halo never delivered is caught by the poll; a 429 storm is waited out
  source-wide; a note Halo stored but answered 500 for is found, never posted again;
* one hub runs a ConnectWise and a HaloPSA instance at once, both linked to hub clients.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors.halopsa.sandbox import SandboxServer
from tests.e2e.harness import SOURCE as CW_SOURCE
from tests.e2e.harness import Hub, Psa, wait_until
from tests.e2e.steps import approver_token, finish_step

pytestmark = [pytest.mark.slow]

SOURCE = "halo"
SECRET = "halo-e2e-webhook-secret-0123456789"
MARKER = re.compile(r"\[msphub:([^\]]+)\]")
POLL = 2  # seconds between the Halo source's polls


@pytest.fixture
def halo() -> Iterator[SandboxServer]:
    """The HaloPSA sandbox on 127.0.0.1."""
    with SandboxServer() as server:
        yield server


def _with_halo(hub: Hub, halo: SandboxServer, *, poll: dict[str, Any]) -> None:
    """Add a ``halopsa`` source to the hub's connectors.yaml (secrets from ${ENV}) and
    register the hub's webhook URL in the sandbox with Basic authentication."""
    path = hub.root / "config" / "connectors.yaml"
    config = json.loads(path.read_text())  # the harness writes JSON (which is YAML)
    raw = halo.connector_config(page_size=50, timeout_seconds=5)
    raw.update(client_secret="${HALO_CLIENT_SECRET}", webhook_secret="${HALO_WEBHOOK_SECRET}")
    config["sources"][SOURCE] = {"vendor": "halopsa", "poll": poll,
                                 "completed_status": "Completed",
                                 "requests_per_minute": 100_000, "config": raw}
    path.write_text(json.dumps(config, indent=2))
    hub.env.update(HALO_CLIENT_SECRET=halo.sandbox.client_secret, HALO_WEBHOOK_SECRET=SECRET)
    halo.sandbox.add_webhook(f"{hub.url}/webhooks/{SOURCE}", password=SECRET)


def _leaver(halo: SandboxServer, client_id: int, name: str) -> int:
    ticket = halo.sandbox.store.create_ticket(
        f"Leaver: {name}", client_id=client_id, ticket_type="Leaver", team="Service Desk",
        user_name="Jane Manager", custom_fields={"Leaver Name": name})
    return int(ticket["id"])


def _notes(halo: SandboxServer, ticket: int) -> list[dict[str, Any]]:
    """The hub's note actions on a ticket (status-change actions left out)."""
    return [a for a in halo.sandbox.store.ticket_actions(ticket)
            if MARKER.search(a["note"]) and not a["new_status"]]


def _wait_notes(halo: SandboxServer, tickets: list[int], count: int, hub: Hub,
                timeout: float = 60) -> None:
    wait_until(lambda: all(len(_notes(halo, t)) >= count for t in tickets), timeout=timeout,
               what=f"{count} note(s) on Halo tickets {tickets}", detail=hub.detail)


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
                            f"halo evidence for {step['step_id']}")
                done.append(step["step_id"])
        assert api.get(f"/api/runs/{run_id}").json()["status"] == "completed"
    return done


def test_leaver_and_new_contract_end_to_end_on_halopsa(
        psa: Psa, halo: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """The leaver and new-contract scenarios, with every write-back on the Halo ticket."""
    # Given a Halo client linked to hub client acme, webhooks to the hub, contracts polled
    store = halo.sandbox.store
    acme = store.create_client("Acme Ltd")
    hub = make_hub(links={"acme": [(SOURCE, "customer", str(acme["id"]))]})
    _with_halo(hub, halo, poll={"enabled": True, "interval": f"{POLL}s",
                                "streams": ["contracts"]})
    hub.serve()

    # When a technician logs a leaver ticket in Halo
    ticket = _leaver(halo, acme["id"], "John Smith")
    # Then one user-offboarding run is launched for acme, and the launch note is on it
    _wait_notes(halo, [ticket], 1, hub)
    [(run_id, key, inputs)] = hub.rows(
        "SELECT runs.id, clients.key, runs.inputs FROM runs JOIN clients "
        "ON clients.id = runs.client_id WHERE runs.playbook_id = 'user-offboarding'")
    assert key == "acme"
    assert "John Smith" in str(inputs)  # from the ticket's "Leaver Name" custom field
    [launch] = _notes(halo, ticket)
    assert "launched" in launch["note"] and launch["hiddenfromuser"] is True
    assert launch["sendemail"] is False

    # When every step is completed through the REST API
    done = _complete_every_step(hub, run_id)
    # Then a note per step and the completion record are on the ticket, each once
    expected = 1 + len(done) + 1
    _wait_notes(halo, [ticket], expected, hub)
    notes = [a["note"] for a in _notes(halo, ticket)]
    assert len(notes) == expected
    for note, step in zip(notes[1:-1], done, strict=True):
        assert f"halo evidence for {step}" in note
    assert "COMPLETED" in notes[-1] and "Audit chain: entry #" in notes[-1]
    markers = [m for n in notes for m in MARKER.findall(n)]
    assert len(markers) == len(set(markers)) == expected
    # and the evidence is attached and the ticket moved to Completed (a status action)
    wait_until(lambda: store.ticket(ticket)["status_name"] == "Completed", timeout=30,
               what="the Halo ticket status Completed", detail=hub.detail)
    [attachment] = store.ticket_attachments(ticket)
    assert attachment["filename"] == f"msphub-run-{run_id}-evidence.txt"
    assert b"halo evidence for" in store.attachment_data(ticket, attachment["id"])
    wait_until(lambda: hub.statuses("outbox_notes") == {"sent": expected}, timeout=30,
               what="every note sent", detail=hub.detail)
    # and the webhooks of our own actions were echoes: only the ticket's creation is stored
    halo.sandbox.wait_for_webhooks(10)
    assert _changes(hub, ticket) == ["ticket.created"]

    # When a Managed Services contract is added for Acme in Halo
    contract = store.create_contract(acme["id"], ref="ACME-MS-2026")
    # Then the contract poll launches client onboarding for acme from that contract
    wait_until(lambda: hub.rows(
        "SELECT clients.key, runs.origin_type, runs.origin_id FROM runs JOIN clients ON "
        "clients.id = runs.client_id WHERE runs.playbook_id = 'client-onboarding'"),
        timeout=4 * POLL + 30, what="client onboarding launched", detail=hub.detail)
    [(key, origin_type, origin_id)] = hub.rows(
        "SELECT clients.key, runs.origin_type, runs.origin_id FROM runs JOIN clients ON "
        "clients.id = runs.client_id WHERE runs.playbook_id = 'client-onboarding'")
    assert (key, origin_type, origin_id) == ("acme", "agreement", str(contract["id"]))
    assert hub.scalar("SELECT status FROM inbox_events WHERE source = :s AND kind = "
                      "'agreement.created'", s=SOURCE) == "done"


def test_dropped_webhook_429_storm_and_an_applied_write_never_repeated(
        psa: Psa, halo: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """A lost webhook is caught by the poll; 429s with Retry-After pause the whole Halo
    source and are waited out; a note Halo stored but answered 500 for is found by its
    marker and never posted twice."""
    # Given a hub polling Halo tickets every 2 s, with webhooks on
    store = halo.sandbox.store
    acme = store.create_client("Acme Ltd")
    hub = make_hub(links={"acme": [(SOURCE, "customer", str(acme["id"]))]})
    _with_halo(hub, halo, poll={"enabled": True, "interval": f"{POLL}s",
                                "streams": ["tickets"]})
    hub.serve()
    first = _leaver(halo, acme["id"], "First Leaver")
    _wait_notes(halo, [first], 1, hub)
    # (a poll that ran between the ticket and its webhook may have stored it as well)
    assert "webhook" in [v for _k, v, _s in _inbox(hub, first)]
    assert "ticket.created" in _changes(hub, first)

    # When Halo never delivers the next ticket's webhook
    halo.sandbox.faults.drop_webhooks(next=1)
    dropped = _leaver(halo, acme["id"], "Lost Webhook")
    assert halo.sandbox.faults.dropped == 1
    # Then the poll finds it: one run, one launch note
    _wait_notes(halo, [dropped], 1, hub, timeout=4 * POLL + 30)
    assert ("ticket.created", "poll") in [(k, v) for k, v, _s in _inbox(hub, dropped)]
    assert hub.runs_per_ticket()[str(dropped)] == 1

    # When Halo answers the next 30 API calls with 429 Retry-After: 1 while five leaver
    # tickets come in (their read-backs, the polls and the launch notes all hit it)
    halo.sandbox.fail_next(30, status=429, retry_after=1)
    stormed = [_leaver(halo, acme["id"], f"Storm {i}") for i in range(5)]
    # Then the storm is waited out and each ticket has exactly one launch note
    _wait_notes(halo, stormed, 1, hub, timeout=90)
    assert halo.sandbox.faults.next_action().failure is None, "the storm was not used up"
    [serve] = hub.procs
    paused = [r for r in serve.log_events("source_paused") if r.get("source") == SOURCE]
    assert paused, serve.tail()  # the Retry-After paused the source, not one request

    # When Halo stores the next note but answers 500
    posts_before = halo.sandbox.request_count("POST", "/api/Actions")
    halo.sandbox.fail_next_writes_after_apply(1)
    applied = _leaver(halo, acme["id"], "Applied Then 500")
    # Then the hub finds the note by its marker instead of posting it again
    _wait_notes(halo, [applied], 1, hub)
    wait_until(lambda: hub.scalar("SELECT status FROM outbox_notes WHERE ticket_id = :t",
                                  t=str(applied)) == "sent", timeout=30,
               what="the applied note recorded sent", detail=hub.detail)
    assert halo.sandbox.request_count("POST", "/api/Actions") == posts_before + 1
    assert any(r.get("ticket") == str(applied)
               for r in serve.log_events("note_found_after_uncertain_send")), serve.tail()

    tickets = [first, dropped, *stormed, applied]
    assert all(len(_notes(halo, t)) == 1 for t in tickets)
    assert hub.runs_per_ticket() == {str(t): 1 for t in tickets}
    wait_until(lambda: hub.statuses("outbox_notes") == {"sent": len(tickets)}, timeout=30,
               what="every note sent", detail=hub.detail)


def test_connectwise_and_halopsa_in_one_hub_each_linked_to_its_client(
        psa: Psa, halo: SandboxServer, make_hub: Callable[..., Hub]) -> None:
    """acme is a ConnectWise company, globex a Halo client (config/clients.yaml links
    both); each PSA's leaver ticket launches a run for its own client, and each run's
    note lands on its own PSA."""
    # Given one hub with both PSAs, ConnectWise ACME → acme, Halo Globex → globex
    globex = halo.sandbox.store.create_client("Globex Corp")
    hub = make_hub(clients={"acme": ["ACME"]},
                   links={"globex": [(SOURCE, "customer", str(globex["id"]))]})
    _with_halo(hub, halo, poll={"enabled": False})
    hub.serve()
    hub.register_callbacks()
    cw_client = psa.new_client()

    # When both PSAs get a leaver ticket
    cw_ticket = psa.leaver_ticket(cw_client)
    halo_ticket = _leaver(halo, globex["id"], "Gina Globex")

    # Then each PSA has its launch note, from a run for its own hub client
    psa.wait_for_notes([cw_ticket], 1, timeout=60, detail=hub.detail)
    _wait_notes(halo, [halo_ticket], 1, hub)
    runs = {(r[0], r[1]): r[2] for r in hub.rows(
        "SELECT runs.ticket_source, runs.ticket_id, clients.key FROM runs JOIN clients "
        "ON clients.id = runs.client_id")}
    assert runs == {(CW_SOURCE, str(cw_ticket)): "acme", (SOURCE, str(halo_ticket)): "globex"}
    assert len(psa.notes(cw_ticket)) == 1 and len(_notes(halo, halo_ticket)) == 1
    assert {tuple(r) for r in hub.rows(
        "SELECT source, hub_client FROM inbox_events WHERE status = 'done'")} == {
        (CW_SOURCE, "acme"), (SOURCE, "globex")}

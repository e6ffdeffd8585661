"""Keep what the vendor sent: a thin ConnectWise callback's full record is stored as its
own inbox row, linked to the thin one (which keeps the callback as ``raw``), under the key
of the change it describes — so a webhook and a poll of the same change collide in the
inbox, whichever comes first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import build_connector
from connectors.connectwise.sandbox import SandboxServer
from connectors.connectwise.sandbox_store import TECH_MEMBER_ID
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime
from hub.services.inbox import reopen
from hub.services.intake import receive
from hub.services.pipeline import process_event
from hub.services.polling import poll_once
from hub.services.sources import Source, Sources, SourceSpec
from hub.settings import Settings
from hub.store.db import transaction
from hub.store.migrate import upgrade
from hub.store.models import InboxEvent


@pytest.fixture
def cw() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def hub(hub_settings: Settings, cw: SandboxServer) -> Iterator[Runtime]:
    """A runtime (real clock: the sandbox's records are stamped now) with the sandbox as
    its one source, ``cw``."""
    connector = build_connector("connectwise", "cw", cw.connector_config())
    sources = Sources({"cw": Source("cw", SourceSpec(vendor="connectwise"), connector)})
    (hub_settings.mappings_dir / "rules.yaml").write_text("rules: []\n")  # nothing acts
    rt = build_runtime(hub_settings, sources=sources)
    upgrade(rt.ctx.engine)
    yield rt
    rt.stop()


def deliver(rt: Runtime, cw: SandboxServer, body: bytes) -> list[int]:
    """One signed callback through intake, as the API receives it; the new row ids."""
    request = cw.webhook_request(body)
    got = receive(rt.ctx, rt.sources, "cw", headers=request.headers, body=request.body,
                  query=request.query, path_secret=None, max_body=1 << 20)
    return list(got.new_ids)


def thin_callback(cw: SandboxServer, record: dict[str, Any]) -> bytes:
    return cw.sandbox.callback_body("ticket", "added", record, TECH_MEMBER_ID, entity="")


def rows(rt: Runtime) -> list[InboxEvent]:
    with rt.ctx.sessions() as session:
        found = list(session.execute(select(InboxEvent).order_by(InboxEvent.id)).scalars())
        session.expunge_all()
        return found


def new_ticket(cw: SandboxServer) -> dict[str, Any]:
    company = cw.sandbox.create_company("Dedupe Co")
    return cw.sandbox.create_ticket("New starter", company_id=company["id"])


def test_webhook_first_then_poll_stores_the_change_once(hub: Runtime,
                                                        cw: SandboxServer) -> None:
    """The thin callback keeps its body; its full record is a linked row with the
    change's key; the poll that sees the same change stores nothing."""
    # Given a ticket whose thin callback is received
    ticket = new_ticket(cw)
    [thin_id] = deliver(hub, cw, thin_callback(cw, ticket))
    # When it is processed (the connector fetches the record)
    result = process_event(hub.ctx, hub.live_rules(), thin_id, enrich=hub.enrich)
    # Then the thin row still holds the callback as ConnectWise sent it
    [thin, full] = rows(hub)
    assert thin.id == thin_id and thin.via == "webhook"
    assert thin.raw["Type"] == "ticket" and thin.raw["Entity"] == ""
    assert thin.data.get("callback") == {"action": "added", "type": "ticket"}
    assert thin.status == "done" and thin.result["enriched_into"] == [full.id]
    # and the full record is a row of its own, keyed by the change, linked to it
    assert (full.via, full.enriched_from, full.kind) == ("enrich", thin_id, "ticket.created")
    assert full.dedupe_key == f"ticket:{ticket['id']}:created"
    assert full.raw["id"] == ticket["id"] and full.raw["summary"] == "New starter"
    assert full.status in ("ignored", "done", "failed") and result.enriched_into == [full.id]
    # When the poll reads the same ticket
    new = poll_once(hub.ctx, hub.sources, "cw", "tickets")
    # Then the change collides with the enriched row: nothing of this ticket is stored again
    keys = [r.dedupe_key for r in rows(hub) if r.id in new]
    assert f"ticket:{ticket['id']}:created" not in keys
    assert [r.subject_id for r in rows(hub)].count(str(ticket["id"])) == 2


def test_poll_first_then_webhook_is_recognised_as_the_same_change(
        hub: Runtime, cw: SandboxServer) -> None:
    """The poll stores the change; the later thin callback is kept, enriched, found
    already stored and ignored, naming the row that holds it."""
    # Given a ticket the poll stored first
    ticket = new_ticket(cw)
    polled = poll_once(hub.ctx, hub.sources, "cw", "tickets")
    [first] = [r for r in rows(hub) if r.id in polled and r.subject_id == str(ticket["id"])]
    assert first.dedupe_key == f"ticket:{ticket['id']}:created"
    # When its thin callback arrives and is processed
    [thin_id] = deliver(hub, cw, thin_callback(cw, ticket))
    result = process_event(hub.ctx, hub.live_rules(), thin_id, enrich=hub.enrich)
    # Then no second row holds the change, and the callback says where it is
    of_ticket = [r for r in rows(hub) if r.subject_id == str(ticket["id"])]
    assert [r.id for r in of_ticket] == [first.id, thin_id]
    thin = of_ticket[1]
    assert thin.status == "ignored" and thin.raw["Entity"] == ""
    assert thin.result["already_stored"] == [first.id]
    assert thin.result["ignored"] == f"the change was already stored: event #{first.id}"
    assert result.actions == [] and result.enriched_into == []


FAILING = """\
rules:
  - id: cw-ticket-offboards
    on: ticket.created
    from: [connectwise]
    launch:
      playbook: user-offboarding
      inputs:
        leaver_name: "{{ ticket.summary }}"
"""


def test_retrying_a_thin_webhook_reruns_its_failed_full_record(hub: Runtime,
                                                               cw: SandboxServer) -> None:
    """The failed row is the enriched one; retrying the callback instead (what an admin
    may pick in the inbox) re-runs that row against the live state, not a copy of it."""
    # Given a rule for ConnectWise tickets, and the thin callback of a ticket of a
    # company nobody linked yet, processed
    (hub.ctx.settings.mappings_dir / "rules.yaml").write_text(FAILING)
    assert hub.rules.reload()
    ticket = new_ticket(cw)
    [thin_id] = deliver(hub, cw, thin_callback(cw, ticket))
    process_event(hub.ctx, hub.live_rules(), thin_id, enrich=hub.enrich)
    [_, full] = rows(hub)
    assert full.status == "failed"
    assert "is not linked to a hub client" in full.result["errors"][0]["error"]
    # When the company is linked and the thin callback is retried
    with transaction(hub.ctx.sessions) as session:
        hub.ctx.clients.save(session, "dedupe", name="Dedupe Co", by="user:admin")
        hub.ctx.clients.link(session, "dedupe", "cw", "company", str(full.client_key),
                             by="user:admin")
    with transaction(hub.ctx.sessions) as session:
        reopen(session, thin_id)
    result = process_event(hub.ctx, hub.live_rules(), thin_id, enrich=hub.enrich)
    # Then the same full-record row ran again (no new row) and launched the run
    [thin, again] = rows(hub)
    assert again.id == full.id and again.attempts == 2
    assert (thin.status, again.status, again.hub_client) == ("done", "done", "dedupe")
    assert thin.hub_client == "dedupe"  # the callback is listed under the client too
    assert result.enriched_into == [full.id]
    assert [a["effect"] for a in result.actions] == ["launched"]

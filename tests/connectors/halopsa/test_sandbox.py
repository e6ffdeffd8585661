"""The HaloPSA sandbox over real HTTP on 127.0.0.1: Halo's quirks, webhooks, write faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import TransientError, WebhookRequest, build_connector
from connectors.halopsa import HaloPSAConnector
from connectors.halopsa.sandbox import SandboxServer
from connectors.loopback import LoopbackServer
from hub.core.events import EventKind, SubjectRef


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A running sandbox."""
    with SandboxServer() as running:
        yield running


def _connector(server: SandboxServer, **overrides: object) -> HaloPSAConnector:
    connector = build_connector("halopsa", "halo-sbx", server.connector_config(**overrides))
    assert isinstance(connector, HaloPSAConnector)
    return connector


def _token(server: SandboxServer) -> str:
    halo = server.sandbox
    answer = httpx.post(f"{server.url}/auth/token?tenant={halo.tenant}", data={
        "grant_type": "client_credentials", "client_id": halo.client_id,
        "client_secret": halo.client_secret, "scope": "all"})
    return str(answer.raise_for_status().json()["access_token"])


def test_like_halo_a_misspelt_paging_parameter_returns_everything(server: SandboxServer) -> None:
    """``paginate`` (not Halo's ``pageinate``) is ignored: every ticket comes back."""
    server.seed("tickets", 12)
    headers = {"Authorization": f"Bearer {_token(server)}"}
    paged = httpx.get(f"{server.url}/api/Tickets", headers=headers,
                      params={"pageinate": "true", "page_size": 5, "page_no": 1}).json()
    misspelt = httpx.get(f"{server.url}/api/Tickets", headers=headers,
                         params={"paginate": "true", "page_size": 5, "page_no": 1}).json()
    capped = httpx.get(f"{server.url}/api/Tickets", headers=headers,
                       params={"pageinate": "true", "page_size": 500}).json()
    assert (len(paged["tickets"]), paged["record_count"]) == (5, 12)
    assert len(misspelt["tickets"]) == 12
    assert capped["page_size"] == 100


def test_the_token_endpoint_wants_the_tenant(server: SandboxServer) -> None:
    """Hosted instances: no or another ?tenant= is refused (the connector sends it)."""
    halo = server.sandbox
    form = {"grant_type": "client_credentials", "client_id": halo.client_id,
            "client_secret": halo.client_secret}
    assert httpx.post(f"{server.url}/auth/token", data=form).status_code == 400
    assert httpx.post(f"{server.url}/auth/token?tenant=other", data=form).status_code == 400
    with _connector(server) as connector:
        assert list(connector.poll("tickets", None))


def test_webhooks_with_basic_auth_are_verified_read_back_and_echoes_dropped(
        server: SandboxServer) -> None:
    """A new ticket's webhook passes verify and is read back as ticket.created; the
    webhook of the note we post on it is our own echo."""
    # Given a receiver on 127.0.0.1 that Halo posts to with Basic auth
    received: list[WebhookRequest] = []
    arrived = threading.Condition()

    async def receive(request: Request) -> Response:
        with arrived:
            received.append(WebhookRequest(headers=dict(request.headers),
                                           body=await request.body()))
            arrived.notify_all()
        return Response(status_code=202)

    receiver = LoopbackServer(Starlette(routes=[Route("/hook", receive, methods=["POST"])]))
    receiver.start()
    config = server.connector_config()
    server.sandbox.add_webhook(f"{receiver.url}/hook", password=config["webhook_secret"])
    try:
        with _connector(server) as connector:
            client = server.sandbox.store.create_client("Acme Ltd")
            # When a leaver ticket is logged
            ticket = server.sandbox.store.create_ticket(
                "Leaver: Jo Bloggs", client_id=client["id"], ticket_type="Leaver",
                user_name="Jo Bloggs", custom_fields={"Leaver Name": "Jo Bloggs"})
            with arrived:
                assert arrived.wait_for(lambda: len(received) >= 1, timeout=30)
            connector.verify(received[0])
            [thin] = connector.parse(received[0])
            events = connector.enrich(thin)
            # Then it is the ticket's creation with its names and custom fields
            assert events[0].kind == EventKind.TICKET_CREATED
            data = events[0].data["ticket"]
            assert (data["type"], data["board"], data["status"]) == ("Leaver", "Service Desk",
                                                                     "New")
            assert data["custom_fields"]["Leaver Name"] == "Jo Bloggs"
            assert events[0].client is not None and events[0].client.id == str(client["id"])
            # When we post a note on it, its "Action Added" webhook is our echo
            connector.post_note(SubjectRef(type="ticket", id=str(ticket["id"])), "Launched.",
                                key="k1")
            with arrived:
                assert arrived.wait_for(lambda: len(received) >= 2, timeout=30)
            connector.verify(received[1])
            assert connector.parse(received[1]) == []
    finally:
        receiver.stop()


def test_a_note_applied_but_answered_500_is_found_by_its_marker(server: SandboxServer) -> None:
    """The write landed, the answer was lost: find_note sees it, nothing is posted twice."""
    store = server.sandbox.store
    client = store.create_client("Acme Ltd")
    ticket = SubjectRef(type="ticket", id=str(store.create_ticket(
        "Leaver", client_id=client["id"], notify=False)["id"]))
    with _connector(server) as connector:
        server.sandbox.fail_next_writes_after_apply(1)
        with pytest.raises(TransientError) as info:
            connector.post_note(ticket, "Launched.", key="once")
        found = connector.find_note(ticket, "once")
    assert info.value.maybe_applied
    assert found is not None
    assert len(store.ticket_actions(int(ticket.id))) == 1


def test_completion_write_back_attachment_and_status(server: SandboxServer) -> None:
    """attach twice with one key → one attachment; set_status by name moves the ticket."""
    store = server.sandbox.store
    client = store.create_client("Acme Ltd")
    tid = store.create_ticket("Leaver", client_id=client["id"], notify=False)["id"]
    ticket = SubjectRef(type="ticket", id=str(tid))
    with _connector(server) as connector:
        first = connector.attach(ticket, "evidence.txt", b"all done", title="Evidence", key="r1")
        again = connector.attach(ticket, "evidence.txt", b"all done", title="Evidence", key="r1")
        connector.set_status(ticket, "Completed")
        connector.set_status(ticket, "Completed")
    [attachment] = store.ticket_attachments(tid)
    assert first == again == str(attachment["id"])
    assert store.attachment_data(tid, attachment["id"]) == b"all done"
    assert store.ticket(tid)["status_name"] == "Completed"
    [status_action] = store.ticket_actions(tid)
    assert status_action["new_status"] == 8 and status_action["hiddenfromuser"] is True

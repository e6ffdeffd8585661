"""The Datto RMM sandbox over real HTTP on 127.0.0.1, driven through the connector."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import AuthFailed, Cursor, WebhookRequest, build_connector
from connectors.datto_rmm import DattoRMMConnector
from connectors.datto_rmm.sandbox import SandboxServer
from connectors.loopback import LoopbackServer
from hub.core.events import EventKind


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A running sandbox."""
    with SandboxServer() as running:
        yield running


def _connector(server: SandboxServer, **overrides: object) -> DattoRMMConnector:
    connector = build_connector("datto-rmm", "datto-sbx", server.connector_config(**overrides))
    assert isinstance(connector, DattoRMMConnector)
    return connector


def test_alerts_are_polled_with_their_site_across_pages(server: SandboxServer) -> None:
    """25 open alerts, pages of 10: three pages over absolute nextPageUrls, every alert once."""
    # Given 25 open alerts on one site
    server.seed("alerts_open", 25)
    connector = _connector(server)
    # When the open stream is polled from scratch
    pages = list(connector.poll("alerts_open", None))
    # Then every alert arrived once, on its site, and the walk used page=1, page=2
    events = [e for p in pages for e in p.events]
    assert len(pages) == 3 and len(events) == 25
    assert len({e.dedupe_key for e in events}) == 25
    assert all(e.client is not None and e.client.type == "site" for e in events)
    assert server.sandbox.request_count("GET", "/api/v2/account/alerts/open") == 3
    connector.close()


def test_an_expired_token_is_replaced_transparently(server: SandboxServer) -> None:
    """Datto forgets the token (100 h passed): one 401, one new grant, the call succeeds."""
    connector = _connector(server)
    site = server.sandbox.store.create_site("Acme HQ")
    list(connector.client.sites())
    server.sandbox.revoke_tokens()

    sites = connector.sites()

    assert [s["id"] for s in sites] == [site["uid"]]
    assert server.sandbox.token_requests == 2
    connector.close()


def test_resolving_an_alert_moves_it_to_the_resolved_stream(server: SandboxServer) -> None:
    """The resolved list carries resolvedOn; the cursor follows it."""
    store = server.sandbox.store
    site = store.create_site("Acme HQ")
    alert = store.raise_alert(site["uid"])
    store.resolve_alert(alert["alertUid"])
    connector = _connector(server)

    pages = list(connector.poll("alerts_resolved", None))
    again = list(connector.poll("alerts_open", Cursor(position=pages[-1].cursor.position)))

    [event] = [e for p in pages for e in p.events]
    assert event.kind is EventKind.ALERT_RESOLVED
    assert event.data["alert"]["category"] == "backup"
    assert [e for p in again for e in p.events] == []
    connector.close()


def test_webhooks_reach_a_receiver_and_are_re_read(server: SandboxServer) -> None:
    """Triggered and resolved bodies POSTed to the registered URL; the connector re-reads
    each from the API and ends with the alert's real state."""
    # Given a receiver on 127.0.0.1 registered as a global webhook
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    async def receive(request: Request) -> Response:
        # read first: awaiting while holding a thread lock would block the event loop
        # for the second, concurrent delivery (both then time out)
        body = await request.body()
        with lock:
            got.append((request.path_params["secret"], body))
        return Response(status_code=202)

    receiver = LoopbackServer(Starlette(routes=[Route("/hook/{secret}", receive,
                                                      methods=["POST"])]))
    receiver.start()
    secret = server.connector_config()["webhook_secret"]
    server.sandbox.add_webhook(f"{receiver.url}/hook/{secret}")
    store = server.sandbox.store
    site = store.create_site("Acme HQ")
    store.create_device(site["uid"], "ACME-FS01")
    # When an alert is raised and resolved
    alert = store.raise_alert(site["uid"], diagnostics="Backup failed")
    store.resolve_alert(alert["alertUid"])
    assert server.sandbox.wait_for_webhooks(60)
    receiver.stop()
    assert len(got) == 2, list(server.sandbox.dispatcher.deliveries)
    # Then both deliveries verify, parse and enrich to the API's copy
    connector = _connector(server)
    kinds = []
    for path_secret, body in got:
        request = WebhookRequest(headers={}, body=body, path_secret=path_secret)
        connector.verify(request)
        for thin in connector.parse(request):
            kinds += [(e.kind, e.client.id if e.client else None)
                      for e in connector.enrich(thin)]
    assert (EventKind.ALERT_RESOLVED, site["uid"]) in kinds
    connector.close()


def test_bad_credentials_are_refused_at_the_token_endpoint(server: SandboxServer) -> None:
    """The sandbox answers 400 invalid_grant, as Spring OAuth does."""
    connector = _connector(server, api_secret="WRONG")

    with pytest.raises(AuthFailed, match="refused the credentials"):
        connector.sites()
    connector.close()

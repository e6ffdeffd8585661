"""The NinjaOne sandbox over real HTTP on 127.0.0.1, driven through the connector."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import WebhookRequest, build_connector
from connectors.loopback import LoopbackServer
from connectors.ninjaone import NinjaOneConnector
from connectors.ninjaone.sandbox import SandboxServer
from hub.core.events import EventKind
from tests.e2e.harness import wait_until


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A running sandbox."""
    with SandboxServer() as running:
        yield running


class Receiver:
    """A loopback webhook receiver that keeps each delivery's headers and body."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()

        async def hook(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                self.deliveries.append((dict(request.headers), body))
            return Response(status_code=204)

        self.server = LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))

    def got(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return list(self.deliveries)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


def _connector(server: SandboxServer, **overrides: object) -> NinjaOneConnector:
    connector = build_connector("ninjaone", "ninja-sbx", server.connector_config(**overrides))
    assert isinstance(connector, NinjaOneConnector)
    return connector


def test_a_registered_webhook_delivers_activities_with_the_secret_header(
    server: SandboxServer, receiver: Receiver
) -> None:
    """PUT /v2/webhook, then every new activity of the configured organizations is POSTed
    with our header; the connector verifies, parses and re-reads it from the API."""
    # Given Acme (watched) and Globex (not), and the webhook registered through the API
    store = server.sandbox.store
    acme = store.create_organization("Acme Ltd")
    globex = store.create_organization("Globex")
    fs01 = store.create_device(acme["id"], "ACME-FS01")
    other = store.create_device(globex["id"], "GLOBEX-PC1")
    connector = _connector(server, organizations=[acme["id"]])
    connector.register_webhooks(f"{receiver.server.url}/hook")
    # When both organizations finish a backup job
    job = store.backup_job(fs01["id"])
    store.backup_job(other["id"])
    # Then only Acme's arrives, carrying the header, and it enriches to a resolved backup
    wait_until(lambda: receiver.got(), timeout=20, what="the webhook delivery")
    assert server.sandbox.wait_for_webhooks(20)
    [(headers, body)] = receiver.got()
    request = WebhookRequest(headers=headers, body=body)
    connector.verify(request)
    [thin] = connector.parse(request)
    [event] = connector.enrich(thin)
    assert event.kind is EventKind.ALERT_RESOLVED
    assert event.dedupe_key == f"activity:{job['id']}"
    assert event.client is not None and event.client.id == str(acme["id"])
    assert server.sandbox.webhook is not None
    assert server.sandbox.webhook["organizationIds"] == [acme["id"]]
    connector.close()


def test_only_the_webhook_call_gets_a_management_token(server: SandboxServer) -> None:
    """Least privilege: polling asks for monitoring; registering for monitoring management;
    a monitoring token cannot configure the webhook."""
    connector = _connector(server)
    list(connector.poll("activities", None))
    connector.register_webhooks("http://127.0.0.1:9/hook")

    assert server.sandbox.token_requests == [frozenset({"monitoring"}),
                                             frozenset({"monitoring", "management"})]
    token = connector.client.read_auth.token().access_token
    refused = httpx.put(f"{server.url}/v2/webhook", json={"url": "http://127.0.0.1:9/x"},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert refused.status_code == 403
    connector.close()


def test_conditions_show_as_active_alerts_until_reset(server: SandboxServer) -> None:
    """/v2/alerts is the current state; TRIGGERED and RESET are two activities."""
    store = server.sandbox.store
    org = store.create_organization("Acme Ltd")
    device = store.create_device(org["id"], "ACME-FS01")
    connector = _connector(server)
    activity = store.trigger_condition(device["id"], "Disk C: has less than 10% free")

    active = connector.alerts(org["id"])
    store.reset_condition(activity["seriesUid"])

    assert [a["id"] for a in active] == [activity["seriesUid"]]
    assert active[0]["category"] == "disk"
    assert connector.alerts(org["id"]) == []
    events = [e for p in connector.poll("activities", None) for e in p.events]
    assert [e.kind for e in events if e.subject and e.subject.id == activity["seriesUid"]] == [
        EventKind.ALERT_RAISED, EventKind.ALERT_RESOLVED]
    connector.close()


def test_status_reports_page_through_the_named_cursor(server: SandboxServer) -> None:
    """Backup jobs, AV status and patch installs of one organization."""
    store = server.sandbox.store
    org = store.create_organization("Acme Ltd")
    devices = [store.create_device(org["id"], f"ACME-PC{i:02d}") for i in range(3)]
    for device in devices:
        store.set_antivirus(device["id"])
        store.add_patch_install(device["id"], "2025-03 Cumulative Update", failed=True)
    for _ in range(4):
        store.backup_job(devices[0]["id"])
    connector = _connector(server)

    assert len(connector.antivirus_status(org["id"])) == 3
    assert len(connector.backup_jobs(org["id"])) == 4
    assert {p.status for p in connector.patch_installs(org["id"])} == {"FAILED"}
    assert connector.devices(org["id"])[0]["references"]["organization"]["name"] == "Acme Ltd"
    health = connector.device_health(org["id"])
    assert [(h.failed_os_patches, h.patched, h.health_status) for h in health] == [
        (1, False, "NEEDS_ATTENTION")] * 3
    connector.close()


def test_an_expired_token_is_replaced_transparently(server: SandboxServer) -> None:
    """NinjaOne forgets the token: one 401, one new grant, the call succeeds."""
    connector = _connector(server)
    connector.organizations()
    server.sandbox.revoke_tokens()

    assert connector.organizations() == []
    assert len(server.sandbox.token_requests) == 2
    connector.close()

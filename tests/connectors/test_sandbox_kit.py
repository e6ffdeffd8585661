"""The vendor-neutral sandbox kit: fault gate, control routes, webhook dispatch."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from connectors.base import TransientError, build_connector
from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.sandbox import SandboxServer
from connectors.loopback import LoopbackServer
from connectors.sandbox import FaultGate, FaultSwitches, WebhookDispatcher, control_routes
from hub.core.events import SubjectRef


class Vendor:
    """A tiny vendor API: POST /items stores, GET /items lists."""

    def __init__(self) -> None:
        self.items: list[dict[str, object]] = []
        self.faults = FaultSwitches()

        async def items(request: Request) -> Response:
            if request.method == "POST":
                self.items.append(await request.json())
                return JSONResponse({"id": len(self.items)}, 201)
            return JSONResponse(self.items)

        app = Starlette(routes=[Route("/items", items, methods=["GET", "POST"]),
                                *control_routes(self.faults)])
        self.client = TestClient(FaultGate(app, self.faults))


def test_a_forced_failure_is_answered_before_anything_happens() -> None:
    """fail_next: the request is refused with Retry-After; nothing is stored."""
    vendor = Vendor()
    vendor.faults.fail_next(1, status=429, retry_after=7)

    refused = vendor.client.post("/items", json={"n": 1})
    accepted = vendor.client.post("/items", json={"n": 2})

    assert refused.status_code == 429 and refused.headers["Retry-After"] == "7"
    assert accepted.status_code == 201
    assert vendor.items == [{"n": 2}]
    assert vendor.faults.request_count("POST", "/items") == 2


def test_a_5xx_after_applying_a_write_stores_it_and_loses_the_answer() -> None:
    """The ambiguous failure: the write happened but the caller sees 500; reads pass."""
    vendor = Vendor()
    vendor.faults.fail_next_writes_after_apply(1, status=502)

    read = vendor.client.get("/items")
    write = vendor.client.post("/items", json={"n": 1})

    assert read.status_code == 200  # reads do not use up the write failure
    assert write.status_code == 502
    assert vendor.items == [{"n": 1}]


def test_the_control_routes_flip_the_switches() -> None:
    """/_sandbox/fail (with after_apply), /delay, /webhooks/*, /stats and /reset."""
    vendor = Vendor()
    client = vendor.client

    assert client.post("/_sandbox/fail", json={"count": 1, "status": 503}).json() == {"ok": True}
    assert client.get("/items").status_code == 503
    client.post("/_sandbox/fail", json={"count": 1, "status": 500, "after_apply": True})
    assert client.post("/items", json={"n": 1}).status_code == 500
    client.post("/_sandbox/webhooks/duplicate", json={"next": 1})
    client.post("/_sandbox/webhooks/drop", json={"next": 1})
    client.post("/_sandbox/delay", json={"ms": 1})
    bad = client.post("/_sandbox/fail", content=b"[1]")

    assert bad.status_code == 400
    assert vendor.faults.copies() == 0 and vendor.faults.copies() == 2
    assert client.get("/_sandbox/stats").json() == {"requests": 2, "dropped": 1,
                                                     "duplicated": 1}
    client.post("/_sandbox/reset")
    assert vendor.faults.next_action().delay_ms == 0
    assert vendor.items == [{"n": 1}]


class Receiver:
    """A loopback HTTP endpoint that counts the webhook bodies it receives."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.bodies.append(body)
            return Response(status_code=204)

        self.server = LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver."""
    rx = Receiver()
    rx.server.start()
    yield rx
    rx.server.stop()


def test_the_dispatcher_drops_and_duplicates_as_switched(receiver: Receiver) -> None:
    """send() honours drop and duplicate; only loopback URLs are called."""
    # Given a dispatcher that drops the next webhook and then repeats one
    faults = FaultSwitches()
    dispatcher = WebhookDispatcher(faults=faults)
    dispatcher.start()
    faults.drop_webhooks(next=1)
    faults.duplicate_webhooks(1)
    url = f"{receiver.server.url}/hook"

    # When three webhooks are sent (and one to a remote host)
    sent = [dispatcher.send(url, f"w{i}".encode(), {}) for i in range(3)]
    refused = dispatcher.send("https://example.com/hook", b"x", {})
    assert dispatcher.wait_idle(10)
    dispatcher.stop()

    # Then the first was lost, the second came twice, the third once
    assert sent == [0, 2, 1] and refused == 0
    assert sorted(receiver.bodies) == [b"w1", b"w1", b"w2"]
    assert dispatcher.counts == {"queued": 3, "delivered": 3, "failed": 0, "refused": 1}


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """The ConnectWise sandbox, now on the kit."""
    with SandboxServer() as srv:
        yield srv


def test_connectwise_sandbox_applies_a_note_then_answers_500(server: SandboxServer) -> None:
    """On the kit, ConnectWise's sandbox can store a note and fail the answer: the
    connector reports maybe_applied, and find_note finds the note by its marker."""
    cw = server.sandbox
    company = cw.create_company("Acme Ltd")
    ticket = cw.create_ticket("Leaver: J. Doe", company_id=company["id"])
    connector = build_connector("connectwise", "cw-kit", server.connector_config())
    assert isinstance(connector, ConnectWiseConnector)
    ref = SubjectRef(type="ticket", id=str(ticket["id"]))
    cw.fail_next_writes_after_apply(1, status=500)

    with pytest.raises(TransientError) as info:
        connector.post_note(ref, "launched", key="note-1")
    found = connector.find_note(ref, "note-1")
    connector.close()

    assert info.value.maybe_applied is True
    assert len(cw.notes(ticket["id"])) == 1 and found is not None


def test_connectwise_sandbox_duplicates_callbacks(server: SandboxServer,
                                                  receiver: Receiver) -> None:
    """The duplicate switch delivers one ticket change twice (same MessageId)."""
    cw = server.sandbox
    connector = build_connector("connectwise", "cw-kit", server.connector_config())
    assert isinstance(connector, ConnectWiseConnector)
    connector.register_webhooks(f"{receiver.server.url}/hook")
    connector.close()
    company = cw.create_company("Acme Ltd")
    cw.duplicate_callbacks(1)

    cw.create_ticket("Leaver: J. Doe", company_id=company["id"])
    assert cw.wait_for_callbacks(10)

    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert cw.stats()["duplicated"] == 1

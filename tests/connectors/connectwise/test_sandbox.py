"""The ConnectWise sandbox over real HTTP on 127.0.0.1: auth, paging, switches, callbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import AuthFailed, WebhookRequest, build_connector, is_thin
from connectors.connectwise import ConnectWiseConfig, ConnectWiseConnector
from connectors.connectwise.sandbox import SandboxServer
from connectors.connectwise.signing import sign
from connectors.http import RetryPolicy
from connectors.loopback import LoopbackServer
from hub.core.events import EventKind, SubjectRef

from .spec_check import SpecChecker, load_spec


class Receiver:
    """A tiny webhook endpoint on 127.0.0.1 that records deliveries."""

    def __init__(self) -> None:
        self.requests: list[WebhookRequest] = []
        self._cond = threading.Condition()

        async def hook(request: Request) -> Response:
            body = await request.body()
            with self._cond:
                self.requests.append(
                    WebhookRequest(
                        headers=dict(request.headers), body=body, query=dict(request.query_params)
                    )
                )
                self._cond.notify_all()
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = LoopbackServer(app)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[WebhookRequest]:
        """Block until ``count`` deliveries arrived (condition wait, no sleeping)."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A running sandbox on a free loopback port."""
    with SandboxServer() as srv:
        yield srv


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running callback receiver."""
    rx = Receiver()
    rx.server.start()
    yield rx
    rx.server.stop()


def _connector(server: SandboxServer, **overrides: Any) -> ConnectWiseConnector:
    conn = build_connector("connectwise", "cw-sbx", server.connector_config(**overrides))
    assert isinstance(conn, ConnectWiseConnector)
    return conn


def _auth(server: SandboxServer) -> dict[str, str]:
    import base64

    cw = server.sandbox
    token = base64.b64encode(f"{cw.company_id}+{cw.public_key}:{cw.private_key}".encode())
    return {"Authorization": f"Basic {token.decode()}", "clientId": cw.client_id}


def _api(server: SandboxServer) -> str:
    return f"{server.url}/v4_6_release/apis/3.0"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "bad credentials"),
        ({"Authorization": "Basic bm9wZTpub3Bl"}, "bad credentials"),
        ("no-client-id", "clientId"),
    ],
)
def test_requests_need_basic_auth_and_client_id(
    server: SandboxServer, headers: Any, message: str
) -> None:
    """401 with a vendor-shaped error body unless both credentials are right."""
    if headers == "no-client-id":
        headers = {"Authorization": _auth(server)["Authorization"]}

    response = httpx.get(f"{_api(server)}/service/tickets", headers=headers)

    assert response.status_code == 401
    assert set(response.json()) == {"code", "message", "errors"}
    assert message in response.json()["message"]


def test_lists_are_bare_arrays_paged_with_link_headers(server: SandboxServer) -> None:
    """Page 1 of 25 tickets links next/last; the last page links only back."""
    server.seed("tickets", 25)
    url = f"{_api(server)}/service/tickets"

    first = httpx.get(url, params={"pageSize": 10}, headers=_auth(server))
    last = httpx.get(url, params={"pageSize": 10, "page": 3}, headers=_auth(server))

    assert isinstance(first.json(), list) and len(first.json()) == 10
    assert set(first.links) == {"next", "last"}
    assert "page=2" in first.links["next"]["url"]
    assert len(last.json()) == 5 and set(last.links) == {"first", "prev"}
    assert all("lastUpdated" in t["_info"] for t in first.json())


def test_conditions_order_by_and_bad_queries(server: SandboxServer) -> None:
    """The conditions subset filters; orderBy sorts; nonsense is a 400 error body."""
    cw = server.sandbox
    company = cw.create_company("Acme Ltd", "ACME")
    cw.create_ticket("A", company_id=company["id"], board="HR")
    cw.create_ticket("B", company_id=company["id"])
    url = f"{_api(server)}/service/tickets"

    hr = httpx.get(url, params={"conditions": 'board/name in ("hr")'}, headers=_auth(server))
    desc = httpx.get(url, params={"orderBy": "id desc"}, headers=_auth(server))
    bad = httpx.get(url, params={"conditions": "summary = = 1"}, headers=_auth(server))

    assert [t["summary"] for t in hr.json()] == ["A"]
    assert [t["summary"] for t in desc.json()] == ["B", "A"]
    assert bad.status_code == 400 and "code" in bad.json()


def test_callbacks_are_delivered_signed_and_accepted(
    server: SandboxServer, receiver: Receiver
) -> None:
    """Registered URLs get callbacks signed as ConnectWise signs them; verify+parse work."""
    cw = server.sandbox
    conn = _connector(server)
    conn.register_webhooks(receiver.url)
    company = cw.create_company("Acme Ltd", "ACME")

    ticket = cw.create_ticket("Leaver: Alex Example", company_id=company["id"], type="Leaver")
    agreement = cw.create_agreement(company["id"], "Managed Services - Acme")

    deliveries = receiver.wait_for(2)
    for delivery in deliveries:
        assert delivery.headers["x-content-signature"] == sign(delivery.body, cw.signing_key)
        conn.verify(delivery)
    events = [e for d in deliveries for e in conn.parse(d)]
    assert sorted((e.kind, e.dedupe_key) for e in events) == sorted(
        [
            (EventKind.TICKET_CREATED, f"ticket:{ticket['id']}:created"),
            (EventKind.AGREEMENT_CREATED, f"agreement:{agreement['id']}:created"),
        ]
    )
    assert cw.request_count("GET", "/v4_6_release/system/callbackkey/index.rails") == 1


def test_our_own_writes_do_not_come_back_as_work(server: SandboxServer, receiver: Receiver) -> None:
    """Self-suppressed entries send nothing; without it the echo is dropped by parse."""
    cw = server.sandbox
    company = cw.create_company("Acme Ltd", "ACME")
    ticket = cw.create_ticket("Printer", company_id=company["id"])
    ref = SubjectRef(type="ticket", id=str(ticket["id"]))
    suppressed = _connector(server)
    suppressed.register_webhooks(receiver.url)

    suppressed.post_note(ref, "hello", key="k1")
    assert cw.wait_for_callbacks()
    assert receiver.requests == []

    echoing = _connector(server, self_suppress_callbacks=False)
    echoing.register_webhooks(receiver.url)
    echoing.post_note(ref, "again", key="k2")
    (delivery,) = receiver.wait_for(1)
    echoing.verify(delivery)
    assert echoing.parse(delivery) == []


def test_rate_limit_switch_sends_retry_after_and_the_connector_waits(
    server: SandboxServer, sleeps: list[float]
) -> None:
    """Forced 429s carry Retry-After; the connector honours it (waits patched)."""
    server.seed("agreements", 3)
    server.fail_next(2, status=429, retry_after=3)
    raw = httpx.get(f"{_api(server)}/finance/agreements", headers=_auth(server))

    pages = list(_connector(server).poll("agreements", None))

    assert raw.status_code == 429 and raw.headers["Retry-After"] == "3"
    assert raw.json()["code"] == "TooManyRequests"
    # The first wait is the vendor's; with sleeps patched the source-wide pause is still
    # running when the next request comes, so it waits out the rest (never more).
    assert sleeps[0] == 3.0 and all(s <= 3.0 for s in sleeps)
    assert sum(len(p.events) for p in pages) == 3


def test_server_error_switch_via_the_control_api(
    server: SandboxServer, sleeps: list[float]
) -> None:
    """POST /_sandbox/fail makes the next request a 503; the connector retries it."""
    server.seed("tickets", 2)
    httpx.post(f"{server.url}/_sandbox/fail", json={"count": 1, "status": 503})

    pages = list(_connector(server).poll("tickets", None))

    assert len(sleeps) == 1
    assert sum(len(p.events) for p in pages) == 2


def test_wrong_credentials_raise_auth_failed(server: SandboxServer) -> None:
    """The connector maps the sandbox's 401 to AuthFailed."""
    conn = build_connector(
        "connectwise", "cw-sbx", server.connector_config(valid_credentials=False)
    )

    with pytest.raises(AuthFailed):
        list(conn.poll("tickets", None))  # type: ignore[attr-defined]


def test_drop_switch_loses_the_next_callbacks(server: SandboxServer, receiver: Receiver) -> None:
    """Dropped callbacks never arrive; polling is the safety net."""
    cw = server.sandbox
    _connector(server).register_webhooks(receiver.url)
    company = cw.create_company("Acme Ltd", "ACME")
    cw.drop_callbacks(next=1)

    cw.create_ticket("lost", company_id=company["id"])
    kept = cw.create_ticket("kept", company_id=company["id"])

    (delivery,) = receiver.wait_for(1)
    assert cw.wait_for_callbacks()
    assert f'"ID": {kept["id"]}' in delivery.body.decode()
    assert cw.stats()["dropped"] == 1


def test_thin_callbacks_are_enriched_with_one_get(
    server: SandboxServer, receiver: Receiver
) -> None:
    """With the thin switch, Entity is empty; enrich fetches the ticket."""
    cw = server.sandbox
    conn = _connector(server)
    conn.register_webhooks(receiver.url)
    company = cw.create_company("Acme Ltd", "ACME")
    cw.thin_callbacks = True

    ticket = cw.create_ticket("Leaver", company_id=company["id"], type="Leaver")

    (delivery,) = receiver.wait_for(1)
    conn.verify(delivery)
    (thin,) = conn.parse(delivery)
    assert is_thin(thin)
    (full,) = conn.enrich(thin)
    assert full.dedupe_key == f"ticket:{ticket['id']}:created"
    assert full.data["ticket"]["type"] == "Leaver"


def test_delay_switch_slows_responses(server: SandboxServer) -> None:
    """set_delay adds latency to API responses (measured, not slept by the test)."""
    server.sandbox.set_delay(60)

    started = time.perf_counter()
    httpx.get(f"{_api(server)}/service/boards", headers=_auth(server))

    assert time.perf_counter() - started >= 0.05


def test_write_back_round_trip(server: SandboxServer) -> None:
    """Notes, documents and status changes land in the sandbox as ConnectWise would."""
    cw = server.sandbox
    company = cw.create_company("Acme Ltd", "ACME")
    ticket = cw.create_ticket("Leaver", company_id=company["id"])
    ref = SubjectRef(type="ticket", id=str(ticket["id"]))
    conn = _connector(server)

    note = conn.post_note(ref, "Checklist launched", key="k-1")
    doc_id = conn.attach(ref, "evidence.txt", b"all done", title="Evidence", key="k-2")
    conn.set_status(ref, "Completed")

    assert conn.find_note(ref, "k-1") == note
    assert cw.notes(ticket["id"])[0]["internalAnalysisFlag"] is True
    assert cw.document_content(int(doc_id)) == b"all done"
    assert "[msphub:k-2]" in cw.documents(ticket["id"])[0]["title"]
    assert cw.ticket(ticket["id"])["closedFlag"] is True
    assert conn.attach(ref, "evidence.txt", b"all done", title="Evidence", key="k-2") == doc_id


def test_control_api_creates_records_and_reads_notes(
    server: SandboxServer, receiver: Receiver
) -> None:
    """Other processes (benchmarks) drive the sandbox over /_sandbox."""
    _connector(server).register_webhooks(receiver.url)
    company = httpx.post(f"{server.url}/_sandbox/companies", json={"name": "Acme Ltd"}).json()

    ticket = httpx.post(
        f"{server.url}/_sandbox/tickets",
        json={"summary": "New starter", "company_id": company["id"], "type": "Onboarding"},
    ).json()
    notes = httpx.get(f"{server.url}/_sandbox/tickets/{ticket['id']}/notes").json()
    bad = httpx.post(f"{server.url}/_sandbox/tickets", json={"company_id": company["id"]})

    assert receiver.wait_for(1)
    assert notes == []
    assert bad.status_code == 400
    assert httpx.get(f"{server.url}/_sandbox/stats").json()["delivered"] == 1


def test_callbacks_to_non_loopback_urls_are_refused(server: SandboxServer) -> None:
    """The sandbox never reaches past 127.0.0.1 unless told to."""
    cw = server.sandbox
    _connector(server).register_webhooks("https://hub.example.test/hook")
    company = cw.create_company("Acme Ltd", "ACME")

    cw.create_ticket("x", company_id=company["id"])

    assert cw.dispatcher.counts["refused"] == 1
    assert cw.dispatcher.counts["queued"] == 0


def test_concurrent_changes_and_polls_are_consistent(server: SandboxServer) -> None:
    """Threads creating tickets while a poll pages: unique ids, nothing lost."""
    cw = server.sandbox
    company = cw.create_company("Acme Ltd", "ACME")

    def create(n: int) -> None:
        for i in range(n):
            cw.create_ticket(f"t{i}", company_id=company["id"])

    threads = [threading.Thread(target=create, args=(20,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pages = list(_connector(server).poll("tickets", None))

    ids = [e.subject.id for p in pages for e in p.events if e.subject]
    assert len(ids) == len(set(ids)) == 80


def test_sandbox_traffic_matches_the_legacy_spec(server: SandboxServer) -> None:
    """Requests the connector sends to the sandbox pass the same spec checks."""
    checker = SpecChecker(load_spec())
    inner = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.read()  # multipart bodies stream; the checker needs the bytes
            checker.check(request)
            return inner.handle_request(request)

    cw = server.sandbox
    company = cw.create_company("Acme Ltd", "ACME")
    ticket = cw.create_ticket("Leaver", company_id=company["id"])
    ref = SubjectRef(type="ticket", id=str(ticket["id"]))
    conn = ConnectWiseConnector(
        "cw-sbx",
        ConnectWiseConnector.manifest.config_model.model_validate(server.connector_config()),  # type: ignore[arg-type]
        transport=Recording(),
        retry=RetryPolicy(sleep=lambda _s: None),
    )

    list(conn.poll("tickets", None))
    conn.post_note(ref, "x", key="k")
    conn.attach(ref, "a.txt", b"a", title="A", key="k")
    conn.set_status(ref, "Completed")
    conn.register_webhooks("http://127.0.0.1:9/hook")
    conn.remove_webhooks("http://127.0.0.1:9/hook")

    assert checker.problems == []


class _RowCounter(httpx.HTTPTransport):
    """Counts the list calls to ``/service/tickets`` and the rows they returned."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "GET" and request.url.path.endswith("/service/tickets"):
            response.read()
            self.lists.append(len(response.json()))
        return response


def test_a_psa_clock_an_hour_behind_does_not_hide_a_ticket_from_the_poll() -> None:
    """The PSA's clock runs an hour behind the hub. A ticket whose callback was lost is
    caught by the next poll: the cursor follows the PSA's clock (before the fix the first
    cursor was the hub's "now", an hour past every ticket the PSA stamped)."""
    behind = lambda: datetime.now(UTC) - timedelta(hours=1)  # noqa: E731
    with SandboxServer(clock=behind) as server:
        conn = _connector(server)
        first = list(conn.poll("tickets", None))
        company = server.sandbox.create_company("Acme Ltd", "ACME")
        ticket = server.sandbox.create_ticket("Leaver: Jo", company_id=company["id"])

        caught = list(conn.poll("tickets", first[-1].cursor))

    keys = [e.dedupe_key for page in caught for e in page.events]
    assert f"ticket:{ticket['id']}:created" in keys


def test_idle_polling_after_our_notes_stays_one_empty_call(server: SandboxServer) -> None:
    """After the hub noted every ticket, the next poll asks the PSA to leave out records
    our API member changed: one list call, no rows (it used to re-list them all)."""
    company = server.sandbox.create_company("Acme Ltd", "ACME")
    ids = [server.sandbox.create_ticket(f"Leaver {n}", company_id=company["id"])["id"]
           for n in range(30)]
    counter = _RowCounter()
    config = ConnectWiseConfig.model_validate(server.connector_config(page_size=10))
    conn = ConnectWiseConnector("cw-sbx", config, transport=counter)
    cursor = list(conn.poll("tickets", None))[-1].cursor
    for ticket_id in ids:
        conn.post_note(SubjectRef(type="ticket", id=str(ticket_id)), "Offboarding started",
                       key=f"note-{ticket_id}")
    counter.lists.clear()

    pages = list(conn.poll("tickets", cursor))

    assert counter.lists == [0]
    assert [e for page in pages for e in page.events] == []

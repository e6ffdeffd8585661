"""Contract suite: every registered connector goes through the same checks (STYLE §12).

Manifest checks run for every connector; the behavioural checks run against each
connector's sandbox (real HTTP on 127.0.0.1) for connectors that ship one. Receivers,
writers and enrichers are checked through the sandbox's optional ``WebhookSandbox`` and
``TicketSandbox`` sides (connectors/base.py): a sandboxed connector that declares the
capability must offer them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.base import (
    AuthFailed,
    Capability,
    Connector,
    ConnectorError,
    Cursor,
    Enricher,
    MalformedPayload,
    PermanentError,
    Poller,
    RateLimited,
    Sandbox,
    TicketSandbox,
    TicketWriter,
    TransientError,
    WebhookReceiver,
    WebhookRegistrar,
    WebhookRejected,
    WebhookRequest,
    WebhookSandbox,
    WebhookSetupSandbox,
    build_connector,
    get_connector_class,
    is_thin,
    load_registry,
    load_sandbox,
    missing_capabilities,
)
from connectors.loopback import LoopbackServer
from hub.core.events import Event, EventKind, SubjectRef
from hub.services.inbox import check_storable

VENDORS = sorted(load_registry())
SANDBOXED = [v for v in VENDORS if load_sandbox(v) is not None]


def _with(capability: Capability) -> list[str]:
    return [v for v in SANDBOXED
            if capability in get_connector_class(v).manifest.capabilities]


RECEIVERS = _with(Capability.WEBHOOK_RECEIVER)
WRITERS = _with(Capability.TICKET_WRITER)
ENRICHERS = _with(Capability.ENRICHER)


@pytest.mark.parametrize("vendor", VENDORS)
def test_manifest_is_valid(vendor: str) -> None:
    """Entry name = vendor, a config model, declared capabilities implemented, sane streams."""
    cls = get_connector_class(vendor)
    manifest = cls.manifest

    assert manifest.vendor == vendor
    assert manifest.display_name.strip()
    assert issubclass(manifest.config_model, BaseModel)
    assert missing_capabilities(cls) == []
    assert manifest.default_poll_interval > timedelta(0)
    for spec in manifest.streams.values():
        assert spec.kinds and spec.kinds <= set(EventKind)


@pytest.fixture(params=SANDBOXED)
def sandboxed(request: pytest.FixtureRequest) -> Iterator[tuple[str, Sandbox]]:
    """(vendor, running sandbox) for each connector that ships a sandbox."""
    cls = load_sandbox(request.param)
    assert cls is not None
    sandbox = cls()
    sandbox.start()
    assert isinstance(sandbox, Sandbox)  # after start: the protocol reads ``url``
    yield request.param, sandbox
    sandbox.stop()


def _poller(vendor: str, sandbox: Sandbox, *, valid: bool = True) -> Poller:
    connector: Connector = build_connector(
        vendor, f"{vendor}-contract", sandbox.connector_config(valid_credentials=valid)
    )
    if not isinstance(connector, Poller):
        pytest.skip(f"{vendor} does not poll")
    return connector


def _stream(vendor: str) -> str:
    return sorted(get_connector_class(vendor).manifest.streams)[0]


def test_bad_credentials_raise_auth_failed(sandboxed: tuple[str, Sandbox]) -> None:
    """401 from the vendor → AuthFailed (the hub disables the source and alerts)."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox, valid=False)

    with pytest.raises(AuthFailed):
        list(poller.poll(_stream(vendor), None))


def test_429_surfaces_retry_after(sandboxed: tuple[str, Sandbox], sleeps: list[float]) -> None:
    """A long Retry-After reaches the caller as RateLimited.retry_after and pauses the
    source (the next poll is refused with the time left); a short one is waited."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox)
    stream = _stream(vendor)

    # Given a vendor that answers 429 with Retry-After: 120
    sandbox.fail_next(5, status=429, retry_after=120)
    with pytest.raises(RateLimited) as info:
        list(poller.poll(stream, None))
    # When the same source polls again at once
    with pytest.raises(RateLimited) as paused:
        list(poller.poll(stream, None))
    # Then it was refused before sending; another source waits out a short Retry-After
    other = _poller(vendor, sandbox)
    sandbox.fail_next(1, status=429, retry_after=2)
    list(other.poll(stream, None))

    assert info.value.retry_after == 120
    assert 100 < (paused.value.retry_after or 0) <= 120
    # Waits are patched, so the source-wide pause is still running when a second request
    # of the same poll comes: it waits out what is left, never more.
    assert sleeps[0] == 2.0 and all(s <= 2.0 for s in sleeps)


@pytest.mark.parametrize("count", [0, 25])
def test_paging_ends_and_the_cursor_never_goes_back(
    sandboxed: tuple[str, Sandbox], count: int
) -> None:
    """Every stream: finite pages, non-decreasing cursors, across two runs."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox)
    for stream in get_connector_class(vendor).manifest.streams:
        sandbox.seed(stream, count)

        first = list(poller.poll(stream, None))
        second = list(poller.poll(stream, first[-1].cursor))

        positions = [p.cursor.position for p in first + second]
        assert positions == sorted(positions), stream
        assert 1 <= len(first) <= count + 2
        assert sum(len(p.events) for p in first) >= count
        assert Cursor.model_validate_json(first[-1].cursor.model_dump_json()) == first[-1].cursor


def test_events_carry_source_vendor_kind_and_dedupe_key(sandboxed: tuple[str, Sandbox]) -> None:
    """Polled events name their instance and vendor, use declared kinds, unique keys."""
    vendor, sandbox = sandboxed
    poller = _poller(vendor, sandbox)
    for stream, spec in get_connector_class(vendor).manifest.streams.items():
        sandbox.seed(stream, 12)

        events = [e for page in poller.poll(stream, None) for e in page.events]

        assert len(events) >= 12
        keys = [e.dedupe_key for e in events]
        assert len(keys) == len(set(keys))
        for event in events:
            assert event.source == f"{vendor}-contract"
            assert event.vendor == vendor
            assert event.kind in spec.kinds
            assert event.dedupe_key and event.occurred_at.tzinfo is not None


# -- webhooks, write-back and enrichment ---------------------------------------------------

# What a delivery about a new record, or a change of one, may become.
_KINDS = {
    "created": {EventKind.TICKET_CREATED, EventKind.ALERT_RAISED, EventKind.AGREEMENT_CREATED,
                EventKind.COMPANY_CREATED, EventKind.DEVICE_ADDED},
    "updated": {EventKind.TICKET_UPDATED, EventKind.TICKET_CLOSED, EventKind.ALERT_RESOLVED,
                EventKind.AGREEMENT_UPDATED, EventKind.DEVICE_REMOVED},
}
# Bodies no vendor sends: not JSON, not UTF-8, JSON of the wrong shape.
_MALFORMED = [b"", b"not json", b"{\"unterminated\": ", b"\xff\xfe\x00", b"null", b"42",
              b'"text"', b"[]", b"[1, 2]", b"{}", b'{"id": {"nested": true}}']


@contextmanager
def _running(vendor: str) -> Iterator[tuple[Sandbox, Connector]]:
    """The vendor's sandbox, started, and a connector configured for it; both closed after."""
    cls = load_sandbox(vendor)
    assert cls is not None
    sandbox = cls()
    sandbox.start()
    try:
        connector = build_connector(vendor, f"{vendor}-contract", sandbox.connector_config())
        try:
            yield sandbox, connector
        finally:
            connector.close()
    finally:
        sandbox.stop()


@pytest.fixture(params=RECEIVERS)
def receiving(request: pytest.FixtureRequest
              ) -> Iterator[tuple[str, WebhookSandbox, WebhookReceiver]]:
    """(vendor, running webhook sandbox, its receiver) for each sandboxed receiver."""
    vendor: str = request.param
    with _running(vendor) as (sandbox, connector):
        assert isinstance(sandbox, WebhookSandbox), f"{vendor}'s sandbox sends no deliveries"
        assert isinstance(connector, WebhookReceiver)
        yield vendor, sandbox, connector


@pytest.fixture(params=WRITERS)
def writing(request: pytest.FixtureRequest
            ) -> Iterator[tuple[str, TicketSandbox, TicketWriter]]:
    """(vendor, running PSA sandbox, its writer) for each sandboxed ticket writer."""
    vendor: str = request.param
    with _running(vendor) as (sandbox, connector):
        assert isinstance(sandbox, TicketSandbox), f"{vendor}'s sandbox offers no tickets"
        assert isinstance(connector, TicketWriter)
        yield vendor, sandbox, connector


@pytest.fixture(params=ENRICHERS)
def enriching(request: pytest.FixtureRequest
              ) -> Iterator[tuple[str, WebhookSandbox, Connector]]:
    """(vendor, running webhook sandbox, its connector) for each sandboxed enricher; every
    enricher enriches webhook events, so its sandbox sends deliveries."""
    vendor: str = request.param
    with _running(vendor) as (sandbox, connector):
        assert isinstance(sandbox, WebhookSandbox), f"{vendor}'s sandbox sends no deliveries"
        assert isinstance(connector, Enricher) and isinstance(connector, WebhookReceiver)
        yield vendor, sandbox, connector


def _receive(receiver: WebhookReceiver, request: WebhookRequest) -> list[Event]:
    """What the hub's intake does with a delivery: verify, then parse."""
    receiver.verify(request)
    return receiver.parse(request)


def _full(connector: object, events: list[Event]) -> list[Event]:
    """Events as rules see them: thin ones through ``enrich`` (the hub's worker step)."""
    out: list[Event] = []
    for event in events:
        if is_thin(event):
            assert isinstance(connector, Enricher), "a thin event from a non-enricher"
            out.extend(connector.enrich(event))
        else:
            out.append(event)
    return out


def _keys(events: list[Event]) -> list[str]:
    return sorted(e.dedupe_key for e in events)


def _facts(events: list[Event]) -> list[tuple[Any, ...]]:
    """What rules read of each event (its key, kind, client, subject and data), sorted."""
    return sorted((e.dedupe_key, e.kind, e.client, e.subject, json.dumps(e.data, sort_keys=True))
                  for e in events)


def _altered(body: bytes) -> bytes:
    """The body with one member added after signing (still a JSON object)."""
    assert body.rstrip().endswith(b"}"), "deliveries are JSON objects"
    return body.rstrip()[:-1] + b', "forged": true}'


@pytest.mark.parametrize("event", ["created", "updated"])
def test_a_valid_delivery_verifies_and_parses_to_events(
    receiving: tuple[str, WebhookSandbox, WebhookReceiver], event: str
) -> None:
    """A delivery as the vendor sends it passes ``verify`` and becomes events of the
    delivery's kind (after ``enrich`` where the webhook only names the record)."""
    vendor, sandbox, receiver = receiving

    events = _full(receiver, _receive(receiver, sandbox.webhook_delivery(event)))

    assert events, f"{vendor}: a {event} delivery became no events"
    assert {e.kind for e in events} & _KINDS[event], [e.kind for e in events]
    for e in events:
        check_storable(e)  # the intake refuses (400) what the inbox cannot hold
        assert e.source == f"{vendor}-contract" and e.vendor == vendor
        assert e.dedupe_key and e.occurred_at.tzinfo is not None
        assert e.subject is not None and not is_thin(e)
        assert e.client is not None and e.client.id, "the hub resolves clients before rules"


def test_a_forged_delivery_is_rejected(
    receiving: tuple[str, WebhookSandbox, WebhookReceiver]
) -> None:
    """Wrong secret → WebhookRejected (401). A body altered after signing → rejected where
    the vendor signs bodies; where it only sends a secret, the altered body is not trusted
    either: the events come from the record the API holds, as for the genuine one."""
    _vendor, sandbox, receiver = receiving
    genuine = sandbox.webhook_delivery()

    # Given the same body authenticated with a secret that is not ours
    wrong = sandbox.webhook_request(genuine.body, secret=f"forged-{uuid.uuid4().hex}")
    # When it arrives, then verify refuses it as unauthentic (not as malformed)
    with pytest.raises(WebhookRejected) as refused:
        receiver.verify(wrong)
    assert refused.value.status == 401 and not isinstance(refused.value, MalformedPayload)

    # Given the body without any credentials, then it is refused too
    with pytest.raises(WebhookRejected) as bare:
        receiver.verify(WebhookRequest(headers={"content-type": "application/json"},
                                       body=genuine.body))
    assert bare.value.status == 401

    # Given the genuine delivery with its body altered after it was signed
    altered = replace(genuine, body=_altered(genuine.body))
    if sandbox.signs_webhooks:
        with pytest.raises(WebhookRejected) as tampered:
            receiver.verify(altered)
        assert tampered.value.status == 401
    else:
        assert _facts(_full(receiver, _receive(receiver, altered))) == \
            _facts(_full(receiver, _receive(receiver, genuine)))


def test_a_replayed_delivery_parses_to_the_same_dedupe_keys(
    receiving: tuple[str, WebhookSandbox, WebhookReceiver]
) -> None:
    """The same delivery twice yields the same keys, thin and enriched: the inbox's unique
    ``(source, dedupe_key)`` stores it once."""
    _vendor, sandbox, receiver = receiving
    delivery = sandbox.webhook_delivery()

    first, second = _receive(receiver, delivery), _receive(receiver, delivery)

    assert first and _keys(first) == _keys(second)
    assert _keys(_full(receiver, first)) == _keys(_full(receiver, second))


@pytest.mark.parametrize("body", _MALFORMED, ids=repr)
def test_a_malformed_body_raises_malformed_payload(
    receiving: tuple[str, WebhookSandbox, WebhookReceiver], body: bytes
) -> None:
    """An authenticated body that is not JSON or has the wrong shape raises
    ``MalformedPayload`` (answered 400), from ``verify`` where the vendor's check reads the
    body first (ConnectWise: ``Metadata.key_url``), else from ``parse`` — never another
    exception, never events."""
    _vendor, sandbox, receiver = receiving
    request = sandbox.webhook_request(body)

    with pytest.raises(MalformedPayload) as info:
        _receive(receiver, request)

    assert info.value.status == 400


_WRONG_VALUES = [None, True, -1, 1.5, 10**30, "", "x" * 5000, "\u0000", [], [1], {},
                 {"id": 1}]


def _variants(value: Any) -> Iterator[tuple[str, Any]]:
    """``value`` with one member, at any depth, removed or given a value of another type
    (inside JSON text too: ConnectWise's ``Entity``; lists through their first item)."""
    if isinstance(value, dict):
        for name, member in value.items():
            yield f"-{name}", {k: v for k, v in value.items() if k != name}
            for wrong in _WRONG_VALUES:
                yield f"{name}={wrong!r:.20}", {**value, name: wrong}
            for label, changed in _variants(member):
                yield f"{name}.{label}", {**value, name: changed}
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for label, changed in _variants(value[0]):
            yield f"[0].{label}", [changed, *value[1:]]
    elif isinstance(value, str) and value.startswith("{"):
        try:
            inner = json.loads(value)
        except ValueError:
            return
        for label, changed in _variants(inner):
            yield label, json.dumps(changed)


def _reshaped(body: bytes) -> Iterator[tuple[str, bytes]]:
    """The delivery with each member removed, or set to a value of another type."""
    data = json.loads(body)
    assert isinstance(data, dict)
    for label, changed in _variants(data):
        yield label, json.dumps(changed).encode()


@pytest.mark.parametrize("event", ["created", "updated"])
def test_a_delivery_with_members_of_the_wrong_type_never_crashes(
    receiving: tuple[str, WebhookSandbox, WebhookReceiver], event: str
) -> None:
    """Each member of a real delivery, at any depth, removed or given another type
    (authenticated, so the checks reach the parser): events, or ``MalformedPayload``, or
    ``WebhookRejected`` from ``verify`` (a signature or key check that reads the body) —
    never another exception; the thin events it gives enrich to events or raise a
    ``ConnectorError``."""
    _vendor, sandbox, receiver = receiving
    outcomes: dict[str, str] = {}

    for label, body in _reshaped(sandbox.webhook_delivery(event).body):
        request = sandbox.webhook_request(body)
        try:
            receiver.verify(request)
        except WebhookRejected as exc:
            outcomes[label] = type(exc).__name__
            continue
        try:
            events = receiver.parse(request)
        except MalformedPayload:
            outcomes[label] = "MalformedPayload"
            continue
        assert all(isinstance(e, Event) for e in events), label
        outcomes[label] = f"{len(events)} events"
        for thin in (e for e in events if is_thin(e)):
            assert isinstance(receiver, Enricher)
            try:  # the re-read of what the body names: events, or a connector error
                assert all(isinstance(e, Event) for e in receiver.enrich(thin)), label
            except ConnectorError as exc:
                outcomes[label] += f", enrich: {type(exc).__name__}"

    assert "MalformedPayload" in outcomes.values()  # some member is required


def test_a_posted_note_is_found_by_its_key(
    writing: tuple[str, TicketSandbox, TicketWriter]
) -> None:
    """post_note, then find_note by the key finds that note; an unknown key finds none."""
    _vendor, sandbox, writer = writing
    ticket = sandbox.a_ticket()
    key = f"contract-note-{uuid.uuid4().hex}"

    posted = writer.post_note(ticket, "Checklist launched — Zoë's café ✓ & <done>", key=key)

    assert writer.find_note(ticket, key) == posted
    assert writer.find_note(ticket, f"contract-unknown-{uuid.uuid4().hex}") is None


def test_a_note_whose_answer_was_lost_is_found_before_posting_again(
    writing: tuple[str, TicketSandbox, TicketWriter]
) -> None:
    """The PSA stores a note but its answer is lost: post_note raises a TransientError
    marked ``maybe_applied`` (not retried inline), and find_note finds the stored note."""
    _vendor, sandbox, writer = writing
    ticket = sandbox.a_ticket()
    key = f"contract-lost-{uuid.uuid4().hex}"

    # Given the next note's answer is lost after the PSA stored it
    sandbox.lose_next_note_answer()
    # When the note is posted
    with pytest.raises(TransientError) as lost:
        writer.post_note(ticket, "Step done.", key=key)
    # Then the caller knows to look, and looking finds it: no second post is needed
    assert lost.value.maybe_applied
    assert writer.find_note(ticket, key) is not None


def test_writing_to_a_missing_ticket_is_a_permanent_error(
    writing: tuple[str, TicketSandbox, TicketWriter]
) -> None:
    """A ticket the PSA does not hold: note, file and status raise ``PermanentError``
    (the outbox stops retrying), never a transient error retried forever."""
    _vendor, sandbox, writer = writing
    missing = SubjectRef(type="ticket", id="987654321")

    with pytest.raises(PermanentError):
        writer.post_note(missing, "Checklist launched.", key=f"contract-{uuid.uuid4().hex}")
    with pytest.raises(PermanentError):
        writer.attach(missing, "evidence.csv", b"x", title="Evidence",
                      key=f"contract-{uuid.uuid4().hex}")
    with pytest.raises(PermanentError):
        writer.set_status(missing, sandbox.completed_status)


class _Capture:
    """A loopback receiver that records every delivery as the hub's HTTP layer sees it."""

    def __init__(self) -> None:
        self.requests: list[WebhookRequest] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(Starlette(routes=[
            Route("/{path:path}", self._record, methods=["POST"])]))

    async def _record(self, request: Request) -> Response:
        delivery = WebhookRequest(headers=dict(request.headers), body=await request.body(),
                                  query=dict(request.query_params))
        with self._lock:
            self.requests.append(delivery)
        return Response(status_code=202)

    @property
    def url(self) -> str:
        return f"{self._server.url}/webhooks/contract"

    def __enter__(self) -> _Capture:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def _subscribe(sandbox: object, connector: object, url: str) -> None:
    """Make the vendor deliver to ``url`` as in production: our registration where the
    connector registers webhooks, else the admin's setup the README describes."""
    if isinstance(connector, WebhookRegistrar):
        connector.register_webhooks(url)
    else:
        assert isinstance(sandbox, WebhookSetupSandbox), "no way to receive webhooks"
        sandbox.send_webhooks_to(url)


def test_our_own_write_back_does_not_come_back_as_work(
    writing: tuple[str, TicketSandbox, TicketWriter]
) -> None:
    """Notes, files and status changes we write come back (if the vendor sends them at all)
    as no events; a technician's change of the same ticket does."""
    vendor, sandbox, writer = writing
    assert isinstance(sandbox, WebhookSandbox) and isinstance(writer, WebhookReceiver)
    ticket = sandbox.a_ticket()
    with _Capture() as capture:
        _subscribe(sandbox, writer, capture.url)
        # Given our write-back on the ticket, delivered wherever the vendor delivers it
        writer.post_note(ticket, "Checklist launched.", key=f"contract-{uuid.uuid4().hex}")
        writer.attach(ticket, "evidence.csv", b"a,b\n", title="Evidence",
                      key=f"contract-{uuid.uuid4().hex}")
        writer.set_status(ticket, sandbox.completed_status)
        assert sandbox.wait_for_webhooks(30)
        ours = list(capture.requests)
        # When a technician then changes the ticket
        sandbox.touch_ticket(ticket)
        assert sandbox.wait_for_webhooks(30)
        theirs = capture.requests[len(ours):]

    # Then only the technician's change becomes work
    echoes = [e for r in ours for e in _full(writer, _receive(writer, r))]
    assert echoes == [], f"{vendor}: our own writes came back as {[e.kind for e in echoes]}"
    work = [e for r in theirs for e in _full(writer, _receive(writer, r))]
    assert any(e.subject is not None and e.subject.id == ticket.id for e in work), vendor


def test_attaching_twice_with_one_key_attaches_once(
    writing: tuple[str, TicketSandbox, TicketWriter]
) -> None:
    """attach twice with the same key returns the same id; the ticket holds one file (and
    a second file under another key)."""
    _vendor, sandbox, writer = writing
    ticket = sandbox.a_ticket()
    key = f"contract-file-{uuid.uuid4().hex}"
    content = b"step,who,when\nverify-backups,tech,2026-01-01\n"

    first = writer.attach(ticket, "evidence.csv", content, title="Evidence", key=key)
    second = writer.attach(ticket, "evidence.csv", content, title="Evidence", key=key)

    assert first == second
    assert sandbox.attachment_ids(ticket) == [first]
    # another key is another file, even with the same name and title
    other = writer.attach(ticket, "evidence.csv", content, title="Evidence",
                          key=f"contract-file-{uuid.uuid4().hex}")
    assert other != first and sorted(sandbox.attachment_ids(ticket)) == sorted([first, other])


def test_setting_the_completed_status_twice_writes_once(
    writing: tuple[str, TicketSandbox, TicketWriter]
) -> None:
    """set_status to the completed status moves the ticket; the second call is a no-op;
    an unknown status name is a PermanentError and changes nothing."""
    _vendor, sandbox, writer = writing
    ticket = sandbox.a_ticket()
    done = sandbox.completed_status

    writer.set_status(ticket, done)
    writes = sandbox.status_writes(ticket)
    writer.set_status(ticket, done)

    assert sandbox.ticket_status(ticket).casefold() == done.casefold()
    assert writes >= 1
    assert sandbox.status_writes(ticket) == writes
    with pytest.raises(PermanentError):  # a name the PSA does not know: never retried
        writer.set_status(ticket, f"No such status {uuid.uuid4().hex[:8]}")
    assert sandbox.ticket_status(ticket).casefold() == done.casefold()


def _polled_keys(vendor: str, connector: object) -> set[str]:
    assert isinstance(connector, Poller)
    return {e.dedupe_key for stream in get_connector_class(vendor).manifest.streams
            for page in connector.poll(stream, None) for e in page.events}


@pytest.mark.parametrize("event", ["created", "updated"])
def test_a_thin_event_enriches_to_the_full_record(
    enriching: tuple[str, WebhookSandbox, Connector], event: str
) -> None:
    """A thin webhook event enriches to the record's full events: same subject, no longer
    thin, and keyed as a poll keys that record (webhook and poll collide in the inbox)."""
    vendor, sandbox, connector = enriching
    assert isinstance(connector, Enricher) and isinstance(connector, WebhookReceiver)
    delivery = sandbox.webhook_delivery(event, thin=True)
    thin = [e for e in _receive(connector, delivery) if is_thin(e)]
    assert thin, f"{vendor}: the thin delivery gave no thin event"

    enriched = connector.enrich(thin[0])

    assert enriched and not any(is_thin(e) for e in enriched)
    for e in enriched:
        assert (e.source, e.vendor) == (thin[0].source, thin[0].vendor)
        assert e.subject is not None and thin[0].subject is not None
        assert (e.subject.type, e.subject.id) == (thin[0].subject.type, thin[0].subject.id)
    if isinstance(connector, Poller):
        assert {e.dedupe_key for e in enriched} <= _polled_keys(vendor, connector)


def test_an_event_that_is_not_thin_passes_through_unchanged(
    enriching: tuple[str, WebhookSandbox, Connector]
) -> None:
    """enrich returns a full event (enriched, or polled) as it is."""
    vendor, sandbox, connector = enriching
    assert isinstance(connector, Enricher) and isinstance(connector, WebhookReceiver)
    full = _full(connector, _receive(connector, sandbox.webhook_delivery()))
    assert full

    for event in full:
        assert connector.enrich(event) == [event]
    if isinstance(connector, Poller):
        stream = _stream(vendor)
        assert isinstance(sandbox, Sandbox)
        sandbox.seed(stream, 3)
        polled = [e for page in connector.poll(stream, None) for e in page.events]
        assert polled and all(connector.enrich(e) == [e] for e in polled[:3])


REGISTRARS = _with(Capability.WEBHOOK_REGISTRAR)


@pytest.mark.parametrize("vendor", REGISTRARS)
def test_registering_webhooks_is_idempotent_and_removable(vendor: str) -> None:
    """register_webhooks twice keeps the same registrations; remove_webhooks removes each
    of them; removing again succeeds and removes no more (0 where the vendor lists
    registrations; NinjaOne has no GET of its one per-client webhook, so it reports the
    idempotent DELETE it sent)."""
    url = f"http://127.0.0.1:9/webhooks/{vendor}-contract"
    with _running(vendor) as (_sandbox, connector):
        assert isinstance(connector, WebhookRegistrar)

        first = connector.register_webhooks(url)
        second = connector.register_webhooks(url)
        removed = connector.remove_webhooks(url)

        assert first and first == second
        assert removed == len(first)
        assert connector.remove_webhooks(url) in {0, removed}

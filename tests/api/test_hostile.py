"""Hostile webhook input: every body, header and query gets a 2xx or a clear 4xx, never a 500,
alike on SQLite and PostgreSQL, and a refused delivery stores nothing (issue 14, item 1)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import respx
from sqlalchemy import func, select
from starlette.requests import Request

from connectors.base import build_connector
from connectors.connectwise.signing import sign
from connectors.webhook.connector import signature
from hub.api.webhooks import _read_limited
from hub.services.intake import WebhookError
from hub.services.sources import Source, SourceSpec
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.api.conftest import Api

SECRET = "tools-secret-0123456789abcdef"
CW_TOKEN = "cw-callback-token-0123456789"
CW_ORIGIN = "https://api-na.myconnectwise.net"
KEY_URL = f"{CW_ORIGIN}/v4_6_release/system/callbackkey/index.rails?id=k1"
SIGNING_KEY = "signing-key-abc"

GOOD_EVENT: dict[str, Any] = {
    "kind": "alert.resolved", "dedupe_key": "backup-42:resolved",
    "occurred_at": "2025-03-03T09:59:00Z", "client": {"id": "ACME", "name": "Acme"},
    "subject": {"type": "alert", "id": "42"},
    "data": {"alert": {"id": "42", "category": "backup"}},
}


def cw_config(require_signature: bool) -> dict[str, Any]:
    """A ConnectWise instance on the NA cloud with a callback token."""
    return {"site": "na.myconnectwise.net", "company_id": "example", "public_key": "pub",
            "private_key": "priv", "client_id": "6f0f3c2e-0000-4000-8000-000000000000",
            "webhook_secret": CW_TOKEN, "api_member": "msphub-api",
            "require_signature": require_signature}


@pytest.fixture
def hostile(api: Api) -> Iterator[Api]:
    """The API with a generic `tools` source and two ConnectWise sources (token only, signed)."""
    with respx.mock(assert_all_called=False) as router:
        router.get(KEY_URL).respond(json={"signing_key": SIGNING_KEY})
        items = api.rt.sources.items
        items["tools"] = Source("tools", SourceSpec(vendor="webhook"),
                                build_connector("webhook", "tools", {"secret": SECRET}))
        for name, signed in (("cw-open", False), ("cw", True)):
            items[name] = Source(name, SourceSpec(vendor="connectwise"),
                                 build_connector("connectwise", name, cw_config(signed)))
        yield api


def signed(body: bytes, *, ts: str | None = None) -> dict[str, str]:
    """Valid generic-webhook headers for ``body``."""
    stamp = ts if ts is not None else str(int(time.time()))
    return {"X-Msphub-Timestamp": stamp, "X-Msphub-Signature": signature(SECRET, stamp, body),
            "Content-Type": "application/json"}


def raw_header(value: str) -> bytes:
    """A header value as the bytes a hostile sender puts on the wire (Latin-1 when it can:
    the server decodes header bytes as Latin-1, so '²' arrives as '²')."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def stored(api: Api) -> int:
    """Inbox rows."""
    with api.ctx.sessions() as session:
        return int(session.execute(select(func.count()).select_from(InboxEvent)).scalar_one())


def event_with(**changes: Any) -> bytes:
    """The good event with some fields replaced, as JSON bytes (NaN allowed through)."""
    return json.dumps({**GOOD_EVENT, **changes}).encode()


def nested(depth: int) -> Any:
    """A value ``depth`` lists deep."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


SIGNED_BODIES: dict[str, bytes] = {
    "NUL in a string": event_with(data={"alert": {"message": "a\u0000b"}}),
    "NUL in a key": event_with(data={"al\u0000ert": 1}),
    "lone surrogate": b'{"kind": "alert.resolved", "dedupe_key": "k\\ud800", '
                      b'"occurred_at": "2025-03-03T09:59:00Z"}',
    "NaN": event_with(data={"n": float("nan")}),
    "Infinity": event_with(data={"n": float("inf")}),
    "1e400": event_with().replace(b'"data": {', b'"data": {"n": 1e400, '),
    "5,000-digit integer": event_with().replace(b'"data": {', b'"data": {"n": ' + b"9" * 5000
                                                + b", "),
    "year 1 at +05:00": event_with(occurred_at="0001-01-01T00:00:00+05:00"),
    "year 9999 at -05:00": event_with(occurred_at="9999-12-31T23:59:59-05:00"),
    "client id over 200": event_with(client={"id": "C" * 201}),
    "client name over 300": event_with(client={"id": "ACME", "name": "n" * 301}),
    "subject type over 30": event_with(subject={"type": "t" * 31, "id": "1"}),
    "subject id over 100": event_with(subject={"type": "alert", "id": "1" * 101}),
    "nested 1,000 deep": event_with().replace(b'"data": {', b'"data": {"deep": '
                                              + b"[" * 1000 + b"1" + b"]" * 1000 + b", "),
    "nested 900 deep": event_with().replace(b'"data": {', b'"data": {"deep": '
                                            + b"[" * 900 + b"1" + b"]" * 900 + b", "),
    "100,000 [": b"[" * 100_000,
    "string over the limit": event_with(data={"s": "x" * 100_001}),
    "not UTF-8": b'{"kind": "\xff\xfe"}',
}


@pytest.mark.parametrize("case", list(SIGNED_BODIES))
def test_validly_signed_hostile_bodies_are_refused_with_400(hostile: Api, case: str) -> None:
    """A correctly signed but hostile generic body answers 400 (not 500) and stores nothing."""
    body = SIGNED_BODIES[case]

    response = hostile.http.post("/webhooks/tools", content=body, headers=signed(body))

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed"
    assert stored(hostile) == 0


@pytest.mark.parametrize("stamp", ["²", "¹²³", "1714564800²", "9" * 400, "١٧١٤٥٦٤٨٠٠", " ", "-5"])
def test_timestamp_headers_of_non_ascii_digits_are_refused_with_401(hostile: Api,
                                                                     stamp: str) -> None:
    """Unicode digits, 400 nines or a sign in the timestamp header: 401, no 500."""
    body = event_with()
    headers = signed(body, ts=stamp)

    response = hostile.http.post("/webhooks/tools", content=body,
                                 headers={k: raw_header(v) for k, v in headers.items()})

    assert response.status_code == 401, response.text
    assert stored(hostile) == 0


def test_non_ascii_signature_header_is_refused_with_401(hostile: Api) -> None:
    """A non-ASCII generic signature header is a failed verification, not a TypeError."""
    body = event_with()
    headers = {**signed(body), "X-Msphub-Signature": raw_header("sha256=é")}

    response = hostile.http.post("/webhooks/tools", content=body, headers=headers)

    assert response.status_code == 401
    assert stored(hostile) == 0


def test_unicode_digit_content_length_is_refused_with_400(hostile: Api) -> None:
    """A Content-Length of Unicode digits is a malformed request, not a ValueError."""
    body = event_with()
    headers = {**signed(body), "Content-Length": raw_header("²")}

    response = hostile.http.post("/webhooks/tools", content=body, headers=headers)

    assert response.status_code == 400
    assert stored(hostile) == 0


def cw_body(**changes: Any) -> bytes:
    """A full ConnectWise ticket callback (Entity as a JSON string) with changes applied."""
    entity = {"id": 7, "summary": "Leaver", "board": {"name": "Service Desk"},
              "company": {"id": 19, "identifier": "ACME", "name": "Acme"},
              "_info": {"lastUpdated": "2025-03-03T09:00:00Z",
                        "dateEntered": "2025-03-03T09:00:00Z"}}
    entity.update(changes.pop("entity", {}))
    body = {"Type": "ticket", "Action": "added", "ID": 7, "MessageId": "m-1",
            "Entity": json.dumps(entity), "Metadata": {"key_url": KEY_URL}, **changes}
    return json.dumps(body).encode()


CW_BODIES: dict[str, bytes] = {
    "100,000 [": b"[" * 100_000,
    "ID of ¹": cw_body(ID="¹"),
    "ID of 5,000 digits": cw_body(ID="9" * 5000),
    "ID as a 5,000-digit number": cw_body().replace(b'"ID": 7', b'"ID": ' + b"7" * 5000),
    "Entity 100,000 [": cw_body(Entity="[" * 100_000),
    "date at year 1 +05:00": cw_body(entity={"_info": {
        "lastUpdated": "0001-01-01T00:00:00+05:00"}}),
    "Entity with NUL": cw_body(entity={"summary": "a\u0000b"}),
    "NaN": cw_body().replace(b'"MessageId": "m-1"', b'"MessageId": NaN'),
}


@pytest.mark.parametrize("case", list(CW_BODIES))
def test_connectwise_callbacks_with_only_the_url_token_never_500(hostile: Api,
                                                                case: str) -> None:
    """Bodies a sender needs only the URL token for: 400 and nothing stored, on both dbs."""
    body = CW_BODIES[case]

    response = hostile.http.post(f"/webhooks/cw-open?token={CW_TOKEN}", content=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed"
    assert stored(hostile) == 0


@pytest.mark.parametrize(("company", "key", "name"), [
    ({"id": 19, "identifier": "I" * 500, "name": "Acme"}, "I" * 200, "Acme"),
    ({"id": 19, "identifier": "ACME", "name": 5}, "ACME", None),
])
def test_connectwise_company_fields_are_stored_within_the_columns(
        hostile: Api, company: dict[str, Any], key: str, name: str | None) -> None:
    """An over-long identifier is cut to its column and a non-string name dropped, the same
    on both databases (was a database error on PostgreSQL, or a ValidationError)."""
    body = cw_body(entity={"company": company})

    response = hostile.http.post(f"/webhooks/cw-open?token={CW_TOKEN}", content=body)

    assert response.status_code == 202, response.text
    with hostile.ctx.sessions() as session:
        rows = set(session.execute(select(InboxEvent.client_key, InboxEvent.client_name)))
    assert rows == {(key, name)}


def test_connectwise_non_ascii_signature_header_is_refused_with_401(hostile: Api) -> None:
    """A non-ASCII x-content-signature is a bad signature (was a TypeError in the compare)."""
    body = cw_body()
    bad = raw_header(sign(body, SIGNING_KEY)[:-2] + "é")

    response = hostile.http.post(f"/webhooks/cw/{CW_TOKEN}", content=body,
                                 headers={"x-content-signature": bad})

    assert response.status_code == 401
    assert stored(hostile) == 0


def test_connectwise_signed_callback_is_still_accepted(hostile: Api) -> None:
    """The bounds do not refuse a genuine signed callback."""
    body = cw_body()

    response = hostile.http.post(f"/webhooks/cw/{CW_TOKEN}", content=body,
                                 headers={"x-content-signature": sign(body, SIGNING_KEY)})

    assert response.status_code == 202, response.text
    assert stored(hostile) == 1


def test_committed_event_answers_202_when_the_broker_is_down(
        hostile: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis down after the commit: still 202, the row stays pending for the requeue sweep."""
    # Given a broker whose every send fails as an unreachable Redis does
    def down(_ids: list[int]) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
    monkeypatch.setattr(hostile.rt.dispatch, "events", down)
    body = event_with()

    # When a valid event arrives
    response = hostile.http.post("/webhooks/tools", content=body, headers=signed(body))

    # Then it is accepted and stored, pending
    assert response.status_code == 202, response.text
    with hostile.ctx.sessions() as session:
        statuses = list(session.execute(select(InboxEvent.status)).scalars())
    assert statuses == ["pending"]


def test_event_nested_900_deep_can_still_be_read(hostile: Api) -> None:
    """A row stored before the bounds, nested 900 deep, is shown (elided), not a 500."""
    # Given a row written directly with data nested 900 levels
    now = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
    with transaction(hostile.ctx.sessions) as session:
        row = InboxEvent(source="tools", vendor="webhook", kind="alert.raised",
                         dedupe_key="deep", occurred_at=now, received_at=now, via="webhook",
                         data={"deep": nested(900)}, raw={}, status="done", attempts=1)
        session.add(row)
        session.flush()
        event_id = row.id

    # When it is read through the API
    response = hostile.get(f"/api/events/{event_id}")

    # Then the deep part is elided
    assert response.status_code == 200, response.text
    assert "nested too deep" in response.text


@pytest.mark.parametrize("offset", [10**30, 2**63, 2**31])
def test_huge_event_offset_is_a_422_not_a_500(hostile: Api, offset: int) -> None:
    """``GET /api/events?offset=<huge>`` is refused as invalid, not a database overflow."""
    response = hostile.get("/api/events", params={"offset": offset})

    assert response.status_code == 422


def test_largest_allowed_offset_answers_an_empty_page(hostile: Api) -> None:
    """The largest allowed offset is simply past the end."""
    response = hostile.get("/api/events", params={"offset": 2**31 - 1})

    assert response.status_code == 200
    assert response.json() == []


def test_body_that_never_arrives_in_time_answers_408() -> None:
    """A body that stalls is refused with 408 after the read timeout (not held forever)."""
    # Given a request whose first chunk arrives and then nothing more
    async def receive() -> dict[str, Any]:
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": b'{"kind": ', "more_body": True}
        await asyncio.Event().wait()  # never set: the sender stalls
        raise AssertionError("unreachable")

    sent: list[bool] = []
    request = Request({"type": "http", "method": "POST", "path": "/webhooks/tools",
                       "headers": [], "query_string": b""}, receive)

    # When the hub reads it with a short timeout
    with pytest.raises(WebhookError) as caught:
        asyncio.run(_read_limited(request, 1024, 0.05))

    # Then it answers 408
    assert caught.value.status == 408

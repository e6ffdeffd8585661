"""Property-based fuzzing of every WebhookReceiver through ``POST /webhooks/{source}``, on
SQLite and PostgreSQL (issue 14, item 6): whatever the body, headers or query, the answer
is a 2xx or a clear 4xx — never a 5xx — and the inbox grows exactly by what was accepted.

Each receiver is authenticated the way its vendor does it (signed, or the URL secret) so
the generated bodies reach the parser, not only the signature check. A connector added to
the registry with the ``webhook_receiver`` capability must add an entry to RECEIVERS
(the first test fails until it does), and then inherits the whole suite.

Cost: ``MSPHUB_FUZZ_EXAMPLES`` examples per receiver and database (default 150, a few
seconds each on SQLite); raise it for a longer campaign.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.autotask.sandbox_webhooks import signed_headers
from connectors.base import Capability, build_connector, load_registry
from connectors.connectwise.signing import sign
from connectors.webhook.connector import signature
from hub.services.sources import Source, SourceSpec
from hub.store.models import InboxEvent
from tests.api.conftest import Api

EXAMPLES = int(os.environ.get("MSPHUB_FUZZ_EXAMPLES", "150"))
TOKEN = "fuzz-url-secret-0123456789abcdef"
SECRET = "fuzz-hmac-secret-0123456789abcdef"


@dataclass(frozen=True)
class Receiver:
    """How to configure one vendor's receiver, authenticate a body, and what a valid one is."""

    config: dict[str, Any]
    auth: Callable[[bytes], tuple[str, dict[str, str]]]  # body -> (url suffix, headers)
    seed: dict[str, Any]


def _generic_auth(body: bytes) -> tuple[str, dict[str, str]]:
    stamp = str(int(time.time()))
    return "", {"X-Msphub-Timestamp": stamp, "X-Msphub-Signature": signature(SECRET, stamp, body)}


def _token_auth(body: bytes) -> tuple[str, dict[str, str]]:
    return f"/{TOKEN}", {}


def _cw_auth(body: bytes) -> tuple[str, dict[str, str]]:
    return f"/{TOKEN}", {"x-content-signature": sign(body, "unused")}


def _autotask_auth(body: bytes) -> tuple[str, dict[str, str]]:
    return "", signed_headers(body, TOKEN)


def _halo_auth(body: bytes) -> tuple[str, dict[str, str]]:
    token = base64.b64encode(f"msphub:{TOKEN}".encode()).decode()
    return "", {"authorization": f"Basic {token}"}


def _ninja_auth(body: bytes) -> tuple[str, dict[str, str]]:
    return "", {"x-msphub-webhook-secret": TOKEN}


RECEIVERS: dict[str, Receiver] = {
    "webhook": Receiver(
        config={"secret": SECRET},
        auth=_generic_auth,
        seed={"kind": "alert.resolved", "dedupe_key": "k-1",
              "occurred_at": "2025-03-03T09:59:00Z", "client": {"id": "ACME", "name": "Acme"},
              "subject": {"type": "alert", "id": "42"}, "data": {"alert": {"id": "42"}}},
    ),
    "connectwise": Receiver(
        config={"site": "na.myconnectwise.net", "company_id": "example", "public_key": "pub",
                "private_key": "priv", "client_id": "6f0f3c2e-0000-4000-8000-000000000000",
                "webhook_secret": TOKEN, "api_member": "msphub-api",
                "require_signature": False},
        auth=_cw_auth,
        seed={"Type": "ticket", "Action": "added", "ID": 7, "MessageId": "m-1",
              "Entity": json.dumps({"id": 7, "summary": "Leaver",
                                    "company": {"id": 19, "identifier": "ACME"},
                                    "_info": {"lastUpdated": "2025-03-03T09:00:00Z",
                                              "dateEntered": "2025-03-03T09:00:00Z"}})},
    ),
    "datto-rmm": Receiver(
        config={"api_url": "http://127.0.0.1:9", "api_key": "key", "api_secret": "secret",
                "webhook_secret": TOKEN, "allow_any_host": True},
        auth=_token_auth,
        seed={"alertUid": "a-1", "siteUid": "s-1", "event": "resolved",
              "timestamp": "2025-03-03T09:00:00Z"},
    ),
    "autotask": Receiver(
        config={"username": "api@example.com", "secret": "secret", "integration_code": "CODE",
                "zone_lookup_url": "http://127.0.0.1:9", "allow_any_host": True,
                "webhook_secret": TOKEN},
        auth=_autotask_auth,
        seed={"Action": "Create", "Guid": "15287032-91e4-49ef-9a0f-5543361187f2",
              "EntityType": "Ticket", "Id": 29000004,
              "Fields": {"status": 1, "issueType": 17, "subIssueType": 233,
                         "queueID": 29683482, "title": "Leaver",
                         "ticketNumber": "T20250303.0004", "companyID": 29000003},
              "EventTime": "2025-03-03T09:00:00.701Z", "SequenceNumber": 1,
              "PersonID": 29000002},
    ),
    "halopsa": Receiver(
        config={"url": "http://127.0.0.1:9", "client_id": "id", "client_secret": "secret",
                "webhook_secret": TOKEN},
        auth=_halo_auth,
        seed={"event": "New Ticket Logged",
              "ticket": {"id": 4801, "summary": "Leaver", "tickettype_id": 1, "status_id": 1,
                         "client_id": 11, "client_name": "Acme", "team": "Service Desk",
                         "last_update": "2025-03-03T09:00:03.451"}},
    ),
    "ninjaone": Receiver(
        config={"instance_url": "http://127.0.0.1:9", "allow_any_host": True,
                "client_id": "id", "client_secret": "secret", "webhook_secret": TOKEN},
        auth=_ninja_auth,
        seed={"id": 170006, "activityTime": 1741000000.977, "deviceId": 1003,
              "seriesUid": "4564b755-518a-4144-a216-9a23df1c5aab", "activityType": "CONDITION",
              "statusCode": "TRIGGERED", "status": "Triggered", "message": "Disk space low",
              "type": "Condition", "severity": "MAJOR",
              "device": {"id": 1003, "organizationId": 1001, "displayName": "ACME-PC01"}},
    ),
}


def receivers() -> list[str]:
    """Registered vendors whose connector receives webhooks."""
    return sorted(name for name, cls in load_registry().items()
                  if Capability.WEBHOOK_RECEIVER in cls.manifest.capabilities)


def test_every_webhook_receiver_is_fuzzed() -> None:
    """A new receiver joins the suite by adding a RECEIVERS entry; none is left out."""
    assert set(receivers()) <= set(RECEIVERS), set(receivers()) - set(RECEIVERS)
    assert receivers()


# ---------------------------------------------------------------------------- generators

_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "\x00", "\ud800", "²", "¹", "9" * 400, "0001-01-01T00:00:00+05:00",
     "9999-12-31T23:59:59-05:00", "2025-03-03T09:00:00Z", "x" * 300, "NaN", "ticket"])
_numbers = (st.integers() | st.sampled_from([2**63, -(2**63) - 1, 10**30])
            | st.floats(allow_nan=True, allow_infinity=True))
_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, seed: dict[str, Any]) -> bytes:
    """The valid body with some fields replaced, removed or added."""
    body = dict(seed)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*seed, "extra", "Entity", "client", "data"]))
        if draw(st.booleans()):
            body[key] = draw(_json)
        else:
            body.pop(key, None)
    if "Entity" in seed and draw(st.booleans()):  # the CW body inside the body
        inner = json.loads(seed["Entity"])
        inner[draw(st.sampled_from(["id", "_info", "company", "summary"]))] = draw(_json)
        body["Entity"] = json.dumps(inner, allow_nan=True)
    return _dumps(body)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def bodies(seed: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, mutated valid bodies, deep nesting, huge numbers."""
    return st.one_of(
        st.binary(max_size=200),
        _json.map(_dumps),
        mutated(seed),
        st.integers(1, 3000).map(_deep),
        st.just(b"[" * 100_000),
        st.just(_dumps(seed)),
        st.just(_dumps([seed, seed])),
        st.integers(20, 6000).map(lambda n: b'{"ID": ' + b"9" * n + b"}"),
    )


header_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)


@dataclass
class Sent:
    """One fuzz request."""

    body: bytes
    authenticate: bool
    headers: dict[str, str]
    query: dict[str, str]


def requests(seed: dict[str, Any]) -> st.SearchStrategy[Sent]:
    """A body, whether to authenticate it, and extra (hostile) headers and query."""
    names = st.sampled_from(["x-msphub-timestamp", "x-msphub-signature", "x-content-signature",
                             "content-type", "x-request-id", "content-length"])
    return st.builds(Sent, body=bodies(seed), authenticate=st.booleans(),
                     headers=st.dictionaries(names, header_values, max_size=2),
                     query=st.dictionaries(st.sampled_from(["token", "x", ""]), header_values,
                                           max_size=2))


# ---------------------------------------------------------------------------- the property


@pytest.fixture
def fuzzed(api: Api) -> Iterator[Api]:
    """The API with one source per receiver vendor, named after the vendor."""
    for vendor, receiver in RECEIVERS.items():
        if vendor in receivers():
            connector = build_connector(vendor, f"fz-{vendor}", receiver.config)
            api.rt.sources.items[f"fz-{vendor}"] = Source(
                f"fz-{vendor}", SourceSpec(vendor=vendor), connector)
    yield api


def _stored(api: Api) -> int:
    with api.ctx.sessions() as session:
        return int(session.execute(select(func.count()).select_from(InboxEvent)).scalar_one())


@pytest.mark.parametrize("vendor", sorted(RECEIVERS))
def test_no_request_gets_a_server_error(fuzzed: Api, vendor: str) -> None:
    """Any generated request answers < 500; the inbox grows exactly by what was accepted."""
    if vendor not in receivers():
        pytest.fail(f"{vendor} is in RECEIVERS but not registered")
    receiver = RECEIVERS[vendor]
    seen: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(sent=requests(receiver.seed))
    def check(sent: Sent) -> None:
        suffix, auth = receiver.auth(sent.body) if sent.authenticate else ("", {})
        headers = {**sent.headers, **auth}
        before = _stored(fuzzed)
        response = fuzzed.http.post(f"/webhooks/fz-{vendor}{suffix}", content=sent.body,
                                    headers={k: v.encode("latin-1") for k, v in headers.items()},
                                    params=sent.query)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        after = _stored(fuzzed)
        if response.status_code == 202:
            assert after - before == response.json()["accepted"] > 0
        else:
            assert after == before, response.text
            if response.status_code >= 400:
                assert response.json()["detail"]

    check()
    # the suite reaches the parser and stores events, not only the signature check
    assert seen.get(202, 0) + seen.get(200, 0) > 0, seen
    assert seen.get(400, 0) > 0, seen

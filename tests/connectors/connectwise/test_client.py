"""ConnectWise connector over a mocked API: auth, polling, write-back, callbacks."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from pydantic import ValidationError

from connectors.base import (
    AuthFailed,
    Cursor,
    MalformedPayload,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
    WebhookRejected,
    WebhookRequest,
)
from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.events import callback_events, parse_callback
from connectors.connectwise.signing import key_url_allowed, sign
from connectors.http import RetryPolicy
from hub.core.events import EventKind, SubjectRef

from .conftest import (
    API,
    HOOK_URL,
    NOW,
    SECRET,
    fixture_bytes,
    load_fixture,
    make_config,
)

TICKET = SubjectRef(type="ticket", id="69")
SIGNING_KEY = load_fixture("callback_key.json")["signing_key"]


def _query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


def _signed(name: str, *, token: str | None = SECRET) -> WebhookRequest:
    body = fixture_bytes(name)
    return WebhookRequest(
        headers={"X-Content-Signature": sign(body, SIGNING_KEY)},
        body=body,
        query={"token": token} if token else {},
    )


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "api_root"),
    [
        ("na.myconnectwise.net", "https://api-na.myconnectwise.net/v4_6_release/apis/3.0"),
        ("EU.myconnectwise.net", "https://api-eu.myconnectwise.net/v4_6_release/apis/3.0"),
        ("api-au.myconnectwise.net", "https://api-au.myconnectwise.net/v4_6_release/apis/3.0"),
        ("cw.example.test", "https://cw.example.test/v4_6_release/apis/3.0"),
        ("http://127.0.0.1:8123/", "http://127.0.0.1:8123/v4_6_release/apis/3.0"),
    ],
)
def test_site_maps_to_the_api_host(site: str, api_root: str) -> None:
    """Cloud hosts map to api-* hosts; full URLs (sandbox, on-premise) are kept."""
    assert make_config(site=site).api_root == api_root


@pytest.mark.parametrize(
    "overrides",
    [
        {"site": "https://na.myconnectwise.net/v4_6_release/apis/3.0"},
        {"site": "ftp://cw.example.test"},
        {"codebase": "/v4_6_release"},
        {"boards": ['Bad "quote"']},
        {"webhook_secret": "short"},
        {"page_size": 5000},
    ],
)
def test_invalid_config_is_refused(overrides: dict[str, object]) -> None:
    """Config mistakes fail validation before any request is made."""
    with pytest.raises(ValidationError):
        make_config(**overrides)


def test_secrets_never_appear_in_config_repr() -> None:
    """SecretStr keeps keys out of logs and error messages."""
    text = repr(make_config())
    assert "privkey" not in text and SECRET not in text


# -- auth and headers ---------------------------------------------------------------------


def test_every_request_carries_basic_auth_client_id_and_version(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Basic ``company+public:private``, the clientId header and a pinned API version."""
    list(connector.poll("agreements", None))

    request = cw_api["agreements"].calls.last.request
    expected = base64.b64encode(b"example+pubkey:privkey").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["clientId"] == "6f0f3c2e-0000-4000-8000-000000000000"
    assert request.headers["Accept"] == "application/vnd.connectwise.com+json; version=2022.1"


def test_401_raises_auth_failed(connector: ConnectWiseConnector, cw_api: respx.MockRouter) -> None:
    """Refused credentials are a permanent AuthFailed with the status attached."""
    cw_api["agreements"].respond(401, json=load_fixture("error_unauthorized.json"))

    with pytest.raises(AuthFailed) as info:
        list(connector.poll("agreements", None))

    assert info.value.status == 401
    assert info.value.source == "cw-test"
    assert "Unauthorized" in str(info.value) and "privkey" not in str(info.value)


def test_429_beyond_the_inline_budget_raises_rate_limited(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """A long Retry-After is handed to the caller instead of sleeping a worker."""
    cw_api["agreements"].respond(429, headers={"Retry-After": "120"})

    with pytest.raises(RateLimited) as info:
        list(connector.poll("agreements", None))

    assert info.value.retry_after == 120
    assert cw_api["agreements"].call_count == 1


def test_transient_5xx_is_retried(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """A 503 then a 200: the poll succeeds after one retry (waits patched to zero)."""
    cw_api["agreements"].side_effect = [
        httpx.Response(503),
        httpx.Response(200, json=load_fixture("agreements.json")),
    ]

    pages = list(connector.poll("agreements", Cursor(position="2024-05-01T11:50:00Z")))

    assert len(pages[0].events) == 2
    assert cw_api["agreements"].call_count == 2


def test_timeouts_become_transient_errors(cw_api: respx.MockRouter) -> None:
    """No httpx exception leaves the connector."""
    cw_api["agreements"].side_effect = httpx.ReadTimeout("slow")
    conn = ConnectWiseConnector(
        "cw-test",
        make_config(),
        clock=lambda: NOW,
        retry=RetryPolicy(max_attempts=2, sleep=lambda _s: None),
    )

    with pytest.raises(TransientError) as info:
        list(conn.poll("agreements", None))

    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert cw_api["agreements"].call_count == 2


# -- polling ------------------------------------------------------------------------------


def test_poll_reads_from_cursor_minus_lookback_sorted_by_id(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """conditions=lastUpdated>[cursor - 2 min], orderBy=id asc, page 1 of 1000."""
    cursor = Cursor(position="2024-05-01T11:50:00Z")

    list(connector.poll("tickets", cursor))

    first = _query(cw_api["tickets"].calls[0].request)
    assert first == {
        "conditions": 'lastUpdated>[2024-05-01T11:48:00Z] and _info/updatedBy != "msphub-api"',
        "orderBy": "id asc",
        "page": "1",
        "pageSize": "1000",
    }


def test_poll_follows_link_next_and_stops_at_the_last_page(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Page 2 comes from the Link header; page 2 has no next link, so paging ends."""
    pages = list(connector.poll("tickets", Cursor(position="2024-05-01T11:50:00Z")))

    assert len(pages) == 2
    assert [_query(c.request)["page"] for c in cw_api["tickets"].calls] == ["1", "2"]


def test_cursor_advances_only_on_the_last_page_and_never_back(
    connector: ConnectWiseConnector,
) -> None:
    """The stream is unsorted (id asc): page 1 keeps the old cursor, the last advances it."""
    start = Cursor(position="2024-05-01T11:50:00Z")

    pages = list(connector.poll("tickets", start))

    assert [p.cursor.position for p in pages] == ["2024-05-01T11:50:00Z", "2024-05-01T11:59:00Z"]
    assert ConnectWiseConnector.manifest.streams["tickets"].sorted is False


def test_cursor_moves_by_psa_timestamps_whatever_the_hub_clock(
        cw_api: respx.MockRouter) -> None:
    """The hub's clock three hours off changes nothing: the cursor is the newest
    lastUpdated the PSA returned."""
    conn = ConnectWiseConnector("cw-test", make_config(), clock=lambda: NOW - timedelta(hours=3))

    pages = list(conn.poll("tickets", Cursor(position="2024-05-01T11:50:00Z")))

    assert pages[-1].cursor.position == "2024-05-01T11:59:00Z"


def test_first_poll_starts_from_the_psa_clock_not_the_hub_s(cw_api: respx.MockRouter) -> None:
    """The PSA runs an hour behind the hub: the first window starts at the newest
    lastUpdated the PSA holds (one cheap newest-first row) minus the lookback, so a record
    the PSA stamped minutes ago by its clock is inside it. (Before, the hub's clock put
    the window an hour in the PSA's future and every later cursor was capped at it.)"""
    newest = {"id": 9, "_info": {"lastUpdated": "2024-05-01T11:00:00Z"}}
    cw_api["agreements"].side_effect = lambda request: httpx.Response(
        200, json=[newest] if request.url.params.get("pageSize") == "1"
        else load_fixture("agreements.json"))
    conn = ConnectWiseConnector("cw-test", make_config(), clock=lambda: NOW)

    pages = list(conn.poll("agreements", None))

    probe, walk = (_query(c.request) for c in cw_api["agreements"].calls)
    assert probe == {"orderBy": "_info/lastUpdated desc", "pageSize": "1"}
    assert walk["conditions"].startswith("lastUpdated>[2024-05-01T10:58:00Z]")
    assert pages[-1].cursor.position == "2024-05-01T11:57:00Z"


def test_poll_events_classify_new_updated_closed_and_drop_echoes(
    connector: ConnectWiseConnector,
) -> None:
    """New → created; older → updated; closedFlag → closed; our own change → nothing."""
    pages = list(connector.poll("tickets", Cursor(position="2024-05-01T11:50:00Z")))

    seen = [(e.kind, e.dedupe_key) for p in pages for e in p.events]
    assert seen == [
        (EventKind.TICKET_CREATED, "ticket:69:created"),
        (EventKind.TICKET_UPDATED, "ticket:70:2024-05-01T11:52:30Z"),
        (EventKind.TICKET_CLOSED, "ticket:71:closed:2024-05-01T11:58:00Z"),
    ]
    assert all(e.source == "cw-test" and e.vendor == "connectwise" for p in pages for e in p.events)


def test_first_poll_starts_at_now_minus_backfill(cw_api: respx.MockRouter) -> None:
    """Without a cursor the window is the PSA's ``now - backfill - lookback``."""
    conn = ConnectWiseConnector("cw-test", make_config(backfill="PT1H"), clock=lambda: NOW)

    pages = list(conn.poll("agreements", None))

    # The newest agreement (501) was last updated at 11:57 by the PSA's clock.
    assert _query(cw_api["agreements"].calls[1].request)["conditions"] == (
        'lastUpdated>[2024-05-01T10:55:00Z] and _info/updatedBy != "msphub-api"'
    )
    assert pages[-1].cursor.position == "2024-05-01T11:57:00Z"
    kinds = [e.kind for e in pages[0].events]
    assert kinds == [EventKind.AGREEMENT_CREATED, EventKind.AGREEMENT_UPDATED]


def test_board_filter_is_part_of_the_conditions(cw_api: respx.MockRouter) -> None:
    """Configured boards narrow the query on the server."""
    conn = ConnectWiseConnector(
        "cw-test", make_config(boards=["Service Desk", "HR"]), clock=lambda: NOW
    )

    list(conn.poll("tickets", Cursor(position="2024-05-01T11:50:00Z")))

    assert _query(cw_api["tickets"].calls[0].request)["conditions"] == (
        '(lastUpdated>[2024-05-01T11:48:00Z] and board/name in ("Service Desk","HR"))'
        ' and _info/updatedBy != "msphub-api"'
    )


def test_full_page_without_link_header_asks_for_the_next_page(
    cw_api: respx.MockRouter,
) -> None:
    """No Link header: a full page means maybe more; a short page ends the walk."""
    rows = load_fixture("agreements.json")
    cw_api["agreements"].side_effect = [
        httpx.Response(200, json=rows),
        httpx.Response(200, json=rows[:1]),
    ]
    conn = ConnectWiseConnector("cw-test", make_config(page_size=2), clock=lambda: NOW)

    pages = list(conn.poll("agreements", Cursor(position="2024-05-01T11:50:00Z")))

    assert [_query(c.request)["page"] for c in cw_api["agreements"].calls] == ["1", "2"]
    assert len(pages) == 2


def test_repeated_page_token_raises(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """A server that links back to a page already read cannot loop us forever."""
    link = f'<{API}/finance/agreements?page=2>; rel="next"'
    cw_api["agreements"].respond(json=load_fixture("agreements.json"), headers={"Link": link})

    with pytest.raises(PermanentError, match="repeated"):
        list(connector.poll("agreements", None))


def test_next_link_to_another_host_is_refused(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Our credentials never follow a Link header off the API origin."""
    link = '<https://evil.example.test/steal?page=2>; rel="next"'
    cw_api["agreements"].respond(json=load_fixture("agreements.json"), headers={"Link": link})

    with pytest.raises(PermanentError, match="another host"):
        list(connector.poll("agreements", None))


def test_unknown_stream_and_cursor_version_are_permanent(connector: ConnectWiseConnector) -> None:
    """Bad inputs from the hub are permanent errors, not retries."""
    with pytest.raises(PermanentError, match="stream"):
        list(connector.poll("invoices", None))
    with pytest.raises(PermanentError, match="version"):
        list(connector.poll("tickets", Cursor(version=2, position="2024-05-01T11:50:00Z")))


def test_malformed_row_is_skipped_not_fatal(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """One record without _info.lastUpdated is logged and skipped; the rest flows."""
    rows = load_fixture("agreements.json")
    del rows[0]["_info"]["lastUpdated"]
    cw_api["agreements"].respond(json=rows)

    pages = list(connector.poll("agreements", Cursor(position="2024-05-01T11:50:00Z")))

    assert [e.subject.id for e in pages[0].events if e.subject] == ["480"]


# -- write-back ---------------------------------------------------------------------------


def test_post_note_sets_exactly_one_flag_and_embeds_the_marker(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Internal note by default, no notifications, ``[msphub:<key>]`` in the text."""
    ref = connector.post_note(TICKET, "Step done.", key="outbox-9c1d")

    body = json.loads(cw_api["note_create"].calls.last.request.content)
    assert body == {
        "text": "Step done.\n\n[msphub:outbox-9c1d]",
        "detailDescriptionFlag": False,
        "internalAnalysisFlag": True,
        "resolutionFlag": False,
        "processNotifications": False,
    }
    assert ref.id == "13" and ref.ticket == TICKET


def test_post_note_flag_override_and_learned_api_member(
    cw_api: respx.MockRouter,
) -> None:
    """A resolution note on request; the API member is learned from our own note."""
    conn = ConnectWiseConnector("cw-test", make_config(api_member=None), clock=lambda: NOW)

    conn.post_note(TICKET, "All done [msphub:k1]", key="k1", flag="resolution")

    body = json.loads(cw_api["note_create"].calls.last.request.content)
    assert body["resolutionFlag"] is True and body["internalAnalysisFlag"] is False
    assert body["text"] == "All done [msphub:k1]"
    assert conn.api_member == "msphub-api"


def test_post_note_is_not_retried_once_it_may_have_been_applied(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """A 500 after POST is raised with maybe_applied so the outbox looks first."""
    cw_api["note_create"].respond(500)

    with pytest.raises(TransientError) as info:
        connector.post_note(TICKET, "Step done.", key="k")

    assert info.value.maybe_applied is True
    assert cw_api["note_create"].call_count == 1


def test_post_note_refuses_other_subjects(connector: ConnectWiseConnector) -> None:
    """Only ticket references of this source can receive notes."""
    with pytest.raises(PermanentError):
        connector.post_note(SubjectRef(type="agreement", id="5"), "x", key="k")
    with pytest.raises(PermanentError):
        connector.post_note(SubjectRef(type="ticket", id="69", source="other"), "x", key="k")


def test_find_note_reads_recent_notes_newest_first(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """GET notes?orderBy=id desc&pageSize=25; the marker identifies our note."""
    found = connector.find_note(TICKET, "outbox-7f3a")
    missing = connector.find_note(TICKET, "outbox-none")

    assert found is not None and found.id == "11"
    assert missing is None
    assert _query(cw_api["notes"].calls.last.request) == {"orderBy": "id desc", "pageSize": "25"}


def test_attach_uploads_multipart_with_marker_in_title(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """POST /system/documents (recordType=Ticket, recordId, title with marker, file)."""
    doc_id = connector.attach(
        TICKET, "evidence.pdf", b"%PDF-1.4", title="Completion evidence", key="outbox-9c1d"
    )

    request = cw_api["document_create"].calls.last.request
    assert doc_id == "901"
    assert request.headers["content-type"].startswith("multipart/form-data")
    content = request.content
    for part in (
        b'name="recordType"\r\n\r\nTicket',
        b'name="recordId"\r\n\r\n69',
        b'name="title"\r\n\r\nCompletion evidence [msphub:outbox-9c1d]',
        b'filename="evidence.pdf"',
        b"Content-Type: application/pdf",
        b"%PDF-1.4",
    ):
        assert part in content
    assert _query(cw_api["documents"].calls.last.request) == {
        "recordType": "Ticket",
        "recordId": "69",
    }


def test_attach_is_idempotent_by_key(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """A document already titled with the marker is returned, not uploaded again."""
    doc_id = connector.attach(TICKET, "evidence.pdf", b"x", title="Evidence", key="outbox-old")

    assert doc_id == "900"
    assert cw_api["document_create"].call_count == 0


def test_set_status_patches_the_active_status_of_the_board(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Name → id via the ticket's board statuses (inactive skipped), JSON-Patch replace."""
    connector.set_status(TICKET, "completed")
    connector.set_status(TICKET, "Completed")

    body = json.loads(cw_api["ticket_patch"].calls.last.request.content)
    assert body == [{"op": "replace", "path": "status", "value": {"id": 4}}]
    assert cw_api["statuses"].call_count == 1  # cached per board


def test_set_status_is_a_noop_when_already_there(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """No PATCH (and no echo) when the ticket already has the status."""
    connector.set_status(TICKET, "New")

    assert cw_api["ticket_patch"].call_count == 0


def test_set_status_unknown_name_is_not_found(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """An unknown status name raises NotFound after one cache refresh."""
    with pytest.raises(NotFound, match="Archived"):
        connector.set_status(TICKET, "Archived")

    assert cw_api["statuses"].call_count == 2


# -- callback registration ----------------------------------------------------------------


def test_register_webhooks_reconciles_existing_entries(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Keep the good ticket entry, delete the duplicate, the inactive and the extra type."""
    ids = connector.register_webhooks(HOOK_URL)

    assert ids == ["42", "46"]
    listed = _query(cw_api["callbacks"].calls.last.request)
    assert listed["conditions"] == f'url="{HOOK_URL}?token={SECRET}"'
    deleted = sorted(c.request.url.path.rsplit("/", 1)[1] for c in cw_api["callback_delete"].calls)
    assert deleted == ["43", "44", "45"]
    created = json.loads(cw_api["callback_create"].calls.last.request.content)
    assert created == {
        "url": f"{HOOK_URL}?token={SECRET}",
        "objectId": 1,
        "type": "agreement",
        "level": "owner",
        "description": "msphub cw-test agreement",
        "inactiveFlag": False,
        "isSelfSuppressedFlag": True,
    }


def test_register_webhooks_twice_creates_nothing_new(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Once the tenant matches, registration only reads."""
    existing = load_fixture("callbacks_existing.json")
    agreement = {**existing[0], "id": 47, "type": "agreement"}
    agreement["description"] = "msphub cw-test agreement"
    cw_api["callbacks"].respond(json=[existing[0], agreement])

    assert connector.register_webhooks(HOOK_URL) == ["42", "47"]
    assert cw_api["callback_create"].call_count == 0
    assert cw_api["callback_delete"].call_count == 0


def test_remove_webhooks_deletes_all_entries_for_the_url(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Every entry for our URL is deleted; a second call finds none."""
    assert connector.remove_webhooks(HOOK_URL) == 4
    cw_api["callbacks"].respond(json=[])
    assert connector.remove_webhooks(HOOK_URL) == 0


def test_callback_url_keeps_a_secret_already_in_the_path(connector: ConnectWiseConnector) -> None:
    """The token is added only when the hub's URL does not already carry the secret."""
    assert connector.callback_url(f"https://hub.test/wh/cw/{SECRET}") == (
        f"https://hub.test/wh/cw/{SECRET}"
    )
    assert connector.callback_url("https://hub.test/wh?a=1") == (
        f"https://hub.test/wh?a=1&token={SECRET}"
    )


def test_registration_without_a_webhook_secret_is_refused(cw_api: respx.MockRouter) -> None:
    """Without a per-instance secret every callback would be rejected: refuse early."""
    conn = ConnectWiseConnector("cw-test", make_config(webhook_secret=None))

    with pytest.raises(PermanentError, match="webhook_secret"):
        conn.register_webhooks(HOOK_URL)


# -- verification -------------------------------------------------------------------------


def test_verify_accepts_a_signed_callback_and_caches_the_key(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Secret, then signature with the key from key_url (fetched once, without our auth)."""
    connector.verify(_signed("callback_ticket_added.json"))
    connector.verify(_signed("callback_ticket_echo.json"))

    assert cw_api["callback_key"].call_count == 1
    assert "Authorization" not in cw_api["callback_key"].calls.last.request.headers


def test_verify_accepts_the_secret_in_the_path(connector: ConnectWiseConnector) -> None:
    """The secret may come as the URL path segment instead of ``?token=``."""
    body = fixture_bytes("callback_ticket_added.json")
    request = WebhookRequest(
        headers={"x-content-signature": sign(body, SIGNING_KEY)}, body=body, path_secret=SECRET
    )

    connector.verify(request)


@pytest.mark.parametrize("token", [None, "wrong-secret-0123456789", SECRET[:-1]])
def test_bad_or_missing_secret_is_rejected_before_any_fetch(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter, token: str | None
) -> None:
    """WebhookRejected (401) without touching the network."""
    with pytest.raises(WebhookRejected) as info:
        connector.verify(_signed("callback_ticket_added.json", token=token))

    assert info.value.status == 401
    assert cw_api["callback_key"].call_count == 0


def test_bad_signature_is_rejected(connector: ConnectWiseConnector) -> None:
    """A body altered after signing fails the HMAC check."""
    request = _signed("callback_ticket_added.json")
    tampered = WebhookRequest(
        headers=request.headers, body=request.body.replace(b"Alex", b"Eve!"), query=request.query
    )

    with pytest.raises(WebhookRejected, match="signature"):
        connector.verify(tampered)


def test_missing_signature_is_rejected(connector: ConnectWiseConnector) -> None:
    """A callback without x-content-signature is not trusted."""
    request = _signed("callback_ticket_added.json")

    with pytest.raises(WebhookRejected, match="x-content-signature"):
        connector.verify(WebhookRequest(headers={}, body=request.body, query=request.query))


@pytest.mark.parametrize(
    "key_url",
    [
        "https://evil.example.test/key",
        "http://api-na.myconnectwise.net/v4_6_release/system/callbackkey/index.rails?id=1",
        "https://api-na.myconnectwise.net@evil.example.test/key",
        "https://api-na.myconnectwise.net:8443/key",
        "https://myconnectwise.net.evil.example.test/key",
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
    ],
)
def test_key_url_off_the_allow_list_is_refused_without_fetching(
    connector: ConnectWiseConnector, key_url: str
) -> None:
    """SSRF guard: an untrusted key_url is rejected before any request (respx would fail)."""
    payload = json.loads(fixture_bytes("callback_ticket_added.json"))
    payload["Metadata"]["key_url"] = key_url
    body = json.dumps(payload).encode()
    request = WebhookRequest(
        headers={"x-content-signature": sign(body, SIGNING_KEY)}, body=body, query={"token": SECRET}
    )

    with pytest.raises(WebhookRejected, match="not allowed"):
        connector.verify(request)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api-eu.myconnectwise.net/v4_6_release/system/callbackkey/x", True),
        ("https://za.myconnectwise.net/x", True),
        ("https://api-staging.connectwisedev.com/x", True),
        ("https://cw.example.test/x", False),
        ("http://127.0.0.1:8123/v4_6_release/system/callbackkey/index.rails?id=1", False),
    ],
)
def test_key_url_allow_list_for_a_cloud_site(url: str, allowed: bool) -> None:
    """Vendor cloud hosts over HTTPS only; other hosts only when they are the site."""
    assert key_url_allowed(url, "https://api-na.myconnectwise.net") is allowed


def test_sandbox_site_allows_only_its_own_origin() -> None:
    """For an http://127.0.0.1 sandbox the configured host:port is the only key host."""
    site = "http://127.0.0.1:8123"
    assert key_url_allowed("http://127.0.0.1:8123/v4_6_release/system/callbackkey/x", site)
    assert not key_url_allowed("http://127.0.0.1:9999/x", site)
    assert not key_url_allowed("http://localhost:8123/x", site)


def test_verify_malformed_body_is_400(connector: ConnectWiseConnector) -> None:
    """A body that cannot be parsed for its key_url is malformed (HTTP 400)."""
    request = WebhookRequest(
        headers={"x-content-signature": "abc"}, body=b"{", query={"token": SECRET}
    )

    with pytest.raises(MalformedPayload) as info:
        connector.verify(request)

    assert info.value.status == 400


# -- parse and enrich ---------------------------------------------------------------------


def test_parse_drops_echoes_of_our_own_writes(connector: ConnectWiseConnector) -> None:
    """An update made by our API member (a note we posted) is not new work."""
    assert connector.parse(_signed("callback_ticket_echo.json")) == []


def test_parse_applies_the_board_filter(cw_api: respx.MockRouter) -> None:
    """Tickets on boards outside the filter are ignored."""
    conn = ConnectWiseConnector("cw-test", make_config(boards=["HR"]), clock=lambda: NOW)

    assert conn.parse(_signed("callback_ticket_added.json")) == []


def test_enrich_fetches_the_record_behind_a_thin_callback(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """One GET turns the thin event into full events keyed like the poll's."""
    cw_api.get(f"{API}/service/tickets/70", name="ticket_70").respond(
        json=load_fixture("tickets_page1.json")[1]
    )
    (thin,) = connector.parse(_signed("callback_ticket_updated_thin.json"))

    events = connector.enrich(thin)

    assert [(e.kind, e.dedupe_key) for e in events] == [
        (EventKind.TICKET_UPDATED, "ticket:70:2024-05-01T11:52:30Z")
    ]
    assert cw_api["ticket_70"].call_count == 1


def test_enrich_passes_full_events_through_and_drops_deleted_records(
    connector: ConnectWiseConnector, cw_api: respx.MockRouter
) -> None:
    """Full events need no I/O; a thin event whose record is gone yields nothing."""
    body = fixture_bytes("callback_ticket_added.json")
    (full,) = callback_events("cw-test", parse_callback(body), received_at=NOW)
    cw_api.get(f"{API}/service/tickets/70").respond(404)
    (thin,) = connector.parse(_signed("callback_ticket_updated_thin.json"))

    assert connector.enrich(full) == [full]
    assert connector.enrich(thin) == []


def test_log_lines_carry_path_but_no_query_or_secrets(
    connector: ConnectWiseConnector,
) -> None:
    """Request logs have method, path, status, duration; never tokens or auth."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        connector.register_webhooks(HOOK_URL)

    requests = [entry for entry in logs if entry["event"] == "http_request"]
    assert requests and all(set(r) >= {"method", "path", "status", "duration_ms"} for r in requests)
    assert SECRET not in repr(logs) and "privkey" not in repr(logs)
    assert all(urlsplit(r["path"]).query == "" for r in requests)

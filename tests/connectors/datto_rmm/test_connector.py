"""Datto RMM connector: polling windows and cursors, the URL secret, re-reading webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from connectors.base import (
    Cursor,
    InvalidConfig,
    TransientError,
    WebhookRejected,
    WebhookRequest,
    validate_config,
)
from connectors.datto_rmm import DattoRMMConnector
from connectors.http import RetryPolicy
from hub.core.events import EventKind

from .conftest import API, BACKUP_RESOLVED, SECRET, fixture_bytes, load_fixture, make_config


def _keys(pages: list) -> list[str]:  # type: ignore[type-arg]
    return [e.dedupe_key for p in pages for e in p.events]


def test_the_first_poll_reads_back_the_backfill_on_datto_s_clock(
    datto_api: respx.MockRouter,
) -> None:
    """No cursor: the window starts at the Date header minus ``backfill``, never the hub's
    clock (set a year ahead here); the last page's cursor is the newest vendor timestamp."""
    connector = DattoRMMConnector(
        "datto-test", make_config(backfill=timedelta(hours=1, minutes=30)),
        clock=lambda: datetime(2025, 7, 16, tzinfo=UTC))

    pages = list(connector.poll("alerts_open", None))

    # Date 14:00 - 1h30 = 12:30: the 12:00 and 11:00 alerts are older, the 13:00 one is in
    assert _keys(pages) == ["alert:9c0d2000-aaaa-4bbb-8ccc-000000000001:raised"]
    assert [p.cursor.position for p in pages] == ["2024-07-16T12:30:00.000Z",
                                                  "2024-07-16T13:00:00.000Z"]
    connector.close()


def test_a_poll_keeps_alerts_since_the_cursor_minus_the_lookback(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Cursor 12:05 with a 10-minute lookback: the 12:00 alert is re-read (the inbox
    absorbs it), the 11:00 one is not; pages but the last keep the starting cursor."""
    pages = list(connector.poll("alerts_open",
                                Cursor(position="2024-07-16T12:05:00.000Z")))

    assert _keys(pages) == ["alert:0f5c7a52-4c2e-4f61-9a77-6b0c1d2e3f40:raised",
                            "alert:9c0d2000-aaaa-4bbb-8ccc-000000000001:raised"]
    assert [p.cursor.position for p in pages] == ["2024-07-16T12:05:00.000Z",
                                                  "2024-07-16T13:00:00.000Z"]


def test_the_cursor_never_goes_back(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """A cursor newer than every alert stays where it is."""
    pages = list(connector.poll("alerts_resolved",
                                Cursor(position="2024-08-01T00:00:00.000Z")))

    assert _keys(pages) == []
    assert pages[-1].cursor.position == "2024-08-01T00:00:00.000Z"


def test_the_resolved_stream_follows_resolved_on(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Raised at 12:00, resolved at 14:00: a 13:00 cursor still sees the resolution."""
    pages = list(connector.poll("alerts_resolved",
                                Cursor(position="2024-07-16T13:00:00.000Z")))

    [event] = [e for p in pages for e in p.events]
    assert event.kind is EventKind.ALERT_RESOLVED
    assert event.data["alert"]["category"] == "backup"
    assert pages[-1].cursor.position == "2024-07-16T14:00:00.000Z"


def test_newest_first_stops_at_a_page_wholly_before_the_window(
    datto_api: respx.MockRouter,
) -> None:
    """With ``resolved_order: newest_first`` an old page ends the walk (and the cursor
    still advances on that last page)."""
    # Given two resolved pages: page 0 is older than the window, page 1 would be fetched
    old = load_fixture("alerts_resolved.json")
    old["pageDetails"]["nextPageUrl"] = f"{API}/v2/account/alerts/resolved?page=1&max=100"
    datto_api["resolved"].respond(json=old)
    connector = DattoRMMConnector("datto-test", make_config(resolved_order="newest_first"))
    # When polling from a cursor after every alert
    pages = list(connector.poll("alerts_resolved", Cursor(position="2024-07-20T00:00:00.000Z")))
    # Then one page was read
    assert datto_api["resolved"].call_count == 1
    assert len(pages) == 1 and pages[0].cursor.position == "2024-07-20T00:00:00.000Z"
    connector.close()


def test_configured_sites_poll_the_per_site_endpoints(datto_api: respx.MockRouter) -> None:
    """``sites: [...]`` reads ``/v2/site/{uid}/alerts/open`` instead of the account list."""
    connector = DattoRMMConnector("datto-test", make_config(sites=["site-uid-1"]))

    pages = list(connector.poll("alerts_open", Cursor(position="2024-07-16T00:00:00.000Z")))

    assert datto_api["site_open"].call_count == 1 and datto_api["open"].call_count == 0
    assert _keys(pages) == ["alert:9c0d2000-aaaa-4bbb-8ccc-000000000001:raised"]
    connector.close()


def test_an_unreadable_alert_is_skipped_not_fatal(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """One alert without a timestamp does not stop the others."""
    page = load_fixture("alerts_resolved.json")
    page["alerts"][1]["resolvedOn"] = "garbage"
    page["alerts"][1]["timestamp"] = None
    datto_api["resolved"].respond(json=page)

    pages = list(connector.poll("alerts_resolved", Cursor(position="2024-07-01T00:00:00.000Z")))

    assert _keys(pages) == [f"alert:{BACKUP_RESOLVED}:resolved"]


# -- webhooks ----------------------------------------------------------------------------


def _hook(body: bytes, secret: str | None = SECRET, **kw: object) -> WebhookRequest:
    return WebhookRequest(headers={"content-type": "application/json"}, body=body,
                          path_secret=secret, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("secret", [None, "", "wrong-secret-0123456789", SECRET + "x"])
def test_a_wrong_or_missing_url_secret_is_rejected(
    connector: DattoRMMConnector, secret: str | None
) -> None:
    """The path secret is the only proof a webhook came from Datto."""
    with pytest.raises(WebhookRejected):
        connector.verify(_hook(fixture_bytes("webhook_triggered.json"), secret))


def test_the_secret_may_come_as_a_query_token(connector: DattoRMMConnector) -> None:
    """``?token=<secret>`` works for admins who cannot add a path segment."""
    connector.verify(_hook(b"{}", None, query={"token": SECRET}))


def test_a_source_without_a_webhook_secret_takes_no_webhooks() -> None:
    """No secret configured → every delivery is refused."""
    connector = DattoRMMConnector("datto-test", make_config(webhook_secret=None))

    with pytest.raises(WebhookRejected, match="not configured"):
        connector.verify(_hook(b"{}", SECRET))
    connector.close()


def test_a_webhook_is_re_read_from_the_api_before_anything_acts(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Thin event → GET /v2/alert/{uid} → the API's alert, with its site as the client."""
    # Given a "resolved" webhook for a backup alert
    [thin] = connector.parse(_hook(fixture_bytes("webhook_resolved.json")))
    # When it is enriched
    [full] = connector.enrich(thin)
    # Then the event is Datto's copy, under the same key the poll would use
    assert datto_api["alert"].call_count == 1
    assert full.kind is EventKind.ALERT_RESOLVED
    assert full.dedupe_key == thin.dedupe_key == f"alert:{BACKUP_RESOLVED}:resolved"
    assert full.client is not None and (full.client.id, full.client.type) == ("site-uid-1",
                                                                              "site")
    assert full.data["alert"]["category"] == "backup"
    assert "_thin" not in full.data


def test_a_forged_alert_uid_yields_nothing(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Right URL secret, invented alert: Datto answers 404, so there is no event to act on."""
    forged = b'{"event": "resolved", "alertUid": "deadbeef-0000-4000-8000-000000000000"}'
    datto_api.get(f"{API}/v2/alert/deadbeef-0000-4000-8000-000000000000").respond(404)
    request = _hook(forged)
    connector.verify(request)

    [thin] = connector.parse(request)

    assert connector.enrich(thin) == []


def test_a_claimed_resolution_the_api_does_not_show_is_retried_later(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Body says resolved, API says open: TransientError (Datto's API may lag its webhook;
    a forged claim for a real open alert never ticks)."""
    open_alert = load_fixture("alerts_open_page0.json")["alerts"][0]
    datto_api["alert"].respond(json={**open_alert, "alertUid": BACKUP_RESOLVED})
    [thin] = connector.parse(_hook(fixture_bytes("webhook_resolved.json")))

    with pytest.raises(TransientError, match="not show the alert resolved"):
        connector.enrich(thin)


def test_a_triggered_webhook_for_an_alert_resolved_since_yields_both_facts(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """The raising takes the webhook's key; the resolution follows as a second event."""
    [thin] = connector.parse(_hook(fixture_bytes("webhook_triggered.json")))

    events = connector.enrich(thin)

    assert [(e.kind, e.dedupe_key) for e in events] == [
        (EventKind.ALERT_RAISED, f"alert:{BACKUP_RESOLVED}:raised"),
        (EventKind.ALERT_RESOLVED, f"alert:{BACKUP_RESOLVED}:resolved")]


def test_full_events_pass_through_enrich(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """A polled event is not fetched again."""
    event = connector.alert(BACKUP_RESOLVED)
    calls = datto_api["alert"].call_count

    assert connector.enrich(event) == [event]
    assert datto_api["alert"].call_count == calls


def test_a_transport_failure_while_enriching_is_transient(datto_api: respx.MockRouter) -> None:
    """Datto unreachable: TransientError (the actor retries), never an httpx error."""
    connector = DattoRMMConnector("datto-test", make_config(),
                                  retry=RetryPolicy(sleep=lambda _s: None, max_attempts=2))
    datto_api["alert"].side_effect = httpx.ConnectError("down")
    [thin] = connector.parse(_hook(fixture_bytes("webhook_resolved.json")))

    with pytest.raises(TransientError):
        connector.enrich(thin)
    connector.close()


def test_sites_are_directory_records(
    connector: DattoRMMConnector, datto_api: respx.MockRouter
) -> None:
    """Every site, with the PSA company hint Datto's Autotask integration leaves."""
    sites = connector.sites()

    assert [(s["id"], s["psa_company_id"]) for s in sites] == [("site-uid-1", "29683501"),
                                                               ("site-uid-2", None)]


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"api_url": "https://evil.example.com"}, "not a Datto RMM platform"),
        ({"api_url": "http://merlot-api.centrastage.net"}, "https"),
        ({"api_url": "https://merlot-api.centrastage.net/v2/x"}, "path"),
        ({"webhook_secret": "short"}, "at least 16"),
        ({"sites": ["../x"]}, "site UIDs"),
        ({"requests_per_minute": 0}, "greater than or equal"),
    ],
)
def test_bad_configs_are_refused_without_echoing_values(
    overrides: dict[str, object], problem: str
) -> None:
    """InvalidConfig names the problem; the secret never appears in the message."""
    raw = {"api_url": "https://merlot-api.centrastage.net", "api_key": "K" * 32,
           "api_secret": "TOPSECRET" * 4, **overrides}

    with pytest.raises(InvalidConfig) as info:
        validate_config("datto-rmm", raw)

    assert problem in str(info.value)
    assert "TOPSECRET" not in str(info.value)


def test_a_sandbox_url_needs_allow_any_host() -> None:
    """http://127.0.0.1 is accepted only with ``allow_any_host``."""
    config = make_config(api_url="http://127.0.0.1:8124", allow_any_host=True)

    assert config.api_root == "http://127.0.0.1:8124/api"

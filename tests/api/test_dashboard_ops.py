"""The dashboard's operations pages: the event inbox with trace and replay, dead letters
with retry, and the client directory with unlinked vendor records to link."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import escape

from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.config import ConnectWiseConfig
from hub.core.states import InboxStatus
from hub.services import source_health
from hub.services.sources import Source, SourceSpec
from hub.services.tokens import Role
from hub.store.db import transaction
from hub.store.models import InboxEvent, SourceCursor
from tests.api.conftest import START, Api


def _sign_in(api: Api, role: Role) -> None:
    api.http.cookies.clear()
    response = api.http.get("/", params={"token": api.tokens[role]}, follow_redirects=False)
    assert response.status_code == 303


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match is not None
    return match.group(1)


def _event(api: Api, key: str, status: InboxStatus, **extra: Any) -> int:
    """Store an inbox event directly, as intake would have."""
    with transaction(api.ctx.sessions) as session:
        row = InboxEvent(source="cw-prod", vendor="connectwise", kind="ticket.created",
                         dedupe_key=key, occurred_at=START, received_at=START, via="webhook",
                         data={"ticket": {"summary": f"summary {key}"}}, raw={},
                         status=status.value, attempts=1, **extra)
        session.add(row)
        session.flush()
        return row.id


def _status(api: Api, event_id: int) -> str:
    with api.ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        assert row is not None
        return row.status


def test_operations_pages_need_a_manager(api: Api) -> None:
    """A technician is refused with the API's kind of message; a manager sees the pages."""
    _sign_in(api, Role.TECHNICIAN)
    for path in ("/ops/events", "/ops/dead", "/ops/clients"):
        page = api.http.get(path)
        assert page.status_code == 403, path
        assert str(escape("the operations pages needs the 'manager' role")) in page.text
    _sign_in(api, Role.MANAGER)
    for path in ("/ops/events", "/ops/dead", "/ops/clients"):
        assert api.http.get(path).status_code == 200, path


def test_inbox_filters_by_outcome_and_shows_the_trace(api: Api) -> None:
    """Status filters list each outcome; an event's page shows rules, misses and errors."""
    # Given a failed, an ignored and a done event
    failed = _event(api, "f1", InboxStatus.FAILED, last_error="rule x: unknown playbook",
                    result={"matched": ["leaver-starts-offboarding"],
                            "actions": [{"rule_id": "leaver-starts-offboarding",
                                         "type": "launch", "effect": "error"}],
                            "errors": [{"rule_id": "leaver-starts-offboarding",
                                        "error": "playbook 'nope' does not exist"}],
                            "near_misses": [{"rule_id": "vip-ticket",
                                             "reason": "ticket.priority is 'Low'"}]})
    ignored = _event(api, "i1", InboxStatus.IGNORED)
    _event(api, "d1", InboxStatus.DONE)
    _sign_in(api, Role.MANAGER)
    # When the failed filter is chosen, then only the failed event is listed
    html = api.http.get("/ops/events", params={"status": "failed"}).text
    assert f'href="/ops/events/{failed}"' in html
    assert f'href="/ops/events/{ignored}"' not in html
    assert f'href="/ops/events/{ignored}"' in api.http.get(
        "/ops/events", params={"status": "ignored"}).text
    # And the event's page shows what the rules did
    page = api.http.get(f"/ops/events/{failed}").text
    for text in ("leaver-starts-offboarding", "does not exist", "vip-ticket",
                 "ticket.priority is", "summary f1", "unknown playbook"):
        assert str(escape(text)) in page, text
    # And a manager sees no replay button (replay is an admin's, as in the API)
    assert "/replay" not in page


def test_admin_replays_a_failed_event(api: Api) -> None:
    """Replay sets the event pending and dispatches it, as POST /api/events/{id}/replay."""
    failed = _event(api, "f2", InboxStatus.FAILED, last_error="boom")
    _sign_in(api, Role.ADMIN)
    page = api.http.get(f"/ops/events/{failed}").text
    response = api.http.post(f"/ops/events/{failed}/replay", data={"csrf": _csrf(page)},
                             follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/ops/events/{failed}"
    # the in-process worker processed it again: no rule matches it now
    assert _status(api, failed) in {InboxStatus.PENDING.value, InboxStatus.IGNORED.value}
    # And a manager posting the form is refused with the API's message
    _sign_in(api, Role.MANAGER)
    page = api.http.get(f"/ops/events/{failed}").text
    refused = api.http.post(f"/ops/events/{failed}/replay", data={"csrf": _csrf(page)},
                            follow_redirects=False)
    assert refused.status_code == 403
    assert str(escape("replaying an event needs the 'admin' role")) in refused.text


def test_dead_letters_are_listed_and_retried(api: Api) -> None:
    """A dead event is listed with its error; retry revives it; a live one is refused."""
    dead = _event(api, "x1", InboxStatus.DEAD, last_error="gave up after 10 attempts")
    _sign_in(api, Role.ADMIN)
    page = api.http.get("/ops/dead").text
    assert "gave up after 10 attempts" in page
    assert f'action="/ops/dead/event/{dead}/retry"' in page
    response = api.http.post(f"/ops/dead/event/{dead}/retry", data={"csrf": _csrf(page)},
                             follow_redirects=False)
    assert response.status_code == 303
    assert _status(api, dead) != InboxStatus.DEAD.value
    again = api.http.post(f"/ops/dead/event/{dead}/retry", data={"csrf": _csrf(page)},
                          follow_redirects=False)
    assert again.status_code == 409
    assert f"event {dead} is not a dead letter" in again.text
    # And without the form's token nothing happens
    assert api.http.post(f"/ops/dead/event/{dead}/retry", data={},
                         follow_redirects=False).status_code == 403


def test_unlinked_vendor_record_is_linked_from_the_page(api: Api) -> None:
    """An unlinked company events named is listed and linked to a chosen client."""
    # Given a hub client and an event naming a company no client is linked to
    api.launch(client="acme", client_name="Acme Ltd")
    _event(api, "u1", InboxStatus.FAILED, client_key="19300", client_name="Contoso Dental",
           client_type="company")
    _sign_in(api, Role.MANAGER)
    page = api.http.get("/ops/clients").text
    assert "Contoso Dental" in page and 'name="vendor_id" value="19300"' in page
    # When it is linked to acme
    response = api.http.post("/ops/clients/link", data={
        "csrf": _csrf(page), "client": "acme", "source": "cw-prod", "type": "company",
        "vendor_id": "19300", "vendor_name": "Contoso Dental"}, follow_redirects=False)
    # Then the link is made, as the API shows, and the record is no longer unlinked
    assert response.status_code == 303
    links = api.get("/api/clients/acme").json()["links"]
    assert [(x["source"], x["vendor_id"]) for x in links] == [("cw-prod", "19300")]
    assert 'name="vendor_id" value="19300"' not in api.http.get("/ops/clients").text
    # And linking to a client that does not exist is refused with the service's message
    bad = api.http.post("/ops/clients/link", data={
        "csrf": _csrf(page), "client": "nobody", "source": "cw-prod", "type": "company",
        "vendor_id": "777"}, follow_redirects=False)
    assert bad.status_code == 404
    assert str(escape("client 'nobody' is not in the directory")) in bad.text


def test_api_docs_work_offline(api: Api) -> None:
    """/docs references no other host, and every asset it names is served by the hub."""
    page = api.http.get("/docs")
    assert page.status_code == 200
    html = page.text
    # no absolute URL at all, so no CDN and no external favicon
    assert re.search(r"(src|href)=\"(https?:)?//", html) is None
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert api.http.get(asset).status_code == 200, asset
    init = api.http.get("/static/swagger-init.js").text
    assert "/openapi.json" in html and "SwaggerUIBundle" in init
    assert "validatorUrl: null" in init  # Swagger UI would otherwise call swagger.io
    assert api.http.get("/openapi.json").status_code == 200


def test_sources_page_shows_budget_pause_cursors_and_outcomes(api: Api) -> None:
    """Each source with its request budget, Retry-After pause, cursors and event counts."""
    # Given a ConnectWise source that polled tickets, was paused by the vendor, and delivered
    config = ConnectWiseConfig.model_validate({
        "site": "na.myconnectwise.net", "company_id": "example", "public_key": "pub",
        "private_key": "priv", "client_id": "6f0f3c2e-0000-4000-8000-000000000000"})
    connector = ConnectWiseConnector("cw-prod", config)
    api.rt.sources.items["cw-prod"] = Source("cw-prod", SourceSpec(vendor="connectwise"),
                                             connector)
    try:
        connector.budget.pause(120)
        with transaction(api.ctx.sessions) as session:
            session.add(SourceCursor(source="cw-prod", stream="tickets",
                                     value={"v": 1, "position": "2025-03-03T09:55:00Z"},
                                     updated_at=START))
        _event(api, "s1", InboxStatus.FAILED)
        _event(api, "s2", InboxStatus.DONE)
        _sign_in(api, Role.MANAGER)
        # When the sources page is opened
        page = api.http.get("/ops/sources")
        # Then it shows them
        assert page.status_code == 200
        html = page.text
        for text in ("cw-prod", "ConnectWise PSA", "tickets @", "2025-03-03T09:55:00Z",
                     'href="/ops/events?status=failed">failed</a>: 1', "done</a>: 1",
                     "s-overdue"):
            assert text in html, text
        # And it is a manager's page
        _sign_in(api, Role.TECHNICIAN)
        assert api.http.get("/ops/sources").status_code == 403
    finally:
        connector.close()


def test_sources_page_shows_refused_credentials_and_an_admin_retries(api: Api) -> None:
    """A source whose keys the vendor refused is shown as refused (since, why); an admin's
    "Retry now" lets its jobs call the vendor again; a manager sees no button."""
    # Given a ConnectWise source the vendor refused
    config = ConnectWiseConfig.model_validate({
        "site": "na.myconnectwise.net", "company_id": "example", "public_key": "pub",
        "private_key": "priv", "client_id": "6f0f3c2e-0000-4000-8000-000000000000"})
    connector = ConnectWiseConnector("cw-prod", config)
    api.rt.sources.items["cw-prod"] = Source("cw-prod", SourceSpec(vendor="connectwise",
                                                                   poll={"enabled": False}),
                                             connector, fingerprint="keys-1")
    try:
        source_health.auth_failed(api.ctx.sessions, "cw-prod", "keys-1",
                                  "401 Unauthorized: bad API keys", START)
        # When a manager opens the sources page
        _sign_in(api, Role.MANAGER)
        page = api.http.get("/ops/sources").text
        # Then the refusal shows, without a retry button
        assert "refused" in page and "bad API keys" in page and "polls and notes wait" in page
        assert "/ops/sources/cw-prod/retry" not in page
        # When an admin retries
        _sign_in(api, Role.ADMIN)
        page = api.http.get("/ops/sources").text
        response = api.http.post("/ops/sources/cw-prod/retry", data={"csrf": _csrf(page)},
                                 follow_redirects=False)
        # Then the jobs may try again, and the page says so
        assert response.status_code == 303 and response.headers["location"] == "/ops/sources"
        assert "retrying" in api.http.get("/ops/sources").text
        with api.ctx.sessions() as session:
            assert not source_health.health(session, "cw-prod", "keys-1").holding
        # And once the next job succeeded, a retry is refused with the reason
        assert source_health.succeeded(api.ctx.sessions, "cw-prod") is True
        again = api.http.post("/ops/sources/cw-prod/retry", data={"csrf": _csrf(page)})
        assert again.status_code == 409 and "not marked as refused" in again.text
    finally:
        connector.close()

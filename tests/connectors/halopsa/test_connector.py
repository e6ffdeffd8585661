"""Webhooks as Halo sends them: Basic auth or a secret header, echoes dropped, enrichment."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import respx

from connectors.base import Directory, Linkable, WebhookRejected, WebhookRequest, is_thin
from connectors.halopsa import HaloPSAConnector
from hub.core.events import EventKind

from .conftest import NOW, SECRET, fixture_bytes, load_fixture, make_config


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _request(name: str = "webhook_new_ticket.json", **headers: str) -> WebhookRequest:
    return WebhookRequest(headers=headers, body=fixture_bytes(name))


def test_basic_auth_is_checked_in_constant_time(connector: HaloPSAConnector) -> None:
    """Halo's webhook "Basic" authentication: user msphub, password the secret."""
    connector.verify(WebhookRequest(headers=_basic("msphub", SECRET), body=b"{}"))
    for headers in ({}, _basic("msphub", "wrong-secret-0123456789"), _basic("other", SECRET),
                    {"Authorization": "Basic !!notbase64"}, {"Authorization": f"Bearer {SECRET}"}):
        with pytest.raises(WebhookRejected) as info:
            connector.verify(WebhookRequest(headers=headers, body=b"{}"))
        assert info.value.status == 401


def test_a_secret_header_when_the_admin_chose_one() -> None:
    """webhook_auth: header → the named header must carry the secret; Basic is not enough."""
    with HaloPSAConnector("halo", make_config(webhook_auth="header",
                                              webhook_header="X-Halo-Secret")) as connector:
        connector.verify(WebhookRequest(headers={"X-Halo-Secret": SECRET}, body=b"{}"))
        with pytest.raises(WebhookRejected):
            connector.verify(WebhookRequest(headers=_basic("msphub", SECRET), body=b"{}"))


def test_webhooks_are_refused_when_not_configured() -> None:
    """No webhook_secret: every delivery is refused."""
    with HaloPSAConnector("halo", make_config(webhook_secret=None)) as connector, \
            pytest.raises(WebhookRejected, match="not configured"):
        connector.verify(WebhookRequest(headers=_basic("msphub", SECRET), body=b"{}"))


def test_parse_drops_echoes_of_our_own_actions(connector: HaloPSAConnector) -> None:
    """A delivery about our note (marker) yields nothing; others one thin event each."""
    assert connector.parse(_request("webhook_action_echo.json")) == []
    [event] = connector.parse(_request())
    assert is_thin(event) and event.subject is not None and event.subject.id == "4821"
    # in a batch, the action of our API agent (learned or configured) is dropped
    with HaloPSAConnector("halo", make_config(api_agent_id=7)) as ours:
        events = ours.parse(_request("webhook_batch.json"))
    assert [e.subject.id for e in events if e.subject] == ["4790"]


def test_team_filter_applies_to_webhooks(connector: HaloPSAConnector) -> None:
    """teams: [HR] → a Service Desk ticket's webhook is dropped at once."""
    with HaloPSAConnector("halo", make_config(teams=["HR"])) as filtered:
        assert filtered.parse(_request()) == []
        # a ticket object without its team is decided after the read-back
        assert len(filtered.parse(WebhookRequest(headers={}, body=b'{"ticket": {"id": 5}}'))) == 1


def test_enrich_reads_the_ticket_back(halo_api: respx.MockRouter) -> None:
    """The thin event becomes the ticket's own events; a recent ticket is created."""
    with HaloPSAConnector("halo", make_config(), clock=lambda: NOW) as connector:
        [thin] = connector.parse(_request())
        events = connector.enrich(thin)

    assert [e.kind for e in events] == [EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED]
    assert events[0].data["ticket"]["custom_fields"]["Leaver Name"] == "John Smith"
    assert dict(halo_api["ticket"].calls[0].request.url.params) == {"includedetails": "true"}


def test_enrich_of_an_old_ticket_is_an_update_and_a_gone_one_nothing(
    halo_api: respx.MockRouter,
) -> None:
    """Logged more than created_window before its latest change (Halo's clock; the hub's,
    two days off here, plays no part) → updated only; 404 → []."""
    later = datetime(2024, 5, 3, 9, 0, tzinfo=UTC)
    old = {**load_fixture("ticket_4821.json"), "last_update": "2024-05-01T13:30:00"}
    with HaloPSAConnector("halo", make_config(), clock=lambda: later) as connector:
        [thin] = connector.parse(_request())
        assert [e.kind for e in connector.enrich(thin)] == [EventKind.TICKET_CREATED,
                                                            EventKind.TICKET_UPDATED]
        halo_api["ticket"].respond(json=old)
        assert [e.kind for e in connector.enrich(thin)] == [EventKind.TICKET_UPDATED]
        halo_api["ticket"].respond(404)
        assert connector.enrich(thin) == []
        full = connector.enrich(thin.model_copy(update={"data": {"ticket": {}}}))
        assert len(full) == 1 and not is_thin(full[0])


def test_ticket_url_points_at_the_agent_ui(connector: HaloPSAConnector) -> None:
    """The dashboard links the ticket in Halo."""
    assert connector.ticket_url("4821") == "https://acme.halopsa.com/ticket?id=4821"
    assert connector.ticket_url("x") is None


def test_halo_clients_are_listed_for_link_suggestions(
    connector: HaloPSAConnector, halo_api: respx.MockRouter
) -> None:
    """Directory: every client as a ``customer`` record (the type its events name)."""
    assert isinstance(connector, Directory)

    found = connector.linkables()

    assert found == [Linkable(type="customer", id="12", name="Acme Ltd"),
                     Linkable(type="customer", id="15", name="Globex")]
    assert dict(halo_api["clients"].calls[0].request.url.params) == {
        "order": "id", "orderdesc": "false", "pageinate": "true", "page_size": "2",
        "page_no": "1"}

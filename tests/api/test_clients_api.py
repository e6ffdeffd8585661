"""/api/clients: the client directory over HTTP, with the roles that may read and change it."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.core.events import ClientRef, Event, EventKind
from hub.services.inbox import add_events
from hub.services.tokens import Role
from hub.store.db import transaction
from tests.api.conftest import Api


def test_managers_create_and_link_clients_viewers_read_them(api: Api) -> None:
    """Create, link, read, list by tag, unlink — with the audit trail's actor."""
    # When a manager creates acme and links its PSA company and RMM site
    created = api.post("/api/clients", Role.MANAGER, json={
        "key": "acme", "name": "Acme Corp", "calendar": "default", "tags": ["managed"]})
    assert created.status_code == 200, created.text
    for link in ({"source": "cw-prod", "vendor_id": "ACME"},
                 {"source": "datto", "type": "site", "vendor_id": "S-1", "vendor_name": "HQ"}):
        answer = api.post("/api/clients/acme/links", Role.MANAGER, json=link)
        assert answer.status_code == 201, answer.text
    # Then a viewer sees it, with both links, in the list and by key
    one = api.get("/api/clients/acme").json()
    assert (one["name"], one["tags"], one["provisional"]) == ("Acme Corp", ["managed"], False)
    assert [(x["source"], x["type"], x["vendor_id"], x["created_by"]) for x in one["links"]] == [
        ("cw-prod", "company", "ACME", "user:max"), ("datto", "site", "S-1", "user:max")]
    assert [c["key"] for c in api.get("/api/clients", params={"tag": "managed"}).json()] == [
        "acme"]
    assert api.get("/api/clients", params={"tag": "other"}).json() == []
    # When the site is unlinked, then only the company is left
    gone = api.http.delete("/api/clients/acme/links/datto/site/S-1", headers=api.auth(Role.MANAGER))
    assert gone.status_code == 204
    assert len(api.get("/api/clients/acme").json()["links"]) == 1
    again = api.http.delete("/api/clients/acme/links/datto/site/S-1",
                            headers=api.auth(Role.MANAGER))
    assert again.status_code == 404


def test_clients_refusals(api: Api) -> None:
    """Technicians cannot change the directory; a record belongs to one client; bad input."""
    assert api.post("/api/clients", Role.TECHNICIAN, json={"key": "acme"}).status_code == 403
    assert api.post("/api/clients", Role.MANAGER, json={"key": "acme"}).status_code == 200
    assert api.post("/api/clients", Role.MANAGER, json={"key": "globex"}).status_code == 200
    link = {"source": "cw-prod", "vendor_id": "ACME"}
    assert api.post("/api/clients/acme/links", Role.MANAGER, json=link).status_code == 201
    clash = api.post("/api/clients/globex/links", Role.MANAGER, json=link)
    assert clash.status_code == 409
    assert "already linked to client 'acme'" in clash.json()["detail"]
    assert api.get("/api/clients/nobody").status_code == 404
    assert api.post("/api/clients/nobody/links", Role.MANAGER, json=link).status_code == 404
    bad_type = api.post("/api/clients/acme/links", Role.MANAGER,
                        json={**link, "type": "shop"})
    assert bad_type.status_code == 422
    bad_key = api.post("/api/clients", Role.MANAGER, json={"key": "Acme Corp"})
    assert bad_key.status_code == 422
    calendar = api.post("/api/clients", Role.MANAGER, json={"key": "acme", "calendar": "mars"})
    assert calendar.status_code == 422 and calendar.json()["error"] == "unknown_calendar"
    assert api.get("/api/clients", role=None).status_code == 401


def test_unlinked_vendor_records_are_listed(api: Api) -> None:
    """Companies events named that no client is linked to, with their event counts."""
    when = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    with transaction(api.ctx.sessions) as s:
        add_events(s, [Event(source="cw-prod", vendor="connectwise",
                             kind=EventKind.TICKET_CREATED, dedupe_key=f"t:{i}",
                             occurred_at=when, client=ClientRef(id="GLOBEX", name="Globex"))
                       for i in range(3)], via="webhook", now=when)
    [item] = api.get("/api/clients/unlinked").json()
    assert (item["source"], item["type"], item["vendor_id"], item["vendor_name"],
            item["events"]) == ("cw-prod", "company", "GLOBEX", "Globex", 3)

"""End to end in a real headless Chromium: sign in, filter the portfolio, complete a step
and see it in the audit trail, see a locked step refused, replay a failed event, link an
unlinked vendor record; screenshots of each page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.core.states import InboxStatus
from hub.services import users
from hub.services.tokens import Role
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.api.conftest import Api

PASSWORD = "correct horse battery staple"
START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _user(api: Api, name: str, role: Role) -> None:
    with transaction(api.ctx.sessions) as session:
        users.add_user(session, name, role, PASSWORD, now=api.clock())


def _sign_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/")


def _failed_event(api: Api) -> int:
    with transaction(api.ctx.sessions) as session:
        row = InboxEvent(source="cw-prod", vendor="connectwise", kind="ticket.created",
                         dedupe_key="b1", occurred_at=START, received_at=START, via="webhook",
                         data={"ticket": {"summary": "New laptop"}}, raw={},
                         status=InboxStatus.FAILED.value, attempts=3,
                         last_error="rule laptop-order: playbook 'hardware' does not exist",
                         client_key="19300", client_name="Contoso Dental",
                         client_type="company",
                         result={"matched": ["laptop-order"], "actions": [],
                                 "errors": [{"rule_id": "laptop-order",
                                             "error": "playbook 'hardware' does not exist"}],
                                 "near_misses": []})
        session.add(row)
        session.flush()
        return row.id


def test_technician_filters_completes_and_is_refused_a_locked_step(
        served: tuple[Api, str], browser_page: Any, shots: Path) -> None:
    """Sign in, filter by client, complete a step with evidence, see the audit; locked refused."""
    api, base = served
    page = browser_page
    # Given two clients' runs and a technician user (alice is ACME's service desk)
    acme = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.launch(client="19300", client_name="Contoso Dental")
    _user(api, "alice", Role.TECHNICIAN)
    # When she signs in and filters the portfolio to ACME
    _sign_in(page, base, "alice")
    assert page.locator("a.run-title").count() == 2
    page.screenshot(path=str(shots / "portfolio.png"), full_page=True)
    page.locator("form.filters select[name=client]").select_option("ACME")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**client=ACME**")
    # Then only ACME's run is listed
    assert page.locator("a.run-title").count() == 1
    # When she opens her work and completes the first step in place with evidence
    page.goto(f"{base}/work")
    page.screenshot(path=str(shots / "my-work.png"), full_page=True)
    row = page.locator(f"#w-{acme}-confirm-leaver")
    row.get_by_placeholder("Evidence (link, ticket, reference)").fill("Called HR back")
    row.get_by_role("button", name="Done").click()
    page.wait_for_url(f"{base}/work")
    # Then the run page's audit trail shows it
    page.goto(f"{base}/runs/{acme}")
    audit = page.locator("table.audit")
    assert "step done" in audit.inner_text()
    assert "Called HR back" in page.locator("table.steps").inner_text()
    page.screenshot(path=str(shots / "run.png"), full_page=True)
    # When she tries to complete a step that is still locked
    locked = page.locator("#step-revoke-sessions")
    locked.get_by_text("Complete").click()
    locked.get_by_role("button", name="Mark done").click()
    # Then it is refused with the reason the API gives
    alert = page.get_by_role("alert")
    assert "is locked until" in alert.inner_text()


def test_admin_replays_a_failed_event_and_links_a_client(
        served: tuple[Api, str], browser_page: Any, shots: Path) -> None:
    """The event inbox's failed filter, the event's trace, replay; link an unlinked record."""
    api, base = served
    page = browser_page
    # Given a failed event naming a company no client is linked to, and an admin user
    event_id = _failed_event(api)
    api.launch(client="contoso", client_name="Contoso Dental")
    _user(api, "ada", Role.ADMIN)
    _sign_in(page, base, "ada")
    # When she filters the inbox to failed events and opens the event
    page.goto(f"{base}/ops/events")
    page.get_by_role("link", name="Failed").click()
    page.wait_for_url("**status=failed")
    page.screenshot(path=str(shots / "events.png"), full_page=True)
    page.get_by_role("link", name=str(event_id), exact=True).click()
    assert "does not exist" in page.inner_text("main")
    # And replays it
    page.get_by_role("button", name="Replay through the current rules").click()
    page.wait_for_url(f"{base}/ops/events/{event_id}")
    with api.ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        assert row is not None and row.status != InboxStatus.FAILED.value
    # When she links the unlinked Contoso company to the contoso client
    page.goto(f"{base}/ops/clients")
    page.get_by_label("Client for Contoso Dental").select_option("contoso")
    page.get_by_role("button", name="Link", exact=True).click()
    page.wait_for_url(f"{base}/ops/clients")
    # Then the link shows on the client and the record is no longer unlinked
    assert "Every vendor record events named is linked" in page.inner_text("main")
    assert "19300" in page.locator("table").last.inner_text()


def test_manager_shares_a_record_the_client_opens(
        served: tuple[Api, str], browser_page: Any, shots: Path) -> None:
    """A share link opens that run's record without sign-in; an altered or revoked one not."""
    api, base = served
    page = browser_page
    # Given a run with a finished step and a manager user
    run_id = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.launch(client="BETA", client_name="Beta Builders")
    api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
             {"evidence": "Called HR back"})
    _user(api, "max2", Role.MANAGER)
    _sign_in(page, base, "max2")
    # When the manager creates a link from the run's record
    page.goto(f"{base}/runs/{run_id}")
    page.get_by_role("link", name="Completion record").click()
    page.get_by_role("button", name="Create link").click()
    url = page.locator("code.share-url").inner_text()
    # Then a browser without the manager's cookies sees that run's record only
    page.context.clear_cookies()
    page.goto(url)
    text = page.inner_text("body")
    assert "Acme Ltd" in text and "Called HR back" in text and "Beta Builders" not in text
    page.screenshot(path=str(shots / "shared-record.png"), full_page=True)
    # And an altered link is refused
    page.goto(url[:-1] + ("A" if url[-1] != "A" else "B"))
    assert "not valid" in page.inner_text("body")
    # When the manager revokes it, then the link is refused
    _sign_in(page, base, "max2")
    page.goto(f"{base}/runs/{run_id}/record")
    page.get_by_role("button", name="Revoke").click()
    page.context.clear_cookies()
    page.goto(url)
    assert "revoked" in page.inner_text("body")

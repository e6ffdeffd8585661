"""In a real headless Chromium: a technician fills a step's evidence form on the run page
(a choice, text and a 'confirmed' box), and a second service manager approves the sign-off
from My work; screenshots of both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.services import users
from hub.services.tokens import Role
from hub.store.db import transaction
from tests.api.conftest import Api
from tests.api.test_approvals import SIGNOFF, _to_mailbox, _work_until_signoff

PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _user(api: Api, name: str, role: Role) -> None:
    with transaction(api.ctx.sessions) as session:
        users.add_user(session, name, role, PASSWORD, now=api.clock())


def _sign_in(page: Any, base: str, name: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{base}/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/")


def test_evidence_form_then_sign_off_from_my_work(served: tuple[Api, str], browser_page: Any,
                                                  shots: Path) -> None:
    """alice completes the mailbox step through its form; max approves the sign-off."""
    api, base = served
    page = browser_page
    _user(api, "alice", Role.TECHNICIAN)
    _user(api, "max", Role.MANAGER)
    # Given an offboarding whose open step is the mailbox conversion
    run_id = _to_mailbox(api)
    # When alice fills its evidence form on the run page
    _sign_in(page, base, "alice")
    page.goto(f"{base}/runs/{run_id}")
    cell = page.locator("#step-convert-mailbox")
    cell.get_by_text("Complete").click()
    cell.get_by_label("The mailbox is now").select_option("shared mailbox")
    cell.get_by_label("Full Access granted to (name or email)").fill("Pat Manager")
    page.screenshot(path=str(shots / "evidence-form.png"), full_page=True)
    # (the browser itself holds the form back while the confirmation is unticked)
    cell.get_by_role("button", name="Mark done").click()
    steps = {s["step_id"]: s for s in api.get(f"/api/runs/{run_id}").json()["steps"]}
    assert steps["convert-mailbox"]["status"] == "open"
    cell.get_by_label("I converted the mailbox before removing the licence").check()
    cell.get_by_role("button", name="Mark done").click()
    page.wait_for_url(f"{base}/runs/{run_id}")
    # Then the step shows the form's values as its evidence
    assert "The mailbox is now: shared mailbox" in page.locator("table.steps").inner_text()
    # Given the rest worked up to the sign-off
    _work_until_signoff(api, run_id)
    # When alice looks at the sign-off, she is told why she may not approve
    page.goto(f"{base}/runs/{run_id}")
    assert "four-eyes" in page.locator(f"#step-{SIGNOFF}").inner_text()
    # When max opens his work and approves it there
    _sign_in(page, base, "max")
    page.goto(f"{base}/work")
    row = page.locator(f"#a-{run_id}-{SIGNOFF}")
    assert "Service manager signs off the access removal" in row.inner_text()
    page.screenshot(path=str(shots / "sign-offs.png"), full_page=True)
    row.get_by_placeholder("Comment").fill("checked the sign-in logs")
    row.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{base}/work")
    # Then it is no longer waiting, and the run page shows who approved
    assert "No sign-off is waiting for you." in page.content()
    page.goto(f"{base}/runs/{run_id}")
    assert "step approved" in page.locator("table.audit").inner_text()

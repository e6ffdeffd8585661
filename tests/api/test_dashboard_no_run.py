"""The dashboard's event inbox shows an alert that found no run to tick, in the list and
on the event's page."""

from __future__ import annotations

import re

from hub.core.states import InboxStatus
from hub.services.actions import NO_RUN_TO_TICK
from hub.services.tokens import Role
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.api.conftest import START, Api


def _alert(api: Api, key: str, action: dict[str, object]) -> int:
    """A processed alert event with one stored action, as the pipeline leaves it."""
    with transaction(api.ctx.sessions) as session:
        row = InboxEvent(source="datto", vendor="datto-rmm", kind="alert.resolved",
                         dedupe_key=key, occurred_at=START, received_at=START, via="poll",
                         data={}, raw={}, status=InboxStatus.DONE.value, attempts=1,
                         hub_client="acme",
                         result={"matched": ["backup-verifies"], "errors": [],
                                 "near_misses": [], "actions": [action]})
        session.add(row)
        session.flush()
        return row.id


def test_the_inbox_marks_no_run_to_tick(api: Api) -> None:
    """The list flags the event whose tick found no run; the ticked one is not flagged."""
    lonely = _alert(api, "alert:1:resolved", {
        "type": "tick", "rule_id": "backup-verifies", "effect": NO_RUN_TO_TICK,
        "client": "acme", "step": "verify-backups", "playbooks": ["client-onboarding"],
        "active_runs_without_step": [],
        "reason": "client 'acme' has no active run of client-onboarding"})
    ticked = _alert(api, "alert:2:resolved", {"type": "tick", "rule_id": "backup-verifies",
                                              "effect": "ticked", "runs": []})
    api.http.cookies.clear()
    signed_in = api.http.get("/", params={"token": api.tokens[Role.MANAGER]},
                             follow_redirects=False)
    assert signed_in.status_code == 303
    html = api.http.get("/ops/events").text
    rows = {int(m[1]): m[2] for m in re.finditer(
        r'<a href="/ops/events/(\d+)">\d+</a>(.*?)</tr>', html, re.S)}
    assert "no run to tick" in rows[lonely]
    assert "no run to tick" not in rows[ticked]
    page = api.http.get(f"/ops/events/{lonely}").text
    assert NO_RUN_TO_TICK in page and "has no active run of client-onboarding" in page

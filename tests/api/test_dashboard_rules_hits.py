"""Per-rule hit counts on the rules page: matched, failed and near-miss events per rule,
from the results stored on the inbox events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.api.dashboard.rules import rule_hits
from hub.core.states import InboxStatus
from hub.services.tokens import Role
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.api.conftest import START, Api
from tests.api.test_dashboard_rules import RULES

LEAVER, VIP = "leaver-ticket-starts-offboarding", "vip-ticket-comment"


def _stored(api: Api, key: str, result: dict[str, Any] | None, status: InboxStatus) -> None:
    row = InboxEvent(source="cw-prod", vendor="connectwise", kind="ticket.created",
                     dedupe_key=key, occurred_at=START, received_at=START, via="webhook",
                     data={}, raw={}, status=status.value, attempts=1 if result else 0)
    if result is not None:  # a pending event has no result column value yet (SQL NULL)
        row.result = result
    with transaction(api.ctx.sessions) as session:
        session.add(row)


def _result(matched: list[str], errors: Sequence[str] = (),
            near: Sequence[str] = ()) -> dict[str, Any]:
    return {"matched": matched, "actions": [],
            "errors": [{"rule_id": r, "error": "playbook 'x' does not exist"} for r in errors],
            "near_misses": [{"rule_id": r, "reason": "ticket.type is not Leaver"} for r in near]}


def _row(html: str, rule: str) -> list[str]:
    row = html.split(f"<code>{rule}</code>")[1].split("</tr>")[0]
    return [cell.split(">", 1)[1].split("</td>")[0]
            for cell in row.split('<td class="num')[1:]]


def test_matched_failed_and_near_miss_counts_per_rule(
        make_api: Callable[..., Api], tmp_path: Path) -> None:
    """A failing rule counts once per event however many of its actions failed; pending
    events (no result yet) count nowhere; the failed count links to the failed events."""
    # Given the two rules, and events they matched, failed on or nearly matched
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "tickets.yaml").write_text(RULES, encoding="utf-8")
    api = make_api()
    _stored(api, "ok-1", _result([LEAVER], near=[VIP]), InboxStatus.DONE)
    _stored(api, "ok-2", _result([LEAVER, VIP]), InboxStatus.DONE)
    _stored(api, "bad-1", _result([LEAVER], errors=[LEAVER, LEAVER]), InboxStatus.FAILED)
    _stored(api, "bad-2", _result([VIP, LEAVER], errors=[VIP]), InboxStatus.FAILED)
    _stored(api, "miss", _result([], near=[VIP, LEAVER]), InboxStatus.IGNORED)
    _stored(api, "pending", None, InboxStatus.PENDING)
    # When the counts are taken
    with api.ctx.sessions() as session:
        hits = rule_hits(session)
        newest_two = rule_hits(session, limit=2)
    # Then each rule has its matched, failed and near-miss events
    assert (hits.matched[LEAVER], hits.failed[LEAVER], hits.near[LEAVER]) == (4, 1, 1)
    assert (hits.matched[VIP], hits.failed[VIP], hits.near[VIP]) == (2, 1, 2)
    # And a limit counts the newest events only ("miss" and "bad-2"; pending has no result)
    assert (newest_two.matched[LEAVER], newest_two.failed[VIP]) == (1, 1)
    # And the page shows them in the Matched, Failed and Near misses columns
    html = api.http.get("/ops/rules", headers=api.auth(Role.MANAGER)).text
    assert "<th scope=\"col\">Failed</th>" in html
    assert _row(html, LEAVER) == ["4", '<a href="/ops/events?status=failed">1</a>', "1"]
    assert _row(html, VIP) == ["2", '<a href="/ops/events?status=failed">1</a>', "2"]

"""Operations: the live rules with hit counts, playbooks, and whether the files validate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hub.core.states import InboxStatus
from hub.services.tokens import Role
from hub.store.db import transaction
from hub.store.models import InboxEvent
from tests.api.conftest import START, Api

RULES = """\
rules:
  - id: leaver-ticket-starts-offboarding
    on: ticket.created
    from: connectwise
    if:
      ticket.type: Leaver
    comment:
      text: "leaver ticket {{ ticket.id }}"
  - id: vip-ticket-comment
    on: ticket.created
    if:
      ticket.priority: VIP
    comment:
      text: "vip"
"""


def _processed(api: Api, key: str, matched: list[str], near: list[str]) -> None:
    with transaction(api.ctx.sessions) as session:
        session.add(InboxEvent(
            source="cw-prod", vendor="connectwise", kind="ticket.created", dedupe_key=key,
            occurred_at=START, received_at=START, via="webhook", data={}, raw={},
            status=InboxStatus.DONE.value if matched else InboxStatus.IGNORED.value,
            attempts=1, result={"matched": matched, "actions": [], "errors": [],
                                "near_misses": [{"rule_id": r, "reason": "x"} for r in near]}))


def test_rules_page_counts_hits_and_reports_a_broken_file(
        make_api: Callable[..., Api], tmp_path: Path) -> None:
    """Each live rule with matched / near-miss counts; a broken edit on disk is reported."""
    # Given a mapping file with two rules, and events the rules matched or nearly matched
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "tickets.yaml").write_text(RULES, encoding="utf-8")
    api = make_api()
    _processed(api, "e1", ["leaver-ticket-starts-offboarding"], ["vip-ticket-comment"])
    _processed(api, "e2", ["leaver-ticket-starts-offboarding"], [])
    _processed(api, "e3", [], ["vip-ticket-comment"])
    headers = api.auth(Role.MANAGER)
    # When a manager opens the page
    page = api.http.get("/ops/rules", headers=headers)
    # Then both rules are listed with their counts, and the files validate
    assert page.status_code == 200, page.text
    html = page.text
    assert "The mapping files on disk validate" in html
    assert "The playbook files on disk validate" in html
    row = html.split("<code>leaver-ticket-starts-offboarding</code>")[1].split("</tr>")[0]
    assert '<td class="num">2</td>' in row and '<td class="num">0</td>' in row
    vip = html.split("<code>vip-ticket-comment</code>")[1].split("</tr>")[0]
    assert vip.count('<td class="num">') == 3 and '<td class="num">2</td>' in vip
    assert "Leaver (user offboarding)" in html  # the playbooks
    # When the file on disk is broken, then the page says so and the live rules stay
    (mappings / "tickets.yaml").write_text("rules:\n  - id: broken\n    on: nope\n",
                                           encoding="utf-8")
    broken = api.http.get("/ops/rules", headers=headers).text
    assert "do not validate" in broken and "tickets.yaml" in broken
    assert "<code>leaver-ticket-starts-offboarding</code>" in broken  # last good set
    # And a technician may not see it
    assert api.http.get("/ops/rules", headers=api.auth(Role.TECHNICIAN)).status_code == 403

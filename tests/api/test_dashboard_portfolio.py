"""The dashboard's portfolio: every run across every client, filtered, sorted, counted."""

from __future__ import annotations

import re

from hub.api.dashboard.portfolio_query import PortfolioFilter, Sort, load
from hub.services.tokens import Role
from hub.store.db import transaction
from tests.api.conftest import Api


def _page(api: Api, **params: str) -> str:
    response = api.http.get("/", params=params, headers=api.auth(Role.VIEWER))
    assert response.status_code == 200, response.text
    return response.text


def _run_ids(html: str) -> list[int]:
    """Run ids in the order the table lists them."""
    return [int(m) for m in re.findall(r'class="run-title" href="/runs/(\d+)"', html)]


def _tag(api: Api, key: str, *tags: str) -> None:
    with transaction(api.ctx.sessions) as session:
        api.ctx.clients.save(session, key, tags=list(tags), by="user:test")


def test_portfolio_lists_active_runs_with_progress_and_counts(api: Api) -> None:
    """Active runs by default, with progress, the step each is at, and counts per client."""
    # Given two runs for ACME, one for Contoso, and a cancelled run for Beta
    acme = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.launch(client="ACME", client_name="Acme Ltd", inputs={
        "leaver_name": "John Roe", "last_day": "2025-03-10"})
    api.launch(client="19300", client_name="Contoso Dental")
    cancelled = api.launch(client="BETA", client_name="Beta Builders")["id"]
    api.post(f"/api/runs/{cancelled}/cancel", Role.MANAGER, {})
    api.post(f"/api/runs/{acme}/steps/confirm-leaver/complete", Role.TECHNICIAN, {})
    api.clock.advance(hours=5)
    # When the portfolio is opened
    html = _page(api)
    # Then the active runs are listed, the cancelled one is not
    ids = _run_ids(html)
    assert acme in ids and cancelled not in ids and len(ids) == 3
    assert "Acme Ltd" in html and "Contoso Dental" in html
    assert "Beta Builders" not in html
    # And each shows its progress and the step it is at, with who has it
    assert "1/18" in html and "0/18" in html  # 17 steps and the access-removal sign-off
    assert "Block sign-in" in html
    # And the client list counts runs per client
    assert re.search(r"Acme Ltd</a>\s*<span class=\"count\">2</span>", html)
    assert re.search(r"Contoso Dental</a>\s*<span class=\"count\">1</span>", html)
    # And late runs are flagged
    assert "has-late" in html and "overdue" in html


def test_completed_and_cancelled_runs_are_a_filter_away(api: Api) -> None:
    """status=cancelled / completed / all shows those runs; an unknown status means active."""
    active = api.launch(client="ACME")["id"]
    cancelled = api.launch(client="BETA")["id"]
    api.post(f"/api/runs/{cancelled}/cancel", Role.MANAGER, {"reason": "client left"})
    assert _run_ids(_page(api, status="cancelled")) == [cancelled]
    assert _run_ids(_page(api, status="completed")) == []
    assert sorted(_run_ids(_page(api, status="all"))) == [active, cancelled]
    assert _run_ids(_page(api, status="bogus")) == [active]


def test_filters_by_client_tag_playbook_technician_and_overdue(api: Api) -> None:
    """Each filter narrows the list; counts per client follow the other filters."""
    # Given runs for three clients, two of them tagged, and one onboarding run
    acme = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    contoso = api.launch(client="19300", client_name="Contoso Dental")["id"]
    beta = api.launch(client="BETA", client_name="Beta Builders")["id"]
    _tag(api, "ACME", "managed")
    _tag(api, "BETA", "managed", "co-managed")
    # Then the client filter keeps one client's runs
    assert _run_ids(_page(api, client="ACME")) == [acme]
    # And the tag filter keeps the tagged clients' runs
    assert sorted(_run_ids(_page(api, tag="managed"))) == [acme, beta]
    assert _run_ids(_page(api, tag="co-managed")) == [beta]
    assert _run_ids(_page(api, tag="nobody-has-it")) == []
    # And the playbook filter
    assert _run_ids(_page(api, playbook="client-onboarding")) == []
    assert "No active runs match these filters" in _page(api, playbook="client-onboarding")
    # And the technician filter: Contoso's service desk is bob, ACME's and Beta's alice
    assert contoso not in _run_ids(_page(api, technician="alice"))
    assert acme in _run_ids(_page(api, technician="alice"))
    assert _run_ids(_page(api, technician="bob")) == [contoso]
    assert _run_ids(_page(api, assignee="bob")) == [contoso]  # the old parameter name
    # And overdue: nothing is late at launch; hours later every run is
    assert _run_ids(_page(api, overdue="true")) == []
    api.clock.advance(days=2)
    assert sorted(_run_ids(_page(api, overdue="true"))) == sorted([acme, contoso, beta])


def test_sorted_by_due_date_and_by_age(api: Api) -> None:
    """sort=age lists the oldest launch first; sort=due the soonest due step first."""
    # Given three runs launched an hour apart; the middle one's first step is done
    first = api.launch(client="A")["id"]
    api.clock.advance(hours=1)
    second = api.launch(client="B")["id"]
    api.clock.advance(hours=1)
    third = api.launch(client="C")["id"]
    # Then age puts the oldest first and newest the reverse
    assert _run_ids(_page(api, sort="age")) == [first, second, third]
    assert _run_ids(_page(api, sort="newest")) == [third, second, first]
    # And due follows the next unfinished step's due time (earlier launch, earlier due)
    assert _run_ids(_page(api, sort="due")) == [first, second, third]
    # When the first run's early steps are finished, its next due date moves later
    for step in ("confirm-leaver", "disable-sign-in"):
        done = api.post(f"/api/runs/{first}/steps/{step}/complete", Role.TECHNICIAN, {})
        assert done.status_code == 200, done.text
    order = _run_ids(_page(api, sort="due"))
    assert order.index(first) > order.index(second)


def test_live_region_and_fragment(api: Api) -> None:
    """The page refreshes a fragment (same filters) with a small script served by the hub."""
    api.launch(client="ACME", client_name="Acme Ltd")
    html = _page(api, client="ACME")
    match = re.search(r'data-live-url="([^"]+)"', html)
    assert match is not None
    url = match.group(1).replace("&amp;", "&")
    assert "client=ACME" in url and "fragment=true" in url
    assert '<script src="/static/live.js"' in html
    fragment = api.http.get(url, headers=api.auth(Role.VIEWER))
    assert fragment.status_code == 200
    assert "Acme Ltd" in fragment.text and "<html" not in fragment.text
    script = api.http.get("/static/live.js")
    assert script.status_code == 200 and "data-live-url" in script.text
    # And the page's scripts come from the hub only (CSP)
    csp = api.http.get("/", headers=api.auth(Role.VIEWER)).headers["content-security-policy"]
    assert "script-src 'self'" in csp


def test_pages_of_runs(api: Api) -> None:
    """More runs than a page holds: the last page holds the rest, the total counts all."""
    # Given five active runs and pages of two
    for n in range(5):
        api.launch(client=f"C{n}")
    # When the third page is loaded
    with api.ctx.sessions() as session:
        flt = PortfolioFilter(sort=Sort.AGE, page=3)
        page3 = load(session, flt, api.clock(), page_size=2)
    # Then it holds the fifth run, and the total and counts cover all five
    assert page3.total == 5
    assert [r.client for r in page3.rows] == ["C4"]
    assert sum(c.runs for c in page3.clients) == 5

"""The portfolio: every run across every client, filtered, sorted, counted, kept live."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.auth import Hub
from hub.api.dashboard.portfolio_query import (
    PAGE_SIZE,
    PortfolioFilter,
    Sort,
    StatusChoice,
    load,
)
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import csrf_token, viewer
from hub.api.params import AssigneeFilter, ClientFilter, PlaybookFilter

router = APIRouter(include_in_schema=False)
REFRESH_SECONDS = 15

TagFilter = Annotated[str | None, Query(max_length=100)]
Choice = Annotated[str | None, Query(max_length=20)]
E = TypeVar("E", Sort, StatusChoice)


def _choice(kind: type[E], value: str | None, default: E) -> E:
    """A select's value, or the default for anything else (a stale bookmark, a typo)."""
    try:
        return kind(value) if value else default
    except ValueError:
        return default


@router.get("/", response_class=HTMLResponse)
def portfolio(
    request: Request,
    ctx: Hub,
    client: ClientFilter = None,
    tag: TagFilter = None,
    playbook: PlaybookFilter = None,
    technician: AssigneeFilter = None,
    assignee: AssigneeFilter = None,  # the overview's old name for the same filter
    status: Choice = None,
    sort: Choice = None,
    overdue: Annotated[bool, Query()] = False,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    fragment: Annotated[bool, Query()] = False,
) -> Response:
    """Runs across every client: active by default, the rest a filter away."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    flt = PortfolioFilter(
        status=_choice(StatusChoice, status, StatusChoice.ACTIVE), client=client or None,
        tag=tag or None, playbook=playbook or None,
        technician=(technician or assignee) or None, overdue=overdue,
        sort=_choice(Sort, sort, Sort.DUE), page=page)
    now = ctx.clock()
    with ctx.sessions() as session:
        data = load(session, flt, now)
    query = {k: v for k, v in {
        "status": flt.status.value, "client": flt.client or "", "tag": flt.tag or "",
        "playbook": flt.playbook or "", "technician": flt.technician or "",
        "overdue": "true" if flt.overdue else "", "sort": flt.sort.value}.items() if v}
    pages = max((data.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    context: dict[str, Any] = {
        "who": who, "now": now, "data": data, "flt": flt, "pages": pages,
        "names": {m.id: m.name for m in ctx.team.members},
        "query": urlencode(query),
        "page_link": lambda n: "/?" + urlencode({**query, "page": n}),
        "filtered": any((flt.client, flt.tag, flt.playbook, flt.technician, flt.overdue)),
        "csrf": csrf_token(request),
    }
    if fragment:
        return render("_portfolio_body.html", **context)
    members = [(m.id, m.name) for m in ctx.team.members]
    playbooks = sorted(((p.id, p.title) for p in ctx.playbooks()), key=lambda p: p[1])
    return render(
        "portfolio.html", **context, members=members, playbooks=playbooks, tags=data.tags,
        statuses=[s.value for s in StatusChoice], sorts=[s.value for s in Sort],
        refresh=REFRESH_SECONDS,
        my_work=ctx.team.member(who.name) is not None,
    )

"""The web dashboard: a multi-client overview and a run page (server-rendered, read-only).

Sign-in: the same bearer header as the API, or a token given once (``?token=`` or the
sign-in form) that is kept in an HttpOnly cookie. The viewer role is enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Hub, Principal, principal_for
from hub.api.params import AssigneeFilter, ClientFilter, PlaybookFilter, RunId
from hub.api.schemas import audit_entry, run_detail
from hub.core.checklists.engine import StepState
from hub.core.states import RunStatus, StepStatus
from hub.errors import NotFound
from hub.services.context import HubContext
from hub.services.runs import RunFilter, to_state
from hub.store.models import AuditEntry, Run

TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "msphub_token"
COOKIE_MAX_AGE = 12 * 3600
OVERVIEW_LIMIT = 500
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_time(value: datetime | None) -> str:
    return value.strftime("%a %d %b %Y, %H:%M UTC") if value else "—"


def _span(seconds: int) -> str:
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _relative(value: datetime | None, now: datetime) -> str:
    """``in 3 h`` / ``2 days ago``."""
    if value is None:
        return ""
    seconds = int((value - now).total_seconds())
    return f"in {_span(seconds)}" if seconds >= 0 else f"{_span(-seconds)} ago"


def _due(value: datetime | None, now: datetime) -> str:
    """``due in 3 h`` / ``overdue by 20 min``, for unfinished steps."""
    if value is None:
        return ""
    seconds = int((value - now).total_seconds())
    return f"due in {_span(seconds)}" if seconds >= 0 else f"overdue by {_span(-seconds)}"


def _show(value: Any) -> str:
    """An input value as people read it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def _fmt_short(value: datetime | None) -> str:
    return value.strftime("%a %d %b, %H:%M") if value else "—"


_env.filters["when"] = _fmt_time
_env.filters["short"] = _fmt_short
_env.filters["show"] = _show


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


# ---- sign-in -----------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    # Only local paths: never redirect a signed-in browser to another site.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(request: Request, message: str | None, *, clear: bool = False) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = _render("login.html", 401, message=message, next=_safe_next(target))
    if clear:
        response.delete_cookie(COOKIE, path="/")
    return response


def _signed_in(request: Request, target: str, token: str) -> Response:
    response = RedirectResponse(_safe_next(target), status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


def _sign_in(request: Request, ctx: HubContext) -> Principal | Response:
    """The viewer, or the response to send instead (sign-in page, or redirect from ?token=)."""
    given = request.query_params.get("token")
    if given is not None:
        if principal_for(ctx, given) is None:
            return _login_page(request, "That token is not valid or has been revoked.")
        # Drop the token from the address bar (and from history and shared links).
        rest = request.url.remove_query_params("token")
        return _signed_in(request, rest.path + (f"?{rest.query}" if rest.query else ""), given)
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    token = credential.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE)
    if not token:
        return _login_page(request, None)
    principal = principal_for(ctx, token)
    if principal is None:
        return _login_page(request, "Your token is no longer valid. Sign in again.",
                           clear=True)
    return principal


@router.post("/login")
async def login(request: Request, ctx: Hub) -> Response:
    """Sign-in form target: keeps a valid token in an HttpOnly cookie."""
    form = parse_qs((await request.body())[:8192].decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    if not token or await run_in_threadpool(principal_for, ctx, token) is None:
        return _render("login.html", 401, next=target,
                       message="That token is not valid or has been revoked.")
    return _signed_in(request, target, token)


@router.post("/logout")
def logout() -> Response:
    """Forget the dashboard cookie."""
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# ---- overview ----------------------------------------------------------------------


@dataclass
class RunCard:
    """One active run on the overview."""

    id: int
    title: str
    launched_at: datetime
    ticket: str | None
    done: int
    total: int
    overdue: list[StepState]
    steps: list[StepState]  # what is next (or, filtered by assignee, that person's steps)

    @property
    def percent(self) -> int:
        """Progress as a whole percentage."""
        return round(100 * self.done / self.total) if self.total else 100


@dataclass
class ClientGroup:
    """A client's active runs."""

    key: str
    name: str
    runs: list[RunCard] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        """Overdue steps across the client's runs."""
        return sum(len(r.overdue) for r in self.runs)


def _card(row: Run, now: datetime, assignee: str | None) -> RunCard:
    state = to_state(row)
    done, total = state.progress()
    waiting = [s for s in state.steps if s.status in (StepStatus.OPEN, StepStatus.LOCKED)]
    if assignee:
        steps = [s for s in waiting if s.assignee == assignee]
    else:
        steps = [s for s in waiting if s.status is StepStatus.OPEN]
    ticket = f"{state.ticket.source} #{state.ticket.id}" if state.ticket else None
    return RunCard(id=state.id, title=row.playbook_version.title, launched_at=state.launched_at,
                   ticket=ticket, done=done, total=total, overdue=state.overdue(now),
                   steps=steps[:6])


def _group(rows: Iterable[Run], now: datetime, assignee: str | None) -> list[ClientGroup]:
    groups: dict[str, ClientGroup] = {}
    for row in rows:
        key = row.client.key
        group = groups.setdefault(key, ClientGroup(key=key, name=row.client.name or key))
        group.runs.append(_card(row, now, assignee))
    for group in groups.values():
        group.runs.sort(key=lambda r: (-len(r.overdue), r.id))
    return sorted(groups.values(), key=lambda g: (-g.overdue, g.name.lower()))


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    ctx: Hub,
    client: ClientFilter = None,
    playbook: PlaybookFilter = None,
    assignee: AssigneeFilter = None,
    overdue: Annotated[bool, Query()] = False,
) -> Response:
    """Active runs grouped by client, with progress and overdue steps."""
    who = _sign_in(request, ctx)
    if isinstance(who, Response):
        return who
    now = ctx.clock()
    flt = RunFilter(client=client or None, playbook=playbook or None, assignee=assignee or None,
                    status=RunStatus.ACTIVE.value, overdue=True if overdue else None,
                    limit=OVERVIEW_LIMIT)
    with ctx.sessions() as session:
        rows = ctx.runs.search(session, flt)
        groups = _group(rows, now, assignee or None)
        clients = sorted({(r.client.key, r.client.name or r.client.key)
                          for r in ctx.runs.search(session, RunFilter(
                              status=RunStatus.ACTIVE.value, limit=OVERVIEW_LIMIT))},
                         key=lambda c: c[1].lower())
    members = [(m.id, m.name) for m in ctx.team.members]
    playbooks = sorted(((p.id, p.title) for p in ctx.playbooks()), key=lambda p: p[1])
    is_member = ctx.team.member(who.name) is not None
    return _render(
        "overview.html", who=who, now=now, groups=groups, relative=_relative, due=_due,
        clients=clients, members=members, names=dict(members), playbooks=playbooks,
        filters={"client": client or "", "playbook": playbook or "",
                 "assignee": assignee or "", "overdue": overdue},
        my_tasks=who.name if is_member else None,
        totals={"runs": sum(len(g.runs) for g in groups),
                "overdue": sum(g.overdue for g in groups), "clients": len(groups)},
        truncated=len(rows) >= OVERVIEW_LIMIT,
    )


# ---- run page ----------------------------------------------------------------------


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """One run: its steps, states, assignees, due times, evidence and audit trail."""
    who = _sign_in(request, ctx)
    if isinstance(who, Response):
        return who
    now = ctx.clock()
    with ctx.sessions() as session:
        try:
            row = ctx.runs.load(session, run_id)
        except NotFound:
            return _render("missing.html", 404, who=who, run_id=run_id)
        detail = run_detail(ctx.runs, row, now)
        inputs = {i.id: i.title for i in ctx.runs.playbook_for(row).inputs}
        entries = [audit_entry(e) for e in session.execute(
            select(AuditEntry).where(AuditEntry.run_id == run_id).order_by(AuditEntry.id)
        ).scalars()]
    titles = {s.step_id: s.title for s in detail.steps}
    members = {m.id: m.name for m in ctx.team.members}
    return _render("run.html", who=who, now=now, run=detail, input_titles=inputs,
                   titles=titles, members=members, audit=entries, relative=_relative,
                   due=_due)

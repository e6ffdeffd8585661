"""Operations pages (manager and admin): the event inbox with each event's trace and
replay, and dead letters with retry (the clients page is ``clientspage``).

Reading needs a manager; replaying and retrying need an admin, as in the API and CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Hub, Principal, check_role
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import (
    REFUSALS,
    STALE_FORM,
    csrf_ok,
    csrf_token,
    form_and_viewer,
    refusal,
    viewer,
)
from hub.api.errors import ApiError
from hub.api.events import EventId, shown
from hub.core.states import InboxStatus
from hub.errors import NotAllowed, NotFound
from hub.runtime.process import Runtime
from hub.services.actions import effects_of
from hub.services.context import HubContext
from hub.services.deadletters import list_dead, revive
from hub.services.inbox import reopen
from hub.services.tokens import Role
from hub.store.db import transaction
from hub.store.models import InboxEvent

router = APIRouter(include_in_schema=False)
EVENTS_SHOWN = 200

StatusQuery = Annotated[str | None, Query(max_length=20)]


def manager_only(request: Request, ctx: HubContext) -> Principal | Response:
    """The signed-in manager or admin, or the page to show instead."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    try:
        check_role(who, Role.MANAGER, "the operations pages")
    except ApiError as exc:
        return render("refused.html", 403, who=who, message=exc.detail, csrf=csrf_token(request))
    return who


def runtime_of(request: Request) -> Runtime:
    """The process's runtime (dispatch, sources), as the app holds it."""
    return cast(Runtime, request.app.state.runtime)


@router.get("/ops/events", response_class=HTMLResponse)
def events_page(request: Request, ctx: Hub, status: StatusQuery = None) -> Response:
    """Recent inbox events, newest first, filtered by outcome."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    chosen = status if status in {s.value for s in InboxStatus} else None
    stmt = select(InboxEvent).order_by(InboxEvent.id.desc()).limit(EVENTS_SHOWN)
    if chosen:
        stmt = stmt.where(InboxEvent.status == chosen)
    with ctx.sessions() as session:
        rows = [{"id": r.id, "source": r.source, "kind": r.kind, "status": r.status,
                 "received_at": r.received_at, "client": r.hub_client or r.client_name
                 or r.client_key, "subject": f"{r.subject_type} {r.subject_id}"
                 if r.subject_id else "", "matched": list((r.result or {}).get("matched", [])),
                 "effects": effects_of(r.result), "error": r.last_error}
                for r in session.execute(stmt).scalars()]
    return render("ops_events.html", who=who, now=ctx.clock(), events=rows, chosen=chosen,
                  statuses=[s.value for s in InboxStatus], csrf=csrf_token(request),
                  limit=EVENTS_SHOWN)


def _event_view(request: Request, ctx: HubContext, who: Principal, event_id: int, *,
                error: str | None = None, status: int = 200) -> Response:
    with ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        if row is None:
            return render("refused.html", 404, who=who, csrf=csrf_token(request),
                          message=f"event {event_id} does not exist")
        stored = shown(row.result or {})
        result = {k: list(stored.get(k) or []) for k in ("matched", "actions", "errors",
                                                          "near_misses")}
        event = {"id": row.id, "source": row.source, "vendor": row.vendor, "kind": row.kind,
                 "status": row.status, "dedupe_key": row.dedupe_key, "via": row.via,
                 "occurred_at": row.occurred_at, "received_at": row.received_at,
                 "processed_at": row.processed_at, "attempts": row.attempts,
                 "client": row.client_key, "client_name": row.client_name,
                 "hub_client": row.hub_client, "last_error": row.last_error,
                 "subject": f"{row.subject_type} {row.subject_id}" if row.subject_id else "",
                 "data": shown(row.data)}
    return render("ops_event.html", status, who=who, event=event, result=result, error=error,
                  csrf=csrf_token(request), may_replay=who.role is Role.ADMIN)


@router.get("/ops/events/{event_id}", response_class=HTMLResponse)
def event_page(event_id: EventId, request: Request, ctx: Hub) -> Response:
    """One event: its data and trace (matched rules, near misses, actions, errors)."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    return _event_view(request, ctx, who, event_id)


async def post_form(request: Request, ctx: HubContext, needed: Role, what: str,
                work: Callable[[dict[str, str], Principal], str],
                refused: Callable[[Principal, str, int], Response]) -> Response:
    """A form: CSRF, role, then ``work`` (returns where to go next) or the refusal page."""
    form, who = await form_and_viewer(request, ctx)
    if isinstance(who, Response):
        return who

    def run() -> Response:
        try:
            if not csrf_ok(request, form.get("csrf")):
                return refused(who, STALE_FORM, 403)
            check_role(who, needed, what)
            return RedirectResponse(work(form, who), status_code=303)
        except REFUSALS as exc:
            status, message = refusal(exc)
            return refused(who, message, status)

    return await run_in_threadpool(run)


@router.post("/ops/events/{event_id}/replay")
async def replay(event_id: EventId, request: Request, ctx: Hub) -> Response:
    """Run a stored event through the current rules again (admin), as the API's replay."""

    def work(_form: dict[str, str], _who: Principal) -> str:
        with transaction(ctx.sessions) as session:
            reopen(session, event_id)
        runtime_of(request).dispatch.event(event_id)
        return f"/ops/events/{event_id}"

    return await post_form(request, ctx, Role.ADMIN, "replaying an event", work,
                       lambda who, msg, code: _event_view(request, ctx, who, event_id,
                                                          error=msg, status=code))


# ---- dead letters ------------------------------------------------------------------------


def _dead_view(request: Request, ctx: HubContext, who: Principal, *, error: str | None = None,
               status: int = 200) -> Response:
    return render("ops_dead.html", status, who=who, items=list_dead(ctx), error=error,
                  csrf=csrf_token(request), may_retry=who.role is Role.ADMIN)


@router.get("/ops/dead", response_class=HTMLResponse)
def dead_page(request: Request, ctx: Hub) -> Response:
    """Events and notes whose retries are exhausted."""
    who = manager_only(request, ctx)
    if isinstance(who, Response):
        return who
    return _dead_view(request, ctx, who)


@router.post("/ops/dead/{kind}/{item_id}/retry")
async def retry_dead(kind: str, item_id: EventId, request: Request, ctx: Hub) -> Response:
    """Put one parked event or note back in the queue (admin), as ``msphub deadletters retry``."""

    def work(_form: dict[str, str], _who: Principal) -> str:
        if kind not in ("event", "note", "notification"):
            raise NotFound("kind must be 'event', 'note' or 'notification'")
        if not revive(ctx, kind, item_id):
            raise NotAllowed(f"{kind} {item_id} is not a dead letter")
        if kind == "event":
            runtime_of(request).dispatch.event(item_id)
        elif kind == "note":
            runtime_of(request).dispatch.notes([item_id])
        # a notification is due again at once: the next delivery pass sends it
        return "/ops/dead"

    return await post_form(request, ctx, Role.ADMIN, "retrying a dead letter", work,
                       lambda who, msg, code: _dead_view(request, ctx, who, error=msg,
                                                         status=code))

"""The completion record of a run: a printable page and a PDF for signed-in people, and
share links that show a client that record and nothing else (expiring, revocable, every
view audited, the PDF's too), both under the MSP's branding (``config/branding.yaml``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Hub, Principal, check_role
from hub.api.dashboard.branding import LOGO_URL, brand
from hub.api.dashboard.record_pdf import record_pdf
from hub.api.dashboard.render import SECURITY_HEADERS, render
from hub.api.dashboard.signin import (
    REFUSALS,
    STALE_FORM,
    csrf_ok,
    csrf_token,
    form_and_viewer,
    refusal,
    secret,
    viewer,
)
from hub.api.params import RunId
from hub.api.schemas import RunDetail, run_detail
from hub.errors import NotAllowed, NotFound
from hub.services import sharing
from hub.services.context import HubContext
from hub.services.tokens import Role, at_least
from hub.store.db import transaction

router = APIRouter(include_in_schema=False)
LinkId = Annotated[int, Path(ge=1, le=2_147_483_647)]
ShareToken = Annotated[str, Path(min_length=1, max_length=200)]
# The page's headers less its script/style policy, which a browser's PDF viewer would be
# held to; framing stays forbidden.
PDF_HEADERS = {**{k: v for k, v in SECURITY_HEADERS.items() if k != "Content-Security-Policy"},
               "Content-Security-Policy": "frame-ancestors 'none'"}


def _record(ctx: HubContext, run_id: int) -> tuple[RunDetail, dict[str, str]]:
    with ctx.sessions() as session:
        row = ctx.runs.load(session, run_id)
        inputs = {i.id: i.title for i in ctx.runs.playbook_for(row).inputs}
        return run_detail(ctx.runs, row, ctx.clock()), inputs


def _record_view(request: Request, ctx: HubContext, who: Principal, run_id: int, *,
                 error: str | None = None, new_link: str | None = None,
                 status: int = 200) -> Response:
    try:
        detail, inputs = _record(ctx, run_id)
    except NotFound:
        return render("missing.html", 404, who=who, run_id=run_id, csrf=csrf_token(request))
    manager = at_least(who.role, Role.MANAGER)
    with ctx.sessions() as session:
        links = sharing.links_of(session, run_id) if manager else []
    shown = brand(request, ctx)
    return render("record.html", status, who=who, run=detail, input_titles=inputs,
                  now=ctx.clock(), csrf=csrf_token(request), may_share=manager, links=links,
                  new_link=new_link, error=error, shared=False, brand=shown.branding,
                  brand_error=shown.error if manager else None, logo_url=LOGO_URL,
                  pdf_url=f"/runs/{run_id}/record.pdf")


def _pdf(request: Request, ctx: HubContext, run_id: int,
         expires_at: datetime | None = None) -> Response:
    """The record as a PDF (inline, so the browser shows it; the name suits a download)."""
    detail, inputs = _record(ctx, run_id)
    data = record_pdf(detail, inputs, brand(request, ctx).branding, now=ctx.clock(),
                      expires_at=expires_at)
    return Response(data, media_type="application/pdf", headers={**PDF_HEADERS,
        "Content-Disposition": f'inline; filename="record-run-{run_id}.pdf"'})


@router.get("/runs/{run_id}/record", response_class=HTMLResponse)
def record_page(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """The run's completion record, ready to print; managers also manage share links."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    return _record_view(request, ctx, who, run_id)


@router.get("/runs/{run_id}/record.pdf")
def record_pdf_page(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """The run's completion record as a PDF (anyone signed in, like the page)."""
    who = viewer(request, ctx)
    if isinstance(who, Response):
        return who
    try:
        return _pdf(request, ctx, run_id)
    except NotFound:
        return render("missing.html", 404, who=who, run_id=run_id, csrf=csrf_token(request))


async def _manage(request: Request, ctx: HubContext, run_id: int, link_id: int | None) -> Response:
    form, who = await form_and_viewer(request, ctx)
    if isinstance(who, Response):
        return who

    def work() -> Response:
        if not csrf_ok(request, form.get("csrf")):
            return _record_view(request, ctx, who, run_id, error=STALE_FORM, status=403)
        try:
            check_role(who, Role.MANAGER, "sharing a run's record")
            with transaction(ctx.sessions) as session:
                if link_id is not None:
                    sharing.revoke_link(session, run_id, link_id, by=who.actor,
                                        now=ctx.clock())
                    return _record_view(request, ctx, who, run_id)
                days = form.get("days", "30").strip()
                if not days.isdigit():
                    raise NotAllowed("the lifetime is a whole number of days")
                _link, token = sharing.create_link(
                    session, secret(request), run_id, by=who.actor, now=ctx.clock(),
                    ttl=timedelta(days=int(days)))
        except REFUSALS as exc:
            status, message = refusal(exc)
            return _record_view(request, ctx, who, run_id, error=message, status=status)
        url = str(request.base_url).rstrip("/") + f"/shared/{token}"
        return _record_view(request, ctx, who, run_id, new_link=url, status=201)

    return await run_in_threadpool(work)


@router.post("/runs/{run_id}/share")
async def share(run_id: RunId, request: Request, ctx: Hub) -> Response:
    """Create a share link to the record (manager); the link is shown once."""
    return await _manage(request, ctx, run_id, None)


@router.post("/runs/{run_id}/share/{link_id}/revoke")
async def revoke(run_id: RunId, link_id: LinkId, request: Request, ctx: Hub) -> Response:
    """End a share link now (manager)."""
    return await _manage(request, ctx, run_id, link_id)


def _open(request: Request, ctx: HubContext, token: str) -> tuple[int, datetime] | Response:
    """The run and expiry a live token names (the view audited), or the refusal page."""
    viewer_ip = request.client.host if request.client else "unknown"
    try:
        with transaction(ctx.sessions) as session:
            link = sharing.open_link(session, secret(request), token, now=ctx.clock(),
                                     viewer=viewer_ip)
            return link.run_id, link.expires_at
    except sharing.LinkRefused as exc:
        return render("shared_refused.html", 403, message=exc.reason,
                      brand=brand(request, ctx).branding, logo_url=LOGO_URL)


@router.get("/shared/{token}", response_class=HTMLResponse)
def shared_record(token: ShareToken, request: Request, ctx: Hub) -> Response:
    """What a client sees: that run's record, nothing else; altered/expired/revoked: 403."""
    opened = _open(request, ctx, token)
    if isinstance(opened, Response):
        return opened
    run_id, expires_at = opened
    detail, inputs = _record(ctx, run_id)
    return render("record.html", run=detail, input_titles=inputs, now=ctx.clock(),
                  shared=True, expires_at=expires_at, may_share=False, links=[],
                  new_link=None, error=None, csrf="", brand=brand(request, ctx).branding,
                  brand_error=None, logo_url=LOGO_URL, pdf_url=f"/shared/{token}/record.pdf")


@router.get("/shared/{token}/record.pdf")
def shared_record_pdf(token: ShareToken, request: Request, ctx: Hub) -> Response:
    """The shared record as a PDF; refused like the page, and audited as a view."""
    opened = _open(request, ctx, token)
    if isinstance(opened, Response):
        return opened
    run_id, expires_at = opened
    return _pdf(request, ctx, run_id, expires_at)

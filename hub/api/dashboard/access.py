"""Sign-in and sign-out pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Hub, principal_for
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import COOKIE, FormTooLarge, read_form, safe_next, signed_in

router = APIRouter(include_in_schema=False)


@router.post("/login")
async def login(request: Request, ctx: Hub) -> Response:
    """Sign-in form target: keeps a valid token in an HttpOnly cookie."""
    try:
        form = await read_form(request)
    except FormTooLarge:
        form = {}
    token = form.get("token", "").strip()
    target = safe_next(form.get("next", "/"))
    if not token or await run_in_threadpool(principal_for, ctx, token) is None:
        return render("login.html", 401, next=target,
                      message="That token is not valid or has been revoked.")
    return signed_in(request, target, token)


@router.post("/logout")
def logout() -> Response:
    """Forget the dashboard cookie."""
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response

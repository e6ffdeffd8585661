"""Sign-in and sign-out pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Hub, principal_for
from hub.api.dashboard.render import render
from hub.api.dashboard.signin import (
    COOKIE,
    SESSION_COOKIE,
    STALE_FORM,
    FormTooLarge,
    credential,
    csrf_ok,
    read_form,
    safe_next,
    signed_in,
    start_session,
)
from hub.services import users
from hub.services.context import HubContext
from hub.store.db import transaction

router = APIRouter(include_in_schema=False)


@router.post("/login")
async def login(request: Request, ctx: Hub) -> Response:
    """Sign-in form target: a user's session cookie, or a valid token in an HttpOnly cookie."""
    try:
        form = await read_form(request)
    except FormTooLarge:
        form = {}
    target = safe_next(form.get("next", "/"))
    if "username" in form:
        changed = await run_in_threadpool(_password_sign_in, ctx, form.get("username", ""),
                                          form.get("password", ""))
        if changed is None:
            return render("login.html", 401, next=target,
                          message="That user name and password do not match.")
        return start_session(request, target, form["username"].strip(), changed)
    token = form.get("token", "").strip()
    if not token or await run_in_threadpool(principal_for, ctx, token) is None:
        return render("login.html", 401, next=target,
                      message="That token is not valid or has been revoked.")
    return signed_in(request, target, token)


def _password_sign_in(ctx: HubContext, name: str, password: str) -> str | None:
    """The user's password-changed instant (the session's anchor), or None if refused."""
    with transaction(ctx.sessions) as session:
        user = users.authenticate(session, name.strip(), password, now=ctx.clock())
        if user is None or users.role_of(user) is None:
            return None
        return user.password_changed_at.isoformat()


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the dashboard cookies (session and token); the form carries the CSRF token."""
    try:
        form = await read_form(request)
    except FormTooLarge:
        form = {}
    if credential(request) and not csrf_ok(request, form.get("csrf")):
        return render("refused.html", 403, message=STALE_FORM)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

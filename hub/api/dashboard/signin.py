"""Dashboard sign-in: who is looking (bearer header or cookie), CSRF tokens, form bodies.

A browser signs in with an API token (kept in an HttpOnly cookie). Every form carries a
CSRF token bound to that credential: an HMAC under the hub's ``secret_key`` (or, when
none is configured, a key made at start-up, so forms of an earlier process are refused).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import cast
from urllib.parse import parse_qs

import structlog
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Principal, principal_for
from hub.api.dashboard.render import render
from hub.services.context import HubContext

log = structlog.get_logger("hub.api")

COOKIE = "msphub_token"
COOKIE_MAX_AGE = 12 * 3600
MAX_FORM = 65_536
CSRF_FIELD = "csrf"


class FormTooLarge(Exception):
    """A dashboard form body beyond :data:`MAX_FORM` bytes."""


def secret(request: Request) -> bytes:
    """The key that signs CSRF tokens (and sessions): settings.secret_key, else per process."""
    state = request.app.state
    key = getattr(state, "dashboard_secret", None)
    if key is None:
        configured = cast(HubContext, state.ctx).settings.secret_key
        if configured is not None:
            key = configured.get_secret_value().encode()
        else:
            key = secrets.token_bytes(32)
            log.warning("dashboard_secret_generated",
                        hint="set MSPHUB_SECRET_KEY so sessions survive a restart")
        state.dashboard_secret = key
    return cast(bytes, key)


def credential(request: Request) -> str | None:
    """What signs this request in: the bearer token, else the dashboard cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE) or None


def csrf_token(request: Request) -> str:
    """The CSRF token of the signed-in credential (empty when nobody is signed in)."""
    cred = credential(request)
    if not cred:
        return ""
    return hmac.new(secret(request), b"csrf|" + cred.encode(), hashlib.sha256).hexdigest()


def csrf_ok(request: Request, given: str | None) -> bool:
    """True when ``given`` is this credential's CSRF token."""
    expected = csrf_token(request)
    return bool(expected and given) and hmac.compare_digest(expected, given or "")


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value of each field.

    Raises:
        FormTooLarge: the body is larger than :data:`MAX_FORM`.
    """
    body = await request.body()
    if len(body) > MAX_FORM:
        raise FormTooLarge()
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if v}


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect a signed-in browser to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def login_page(request: Request, message: str | None, *, clear: bool = False,
               status: int = 401) -> Response:
    """The sign-in form, returning to the page asked for."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = render("login.html", status, message=message, next=safe_next(target))
    if clear:
        response.delete_cookie(COOKIE, path="/")
    return response


def signed_in(request: Request, target: str, token: str) -> Response:
    """Redirect to ``target`` with the token kept in the HttpOnly cookie."""
    response = RedirectResponse(safe_next(target), status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


def viewer(request: Request, ctx: HubContext) -> Principal | Response:
    """Who is looking, or the response to send instead (sign-in page, redirect from ?token=)."""
    given = request.query_params.get("token")
    if given is not None:
        if principal_for(ctx, given) is None:
            return login_page(request, "That token is not valid or has been revoked.")
        # Drop the token from the address bar (and from history and shared links).
        rest = request.url.remove_query_params("token")
        return signed_in(request, rest.path + (f"?{rest.query}" if rest.query else ""), given)
    token = credential(request)
    if not token:
        return login_page(request, None)
    principal = principal_for(ctx, token)
    if principal is None:
        return login_page(request, "Your token is no longer valid. Sign in again.",
                          clear=True)
    return principal


async def viewer_async(request: Request, ctx: HubContext) -> Principal | Response:
    """:func:`viewer` for async routes (the token lookup runs in the thread pool)."""
    return await run_in_threadpool(viewer, request, ctx)

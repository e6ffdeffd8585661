"""Dashboard sign-in: who is looking (bearer header or cookie), CSRF tokens, form bodies.

A browser signs in with a user name and password (``msphub users add``), kept as a
signed HttpOnly session cookie (itsdangerous) naming the user and when their password
last changed, or with an API token (kept in an HttpOnly cookie). Every form carries a
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
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from hub.api.auth import Principal, principal_for
from hub.api.dashboard.render import render
from hub.api.errors import ApiError
from hub.errors import NotAllowed, NotFound, StepLocked
from hub.services import users
from hub.services.context import HubContext

log = structlog.get_logger("hub.api")

COOKIE = "msphub_token"
SESSION_COOKIE = "msphub_session"
COOKIE_MAX_AGE = 12 * 3600
MAX_FORM = 65_536
CSRF_FIELD = "csrf"
STALE_FORM = ("This form has expired or did not come from this dashboard. "
              "Reload the page and try again.")


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
    """What signs this request in: the bearer token, else a session or token cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(COOKIE) or None


def _sessions(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret(request), salt="msphub-session")


def start_session(request: Request, target: str, name: str, changed_at: str) -> Response:
    """Redirect to ``target`` with a signed session cookie for this user."""
    value = _sessions(request).dumps({"u": name, "c": changed_at})
    response = RedirectResponse(safe_next(target), status_code=303)
    response.set_cookie(SESSION_COOKIE, value, max_age=COOKIE_MAX_AGE, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.delete_cookie(COOKIE, path="/")
    return response


def session_principal(request: Request, ctx: HubContext, value: str) -> Principal | None:
    """The user a session cookie names, while it is unexpired, unaltered and current."""
    try:
        data = _sessions(request).loads(value, max_age=COOKIE_MAX_AGE)
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), str):
        return None
    with ctx.sessions() as session:
        user = users.find(session, data["u"])
        if user is None or user.disabled_at is not None:
            return None
        if user.password_changed_at.isoformat() != data.get("c"):
            return None  # the password changed since: every older session ends
        role = users.role_of(user)
        return Principal(user.name, role, kind="user") if role else None


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
    header = request.headers.get("authorization", "")
    session_value = request.cookies.get(SESSION_COOKIE)
    if session_value and not header:
        from_session = session_principal(request, ctx, session_value)
        if from_session is not None:
            return from_session
        response = login_page(request, "Your session has ended. Sign in again.")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
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


async def form_and_viewer(request: Request,
                          ctx: HubContext) -> tuple[dict[str, str], Principal | Response]:
    """A posted form (empty when too large: its CSRF check then fails) and who sent it
    (or the sign-in page)."""
    try:
        form = await read_form(request)
    except FormTooLarge:
        form = {}
    return form, await run_in_threadpool(viewer, request, ctx)


# what a form action may refuse with, shown on the page with the API's status codes
REFUSALS = (ApiError, StepLocked, NotAllowed, NotFound)


def refusal(exc: Exception) -> tuple[int, str]:
    """The status and message of one of :data:`REFUSALS`."""
    if isinstance(exc, ApiError):
        return exc.status, exc.detail
    if isinstance(exc, StepLocked | NotAllowed):
        return 409, exc.reason
    return 404, str(exc)

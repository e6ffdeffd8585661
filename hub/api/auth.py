"""Bearer-token authentication and role checks for the API and the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, cast

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from hub.api.errors import ApiError
from hub.runtime.process import Runtime
from hub.services.context import HubContext
from hub.services.tokens import Role, at_least, authenticate, hash_token
from hub.store.db import transaction
from hub.store.models import ApiToken

log = structlog.get_logger("hub.api")

# last_used_at is informational; refreshing it on every request would turn each read
# into a write (and, on SQLite, serialise readers behind it).
TOUCH_INTERVAL = timedelta(seconds=60)
MAX_TOKEN_LENGTH = 256

_bearer = HTTPBearer(auto_error=False, description="An API token: `msphub tokens create`.")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's (or dashboard user's) name and role."""

    name: str
    role: Role
    kind: str = "token"  # or "user": a dashboard user signed in with a password

    @property
    def actor(self) -> str:
        """How the audit trail records this caller."""
        return f"user:{self.name}"


def hub_context(request: Request) -> HubContext:
    """The HubContext the app was created with."""
    return cast(HubContext, request.app.state.ctx)


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was created with (sources, dispatch to the workers)."""
    return cast(Runtime, request.app.state.runtime)


Hub = Annotated[HubContext, Depends(hub_context)]
Wired = Annotated[Runtime, Depends(runtime_of)]


def principal_for(ctx: HubContext, token: str) -> Principal | None:
    """The caller a token belongs to, or None when it is unknown, revoked or malformed.

    Reads the token in a read-only session; only when ``last_used_at`` is older than
    :data:`TOUCH_INTERVAL` does it open a write transaction (through
    :func:`hub.services.tokens.authenticate`) to refresh it.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = ctx.clock()
    with ctx.sessions() as session:
        row = session.execute(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token))
        ).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        try:
            role = Role(row.role)
        except ValueError:
            log.warning("token_has_unknown_role", token=row.name, role=row.role)
            return None
        principal = Principal(row.name, role)
        stale = row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL
    if stale:
        with transaction(ctx.sessions) as session:
            if authenticate(session, token, now=now) is None:  # revoked in between
                return None
    return principal


def _unauthorized(detail: str, *, invalid: bool) -> ApiError:
    challenge = 'Bearer realm="msphub"' + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def current_principal(
    ctx: Hub,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of an API request (``Authorization: Bearer <token>``).

    Raises:
        ApiError: 401 with ``WWW-Authenticate: Bearer`` when missing or invalid.
    """
    if credentials is None:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'",
                            invalid=False)
    principal = principal_for(ctx, credentials.credentials)
    if principal is None:
        raise _unauthorized("invalid or revoked token", invalid=True)
    return principal


def check_role(principal: Principal, needed: Role, action: str) -> None:
    """Refuse with 403 unless the caller holds ``needed`` (or a higher role).

    Raises:
        ApiError: 403 naming the role needed and the caller's role.
    """
    if not at_least(principal.role, needed):
        raise ApiError(403, "forbidden",
                       f"{action} needs the '{needed.value}' role or higher; "
                       f"{principal.kind} '{principal.name}' has '{principal.role.value}'",
                       needed_role=needed.value)


def require(needed: Role, action: str) -> Callable[[Principal], Principal]:
    """A dependency that authenticates the caller and checks their role."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        check_role(principal, needed, action)
        return principal

    return dependency


# Generic aliases; routes that want a more specific 403 message use require(role, action).
Viewer = Annotated[Principal, Depends(require(Role.VIEWER, "this request"))]
Technician = Annotated[Principal, Depends(require(Role.TECHNICIAN, "this action"))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER, "this action"))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN, "this action"))]

"""API bearer tokens: created once, shown once, stored as SHA-256, each with a role."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import NotAllowed
from hub.store.models import ApiToken

PREFIX = "msh_"


class Role(StrEnum):
    """What a token holder may do, from least to most."""

    VIEWER = "viewer"          # read everything
    TECHNICIAN = "technician"  # + complete and skip (unprotected) steps, comment, reassign
    MANAGER = "manager"        # + launch and cancel runs, skip protected steps
    ADMIN = "admin"            # + manage tokens, dead letters, replays


_RANK = {Role.VIEWER: 0, Role.TECHNICIAN: 1, Role.MANAGER: 2, Role.ADMIN: 3}


def at_least(role: Role, needed: Role) -> bool:
    """True when ``role`` includes every permission of ``needed``."""
    return _RANK[role] >= _RANK[needed]


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, name: str, role: Role, now: datetime) -> str:
    """Create a token and return it in clear text — the only time it is visible.

    Raises:
        NotAllowed: a token with this name already exists.
    """
    if session.execute(select(ApiToken).where(ApiToken.name == name)).first():
        raise NotAllowed(f"a token named '{name}' already exists")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role.value, token_hash=hash_token(token),
                         prefix=token[:10], created_at=now))
    return token


def authenticate(session: Session, token: str, *, now: datetime) -> ApiToken | None:
    """The live token row for a presented bearer token, or None."""
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = now
    return row


def revoke_token(session: Session, name: str, *, now: datetime) -> bool:
    """Revoke a token by name; False when there is none."""
    row = session.execute(select(ApiToken).where(ApiToken.name == name)).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True

"""Named dashboard users: argon2id password hashes (argon2-cffi), a role each.

A user signs in with name and password; the dashboard then keeps a signed session
cookie that names the user and when their password last changed, so changing a
password (or disabling the user) ends every session signed before it.
"""

from __future__ import annotations

import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import NotAllowed, NotFound
from hub.services.tokens import Role
from hub.store.models import User

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; bound the work an attacker can ask for
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verified against when the name is unknown, so both paths cost one argon2 verification
_DUMMY = _hasher.hash("not a real password, only for timing")


def check_password(password: str) -> None:
    """Refuse a password that is too short or too long.

    Raises:
        NotAllowed: with the rule it breaks.
    """
    if len(password) < MIN_PASSWORD:
        raise NotAllowed(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise NotAllowed(f"a password has at most {MAX_PASSWORD} characters")


def add_user(session: Session, name: str, role: Role, password: str, *, now: datetime) -> User:
    """Create a user.

    Raises:
        NotAllowed: a bad name or password, or the name is taken.
    """
    if not NAME.match(name):
        raise NotAllowed("a user name is 1-100 letters, digits, '.', '_', '@' or '-'")
    check_password(password)
    if find(session, name) is not None:
        raise NotAllowed(f"a user named '{name}' already exists")
    user = User(name=name, role=role.value, password_hash=_hasher.hash(password),
                created_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    return user


def find(session: Session, name: str) -> User | None:
    """The user with this name, if any."""
    return session.execute(select(User).where(User.name == name)).scalar_one_or_none()


def set_password(session: Session, name: str, password: str, *, now: datetime) -> User:
    """Give a user a new password; their existing sessions end.

    Raises:
        NotFound: no such user.
        NotAllowed: the password breaks a rule.
    """
    user = find(session, name)
    if user is None:
        raise NotFound(f"user '{name}' does not exist")
    check_password(password)
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = now
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.execute(select(User).order_by(User.name)).scalars())


def authenticate(session: Session, name: str, password: str, *, now: datetime) -> User | None:
    """The enabled user whose password this is, or None (same cost for an unknown name).

    Refreshes the stored hash when the library's parameters have moved on.
    """
    user = find(session, name) if NAME.match(name) else None
    if len(password) > MAX_PASSWORD:
        return None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    return user


def role_of(user: User) -> Role | None:
    """The user's role, or None for a value this version does not know."""
    try:
        return Role(user.role)
    except ValueError:
        return None

"""Share links: a client's read-only view of one run's completion record.

A link is an itsdangerous-signed token naming a ``share_links`` row; the row holds the
expiry and the revocation, so an altered token fails the signature, and an expired or
revoked one is refused by the row. Creating, revoking and every view of a link are audit
facts of the run.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.checklists.engine import Fact
from hub.errors import NotAllowed, NotFound
from hub.store import audit
from hub.store.models import Run, ShareLink

DEFAULT_TTL = timedelta(days=30)
MAX_TTL = timedelta(days=365)
SALT = "msphub-share-link"


class LinkRefused(Exception):
    """A share token that is altered, unknown, expired or revoked; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def create_link(session: Session, key: bytes, run_id: int, *, by: str, now: datetime,
                ttl: timedelta = DEFAULT_TTL) -> tuple[ShareLink, str]:
    """A new link to a run's record and its token (shown once; the row keeps no copy).

    Raises:
        NotFound: no such run.
        NotAllowed: the lifetime is not between a minute and :data:`MAX_TTL`.
    """
    if session.get(Run, run_id) is None:
        raise NotFound(f"run {run_id} does not exist")
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise NotAllowed(f"a share link lives between a minute and {MAX_TTL.days} days")
    link = ShareLink(run_id=run_id, created_by=by, created_at=now, expires_at=now + ttl)
    session.add(link)
    session.flush()
    audit.append(session, [Fact("share_link_created", by, now,
                                data={"link": link.id, "expires_at": link.expires_at.isoformat()})],
                 run_id=run_id)
    return link, URLSafeSerializer(key, salt=SALT).dumps({"l": link.id})


def revoke_link(session: Session, run_id: int, link_id: int, *, by: str, now: datetime) -> None:
    """End a link now (audited).

    Raises:
        NotFound: the run has no such link.
    """
    link = session.get(ShareLink, link_id)
    if link is None or link.run_id != run_id:
        raise NotFound(f"run {run_id} has no share link {link_id}")
    if link.revoked_at is None:
        link.revoked_at = now
        link.revoked_by = by
        audit.append(session, [Fact("share_link_revoked", by, now, data={"link": link_id})],
                     run_id=run_id)


def links_of(session: Session, run_id: int) -> list[ShareLink]:
    """A run's links, newest first."""
    return list(session.execute(select(ShareLink).where(ShareLink.run_id == run_id)
                                .order_by(ShareLink.id.desc())).scalars())


def open_link(session: Session, key: bytes, token: str, *, now: datetime,
              viewer: str) -> ShareLink:
    """The live link a token names; the view is recorded in the run's audit trail.

    Raises:
        LinkRefused: altered, unknown, expired or revoked.
    """
    serializer = URLSafeSerializer(key, salt=SALT)
    try:
        data = serializer.loads(token)
    except BadSignature as exc:
        raise LinkRefused("This link is not valid.") from exc
    # base64 leaves spare bits in a signature's last character, so a token altered
    # there can still verify; only the one canonical spelling of a link is accepted.
    if not hmac.compare_digest(serializer.dumps(data), token):
        raise LinkRefused("This link is not valid.")
    link_id = data.get("l") if isinstance(data, dict) else None
    link = session.get(ShareLink, link_id) if isinstance(link_id, int) else None
    if link is None:
        raise LinkRefused("This link is not valid.")
    if link.revoked_at is not None:
        raise LinkRefused("This link has been revoked.")
    if link.expires_at <= now:
        raise LinkRefused("This link has expired.")
    audit.append(session, [Fact("shared_record_viewed", "share:" + str(link.id), now,
                                data={"link": link.id, "viewer": viewer[:200]})],
                 run_id=link.run_id)
    return link

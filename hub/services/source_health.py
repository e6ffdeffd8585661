"""Source health: a source whose credentials the vendor refused stops calling it.

An ``AuthFailed`` from a poll or a write marks the source ``auth_failed`` (logged once, at
error, on the transition). From then on its polls and note deliveries hold — no request
reaches the vendor, notes stay pending and lose no attempts — until the credentials
change (the source's config fingerprint differs: the next job tries again) or an admin
retries (``msphub connectors retry``, the dashboard's sources page). The first success
after that clears the state (logged once, at warning, on recovery). The state lives in
the database, so every worker, the CLI and the dashboard see the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from hub.core.states import SourceState
from hub.store.db import transaction
from hub.store.models import SourceHealth

log = structlog.get_logger()
RETRY = "retry"  # the fingerprint an admin's retry leaves: no config has it (sha256 hex)


@dataclass(frozen=True)
class Health:
    """What the hub knows about one source's credentials."""

    source: str
    state: SourceState
    reason: str | None = None
    since: datetime | None = None
    stale: bool = False  # the credentials changed since they failed: the next job tries

    @property
    def holding(self) -> bool:
        """True while jobs of this source must not call the vendor."""
        return self.state is SourceState.AUTH_FAILED and not self.stale


def health(session: Session, source: str, fingerprint: str) -> Health:
    """The source's health as its current config (``fingerprint``) sees it."""
    return from_row(source, session.get(SourceHealth, source), fingerprint)


def from_row(source: str, row: SourceHealth | None, fingerprint: str) -> Health:
    """The health a stored row (None: healthy) means for the current config."""
    if row is None:
        return Health(source, SourceState.HEALTHY)
    return Health(source, SourceState(row.state), row.reason, row.since,
                  stale=row.fingerprint != fingerprint)


def all_health(session: Session) -> dict[str, SourceHealth]:
    """Every source that is not healthy, by name (one statement, for status pages)."""
    return {row.source: row for row in session.execute(select(SourceHealth)).scalars()}


def holding(sessions: sessionmaker[Session], source: str, fingerprint: str) -> bool:
    """True when the source's jobs must hold (its credentials failed and did not change)."""
    with sessions() as session:
        return health(session, source, fingerprint).holding


def auth_failed(sessions: sessionmaker[Session], source: str, fingerprint: str, reason: str,
                now: datetime) -> bool:
    """Record that the vendor refused the credentials; True (and one error log) when this
    is news — the source was healthy, or failed before with other credentials."""
    reason = reason[:1000]
    with transaction(sessions) as session:
        row = session.get(SourceHealth, source, with_for_update=True)
        if row is not None and row.fingerprint == fingerprint:  # known; nothing new to say
            row.last_seen_at = now
            return False
        if row is None:
            session.add(SourceHealth(source=source, state=SourceState.AUTH_FAILED.value,
                                     reason=reason, fingerprint=fingerprint, since=now,
                                     last_seen_at=now))
        else:
            row.state, row.reason = SourceState.AUTH_FAILED.value, reason
            row.fingerprint = fingerprint
            row.since = row.last_seen_at = now
    log.error("source_auth_failed", source=source, reason=reason,
              hint="fix the credentials in config/connectors.yaml (or .env), then restart "
                   "or run `msphub connectors retry " + source + "`")
    return True


def succeeded(sessions: sessionmaker[Session], source: str) -> bool:
    """A call with the source's credentials worked: clear a failed state (True, one log)."""
    with transaction(sessions) as session:
        cleared = session.execute(delete(SourceHealth).where(SourceHealth.source == source)
                                  .returning(SourceHealth.since)).first()
    if cleared is None:
        return False
    log.warning("source_auth_recovered", source=source, failing_since=cleared[0].isoformat())
    return True


def retry(sessions: sessionmaker[Session], source: str, *, by: str) -> bool:
    """An admin asks for another try: the next job calls the vendor again (its success
    clears the state and logs the recovery; a new refusal marks it again). False when the
    source was not failing."""
    with transaction(sessions) as session:
        row = session.get(SourceHealth, source, with_for_update=True)
        if row is None:
            return False
        row.fingerprint = RETRY  # matches no config: the state is stale, jobs try again
    log.info("source_retry_requested", source=source, by=by)
    return True

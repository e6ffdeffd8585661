"""The services every entry point shares, built by ``hub.runtime.root``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.config.playbooks import PlaybookSource
from hub.core.calendars import Calendar
from hub.core.team import Team
from hub.services.directory import ClientDirectory
from hub.services.runs import RunService
from hub.settings import Settings


def utcnow() -> datetime:
    """The wall clock, in UTC (injected everywhere else)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class HubContext:
    """Database, configuration and the run service: what the CLI, API and workers share.

    Built only by :func:`hub.runtime.root.build_context`; everything else receives it.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    playbooks: PlaybookSource
    team: Team
    calendars: dict[str, Calendar]
    clients: ClientDirectory
    runs: RunService
    clock: Callable[[], datetime] = utcnow

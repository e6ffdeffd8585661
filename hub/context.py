"""The hub's wiring: one object that entry points build from Settings and hand around."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.calendars import Calendar, load_calendars
from hub.checklists.loader import PlaybookLibrary, load_library, playbook_files
from hub.errors import ConfigError
from hub.notes import NEW_NOTES
from hub.runs import NoteSink, RunService, _no_notes
from hub.settings import Settings
from hub.store.db import make_engine, make_sessionmaker
from hub.team import Team, load_team

log = structlog.get_logger()


def utcnow() -> datetime:
    """The wall clock, in UTC (injected everywhere else)."""
    return datetime.now(UTC)


def _fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    if not directory.exists():
        return ()
    return tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in playbook_files([directory])
    )


@dataclass
class PlaybookSource:
    """The playbook library on disk, reloaded when its files change.

    A broken edit is logged and the last good library stays in use; runs already
    launched keep the version they pinned regardless.
    """

    directory: Path
    _library: PlaybookLibrary = field(default_factory=PlaybookLibrary)
    _fingerprint: tuple[tuple[str, int, int], ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._library = load_library(self.directory)
        self._fingerprint = _fingerprint(self.directory)

    def __call__(self) -> PlaybookLibrary:
        """The current library (cheap: a directory stat when nothing changed)."""
        fp = _fingerprint(self.directory)
        if fp != self._fingerprint:
            with self._lock:
                if fp != self._fingerprint:
                    self._fingerprint = fp
                    try:
                        self._library = load_library(self.directory)
                        log.info("playbooks_reloaded", count=len(self._library))
                    except ConfigError as exc:
                        log.error("playbooks_reload_failed", file=exc.file, line=exc.line,
                                  reason=exc.message)
        return self._library


@dataclass
class HubContext:
    """Everything the CLI, API and workers share."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    playbooks: PlaybookSource
    team: Team
    calendars: dict[str, Calendar]
    runs: RunService
    clock: Callable[[], datetime] = utcnow
    # set by the runtime: sends delivery messages for notes a commit wrote
    dispatch_notes: Callable[[list[int]], None] | None = None

    @classmethod
    def build(cls, settings: Settings, *, clock: Callable[[], datetime] = utcnow,
              notes: NoteSink = _no_notes, engine: Engine | None = None) -> HubContext:
        """Wire the hub from settings.

        Raises:
            ConfigError: a playbook, team or calendar file is invalid.
        """
        engine = engine or make_engine(settings.database_url)
        calendars = load_calendars(settings.config_dir / "calendars.yaml")
        team = load_team(settings.config_dir / "team.yaml", calendars)
        playbooks = PlaybookSource(settings.playbooks_dir)
        runs = RunService(library=playbooks, team=team, calendars=calendars, clock=clock,
                          notes=notes)
        ctx = cls(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                  playbooks=playbooks, team=team, calendars=calendars, runs=runs, clock=clock)
        event.listen(ctx.sessions, "after_commit", ctx._dispatch_new_notes)
        return ctx

    def _dispatch_new_notes(self, session: Session) -> None:
        """After a commit, hand the outbox notes it wrote to the delivery queue."""
        if session.in_nested_transaction():
            return  # SQLAlchemy also calls after_commit when a savepoint is released
        notes = session.info.pop(NEW_NOTES, None)
        if not notes or self.dispatch_notes is None:
            return
        ids = [n.id for n in notes if inspect(n).persistent and n.status == "pending"]
        if ids:
            self.dispatch_notes(ids)

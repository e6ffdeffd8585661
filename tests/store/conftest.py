"""Store fixtures: a controllable clock and a migrated hub over the per-test database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy.engine import Engine

from hub.runtime.root import build_context
from hub.services.context import HubContext
from hub.settings import Settings
from hub.store.db import make_engine
from hub.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]

# Friday 13 June 2025, 15:00 in New York (ACME's us-east calendar), 20:00 in London.
FRIDAY_AFTERNOON = datetime(2025, 6, 13, 19, 0, tzinfo=UTC)

NEW_STARTER = dedent(
    """\
    id: new-starter
    title: New starter
    version: 1
    inputs:
      - id: starter
        title: Starter's name
      - id: laptop
        title: Needs a laptop
        type: boolean
        default: true
    steps:
      - id: intake
        title: Check the request
        role: service-desk
        due: 8 business hours
      - id: build-laptop
        title: Build the laptop
        role: engineer
        after: [intake]
        when: {laptop: true}
        due: 3 business days
      - id: review
        title: Manager review
        assignee: dan
        after: [intake]
        skippable: manager
        due: 2 days
      - id: handover
        title: Hand over
        role: engineer
        after: [build-laptop, review]
        skippable: false
        due: 4h
    """
)

SINGLE = dedent(
    """\
    id: quick-check
    title: Quick check
    version: 1
    steps:
      - id: check
        title: Check it
        role: security
        due: 1h
    """
)


class Clock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@dataclass
class Hub:
    """A migrated hub over the test database, with its clock and playbook directory."""

    ctx: HubContext
    clock: Clock
    playbooks_dir: Path
    settings: Settings

    def rebuild(self) -> HubContext:
        """A new context on the same database (nothing cached in memory)."""
        return build_context(self.settings, clock=self.clock, engine=self.ctx.engine)


def hub_settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings over ``db_url``, a playbook directory in tmp_path and the repository's config."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / "new-starter.yaml").write_text(NEW_STARTER, encoding="utf-8")
    (playbooks / "quick-check.yaml").write_text(SINGLE, encoding="utf-8")
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        playbooks_dir=playbooks,
        config_dir=REPO / "config",
        mappings_dir=tmp_path / "mappings",
    )


@pytest.fixture
def migrated_engine(db_url: str) -> Iterator[Engine]:
    """An engine over the fresh test database, migrated to head, disposed afterwards."""
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(FRIDAY_AFTERNOON)


@pytest.fixture
def hub(db_url: str, tmp_path: Path, clock: Clock, migrated_engine: Engine) -> Hub:
    """The hub wired over the migrated test database with a frozen, movable clock."""
    settings = hub_settings(db_url, tmp_path)
    ctx = build_context(settings, clock=clock, engine=migrated_engine)
    return Hub(ctx=ctx, clock=clock, playbooks_dir=settings.playbooks_dir, settings=settings)



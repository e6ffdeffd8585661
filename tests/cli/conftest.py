"""Fixtures for the CLI tests: a temporary SQLite hub driven through typer's CliRunner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent

import pytest
import time_machine
from typer.testing import CliRunner, Result

from hub.cli.app import app  # importing hub.cli registers every sub-command
from hub.settings import get_settings

REPO = Path(__file__).resolve().parents[2]
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
      - id: review
        title: Manager review
        assignee: dan
        after: [intake]
        skippable: manager
      - id: handover
        title: Hand over
        role: engineer
        after: [build-laptop, review]
        skippable: false
        due: 4h
    """
)


@dataclass
class Cli:
    """Runs msphub commands against a temporary hub."""

    runner: CliRunner
    db_file: Path
    playbooks_dir: Path
    clock: time_machine.Coordinates

    def __call__(self, *args: str) -> Result:
        get_settings.cache_clear()
        return self.runner.invoke(app, list(args))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """A temporary SQLite hub with a one-playbook library, the repository's config, frozen time."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "new-starter.yaml").write_text(NEW_STARTER, encoding="utf-8")
    db_file = tmp_path / "data" / "msphub.db"
    monkeypatch.setenv("MSPHUB_DATABASE_URL", f"sqlite:///{db_file.as_posix()}")
    monkeypatch.setenv("MSPHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MSPHUB_PLAYBOOKS_DIR", str(playbooks))
    monkeypatch.setenv("MSPHUB_CONFIG_DIR", str(REPO / "config"))
    monkeypatch.setenv("MSPHUB_MAPPINGS_DIR", str(tmp_path / "mappings"))
    monkeypatch.setenv("MSPHUB_LOG_FORMAT", "json")
    monkeypatch.setenv("MSPHUB_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("COLUMNS", "250")  # rich reads it on every print: no wrapped tables
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's working directory
    get_settings.cache_clear()
    with time_machine.travel(FRIDAY_AFTERNOON, tick=False) as clock:
        yield Cli(CliRunner(), db_file, playbooks, clock)
    get_settings.cache_clear()


def one_line(text: str) -> str:
    """Collapse whitespace, so assertions do not depend on where rich wrapped a line."""
    return re.sub(r"\s+", " ", text)



"""`msphub mappings replay`: stored inbox events against edited rules, before they go live."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli.app import app
from hub.core.events import Event
from hub.services.inbox import add_events
from hub.settings import Settings, get_settings
from hub.store.db import make_engine, make_sessionmaker, transaction
from hub.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "mappings" / "samples"


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database holding every shipped sample event as received just now."""
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    for key, value in {"MSPHUB_DATABASE_URL": db, "MSPHUB_CONFIG_DIR": str(REPO / "config"),
                       "MSPHUB_PLAYBOOKS_DIR": str(REPO / "playbooks"),
                       "MSPHUB_MAPPINGS_DIR": str(REPO / "mappings"), "COLUMNS": "250"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    engine = make_engine(Settings().database_url)
    upgrade(engine)
    events = [Event.model_validate(json.loads(p.read_text())) for p in sorted(SAMPLES.iterdir())]
    with transaction(make_sessionmaker(engine)) as session:
        add_events(session, events, via="webhook", now=datetime.now(UTC))
    engine.dispose()
    return tmp_path


def test_replay_of_the_live_rules_changes_nothing(hub_env: Path) -> None:
    """Replaying against the live mappings reports no difference."""
    result = CliRunner().invoke(app, ["mappings", "replay", "--since", "1d"])
    assert result.exit_code == 0, result.output
    assert f"replayed {len(list(SAMPLES.iterdir()))} events" in result.output
    assert "no change" in result.output


def test_replay_shows_what_an_edit_would_change(hub_env: Path) -> None:
    """Disabling the leaver rule in a candidate copy shows the launches it would drop."""
    # Given a candidate mappings directory where the leaver rule is switched off
    candidate = hub_env / "candidate"
    shutil.copytree(REPO / "mappings", candidate)
    rules = candidate / "user-offboarding.yaml"
    text = rules.read_text()
    rules.write_text(text.replace("    on: ticket.created", "    enabled: false\n"
                                  "    on: ticket.created", 1))
    # When replaying the stored events against it
    result = CliRunner().invoke(app, ["mappings", "replay", str(candidate), "--since", "7d"])
    # Then the offboarding launches that would no longer happen are listed
    assert result.exit_code == 0, result.output
    assert "would no longer" in result.output and "user-offboarding" in result.output
    assert "launch: +0/-" in result.output


def test_replay_of_a_broken_candidate_names_file_and_line(hub_env: Path) -> None:
    """A candidate with an error is refused with file and line, as `check` would."""
    candidate = hub_env / "broken"
    shutil.copytree(REPO / "mappings", candidate)
    (candidate / "zz.yaml").write_text("rules:\n  - id: x\n    on: ticket.nope\n"
                                       "    comment: {text: hi}\n")
    result = CliRunner().invoke(app, ["mappings", "replay", str(candidate)])
    assert result.exit_code == 1
    assert "zz.yaml:3" in result.output

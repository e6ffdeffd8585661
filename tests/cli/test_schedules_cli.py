"""``msphub schedules list`` and ``msphub schedules preview``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, Cli, one_line

SCHEDULES = """\
schedules:
  - playbook: monthly-maintenance
    clients: {tag: managed-services}
    inputs: {has_servers: false}
  - name: quarterly-uk
    playbook: quarterly-security-review
    every: first Monday of each quarter at 08:00
    timezone: Europe/London
    clients: [acme]
    catch_up: none
"""
CLIENTS = """\
clients:
  acme: {name: Acme, tags: [managed-services]}
  globex: {name: Globex, calendar: us-east, tags: [managed-services]}
  initech: {name: Initech}
"""


@pytest.fixture
def hub(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI hub with the shipped playbooks, three directory clients and two schedules."""
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "connectors.yaml").unlink(missing_ok=True)
    (config / "schedules.yaml").write_text(SCHEDULES)
    (config / "clients.yaml").write_text(CLIENTS)
    monkeypatch.setenv("MSPHUB_CONFIG_DIR", str(config))
    monkeypatch.setenv("MSPHUB_PLAYBOOKS_DIR", str(REPO / "playbooks"))
    return cli


def test_list_shows_rule_zone_clients_and_next_launch(hub: Cli) -> None:
    """Each schedule with its friendly form, RRULE, zones, clients and next launch (UTC)."""
    result = hub("schedules", "list")
    assert result.exit_code == 0, result.output
    text = one_line(result.output)
    # frozen at Friday 13 June 2025 19:00 UTC: next 1st of the month is 1 July, 09:00 BST
    assert "monthly-maintenance" in text and "monthly on day 1 at 09:00" in text
    assert "RRULE:FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9" in text
    assert "tag: managed-services (2)" in text
    assert "America/New_York" in text  # globex's calendar; acme's is the default (London)
    assert "2025-07-01 08:00" in text
    assert "quarterly-uk" in text and "Europe/London" in text and "none" in text
    assert "2025-07-07 07:00" in text  # first Monday of Q3, 08:00 BST


def test_preview_lists_the_next_launches_and_for_whom(hub: Cli) -> None:
    """--next N shows N launch instants, local times and the clients of each."""
    result = hub("schedules", "preview", "monthly-maintenance", "--next", "3")
    assert result.exit_code == 0, result.output
    rows = [one_line(line) for line in result.output.splitlines() if "│" in line
            and line.strip("│ ")[:1].isdigit()]
    assert len(rows) == 3  # three instants: London and New York launch at different ones
    assert "2025-07-01 08:00" in rows[0] and "2025-07-01 09:00 BST" in rows[0]
    assert "acme" in rows[0] and "globex" not in rows[0]
    assert "2025-07-01 13:00" in rows[1] and "09:00 EDT" in rows[1] and "globex" in rows[1]
    assert "2025-08-01 08:00" in rows[2]


def test_preview_of_an_unknown_schedule_names_the_known_ones(hub: Cli) -> None:
    """A mistyped name fails with exit code 1 and lists the schedules there are."""
    result = hub("schedules", "preview", "monthly")
    assert result.exit_code == 1
    assert "no schedule 'monthly'" in one_line(result.output)
    assert "monthly-maintenance, quarterly-uk" in one_line(result.output)

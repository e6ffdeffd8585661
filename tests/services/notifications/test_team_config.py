"""team.yaml's notification settings: channels per person and kind, quiet hours across
midnight and time zones, who hears of what; mistakes are refused with their place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.config.team import load_team
from hub.core.team import Channel, QuietHours, Team
from hub.errors import ConfigError

TEAM = """\
members:
  - id: alice
    name: Alice
    email: alice@msp.example
    notify:
      channels: [email, teams]
      kinds: {completed: [], overdue: [email, teams, slack]}
      teams: ${ALICE_TEAMS}
      slack: ${ALICE_SLACK}
  - {id: bob, name: Bob}
  - {id: max, name: Max}
roles:
  service-manager: alice
  dispatcher: bob
clients:
  globex:
    roles: {service-manager: max}
notifications:
  send:
    completed: [manager, "person:bob"]
"""


def test_channels_webhooks_and_recipients(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(TEAM)
    team = load_team(path, env={"ALICE_TEAMS": "https://teams.example/hook",
                                "ALICE_SLACK": "https://hooks.slack.example/x"})
    alice = team.member("alice")
    assert alice is not None
    assert alice.notify.channels_for("assigned") == (Channel.EMAIL, Channel.TEAMS)
    assert alice.notify.channels_for("completed") == ()
    assert alice.notify.teams is not None
    assert alice.notify.teams.get_secret_value() == "https://teams.example/hook"
    assert "teams.example" not in repr(alice)  # a webhook URL is a secret
    assert team.notifications.send["completed"] == ("manager", "person:bob")
    assert team.notifications.send["overdue"] == ("assignee", "manager")  # default kept
    assert team.recipients(["manager", "role:dispatcher", "assignee"], client_id="acme",
                           assignee="bob") == ["alice", "bob"]
    assert team.recipients(["manager"], client_id="globex") == ["max"]


@pytest.mark.parametrize(("text", "message"), [
    ("notifications: {send: {overdue: [boss]}}", "unknown recipient 'boss'"),
    ("notifications: {send: {overdue: ['person:zed']}}", "unknown member 'zed'"),
    ("members: [{id: a, name: A, notify: {channels: [pager]}}]", "notify.channels"),
    ("members: [{id: a, name: A, notify: {quiet_hours: {from: '19:00', to: '07:00', "
     "timezone: Mars/Base}}}]", "unknown time zone"),
])
def test_mistakes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_team(path, env={})


@pytest.mark.parametrize(("now", "until"), [
    (datetime(2026, 7, 1, 17, 59, tzinfo=UTC), None),  # 18:59 London (BST): not yet
    (datetime(2026, 7, 1, 18, 0, tzinfo=UTC), datetime(2026, 7, 2, 6, 30, tzinfo=UTC)),
    (datetime(2026, 7, 2, 3, 0, tzinfo=UTC), datetime(2026, 7, 2, 6, 30, tzinfo=UTC)),
    (datetime(2026, 7, 2, 6, 30, tzinfo=UTC), None),  # 07:30 local: over
    (datetime(2026, 1, 5, 23, 0, tzinfo=UTC), datetime(2026, 1, 6, 7, 30, tzinfo=UTC)),
])
def test_quiet_hours_cross_midnight_in_local_time(now: datetime,
                                                  until: datetime | None) -> None:
    quiet = QuietHours.model_validate({"from": "19:00", "to": "07:30",
                                       "timezone": "Europe/London"})
    assert quiet.until(now) == until


def test_no_file_means_email_to_the_assignee_and_manager() -> None:
    team = Team()
    assert team.notifications.manager_role == "service-manager"
    assert team.notifications.send["assigned"] == ("assignee",)

"""``msphub notifications test|list`` and ``msphub deadletters``: an admin checks the
channels, sees what was sent and what failed, and retries a dead notification."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from hub.cli.app import app
from hub.settings import Settings, get_settings
from tests.services.notifications.servers import Hooks, SMTPServer

Cli = Callable[..., Result]


@pytest.fixture
def cli(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Runs msphub commands against the fixtures' hub (its database, team and servers)."""
    s = hub_settings
    env = {"DATABASE_URL": s.database_url, "DATA_DIR": str(s.data_dir),
           "CONFIG_DIR": str(s.config_dir), "PLAYBOOKS_DIR": str(s.playbooks_dir),
           "MAPPINGS_DIR": str(s.mappings_dir), "PUBLIC_URL": s.public_url,
           "SMTP_HOST": s.smtp_host or "", "SMTP_PORT": str(s.smtp_port),
           "SMTP_USER": s.smtp_user or "", "SMTP_FROM": s.smtp_from,
           "SMTP_PASSWORD": s.smtp_password.get_secret_value() if s.smtp_password else "",
           "SMTP_CA_FILE": str(s.smtp_ca_file), "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
    for name, value in env.items():
        monkeypatch.setenv(f"MSPHUB_{name}", value)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(s.data_dir.parent)

    def run(*args: str) -> Result:
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args))

    return run


def test_a_test_message_reaches_every_channel(cli: Cli, smtp: SMTPServer,
                                              hooks: Hooks) -> None:
    """`notifications test alice` sends her a message on email, Teams and Slack now."""
    result = cli("notifications", "test", "alice")
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if not line.startswith("{")]  # logs
    assert said == ["email: sent", "teams: sent", "slack: sent"]
    [mail] = smtp.to("alice@msp.example")
    assert mail.message["Subject"].strip() == "[msphub] Test notification"
    assert hooks.bodies("/teams/alice") and hooks.bodies("/slack/alice")


def test_a_failing_channel_shows_and_can_be_retried(cli: Cli, hooks: Hooks) -> None:
    """A webhook that is gone: the test says so (exit 1), the list shows the dead letter,
    and `deadletters retry notification ID` sends it once the webhook is back."""
    hooks.answer["/teams/alice"] = 404
    result = cli("notifications", "test", "alice", "--channel", "teams")
    assert result.exit_code == 1
    assert "teams: dead: teams webhook answered 404" in result.output
    listed = cli("notifications", "list", "--status", "dead")
    assert "[msphub] Test notification" in listed.output and "alice" in listed.output
    dead = cli("deadletters", "list")
    match = re.search(r"notification\W+(\d+)\W+notify teams → alice: \[msphub\] Test",
                      dead.output)
    assert match, dead.output
    hooks.answer.pop("/teams/alice")
    retried = cli("deadletters", "retry", "notification", match[1])
    assert retried.exit_code == 0, retried.output
    assert "pending again" in retried.output


def test_an_unknown_member_is_refused(cli: Cli) -> None:
    """A name outside team.yaml is refused with the reason."""
    result = cli("notifications", "test", "zed")
    assert result.exit_code == 1 and "not a member of the team" in result.output

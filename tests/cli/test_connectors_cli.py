"""`msphub connectors list|status|register-webhooks` against the ConnectWise sandbox."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from connectors.budget import make_budget
from connectors.connectwise.sandbox import SandboxServer
from hub.cli.app import app
from hub.runtime.root import build_context, configured_sources
from hub.services import source_health
from hub.settings import get_settings
from hub.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
sources:
  cw-test:
    vendor: connectwise
    poll: {{interval: 1m}}
    requests_per_minute: 120
    config:
      site: {site}
      company_id: {company}
      public_key: {public}
      private_key: ${{CW_TEST_PRIVATE_KEY}}
      client_id: {client_id}
      webhook_secret: ${{CW_TEST_WEBHOOK_SECRET}}
"""


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    cfg = sandbox.connector_config()
    (config / "connectors.yaml").write_text(CONFIG.format(
        site=cfg["site"], company=cfg["company_id"], public=cfg["public_key"],
        client_id=cfg["client_id"]))
    monkeypatch.setenv("CW_TEST_PRIVATE_KEY", cfg["private_key"])
    monkeypatch.setenv("CW_TEST_WEBHOOK_SECRET", cfg["webhook_secret"])
    monkeypatch.setenv("MSPHUB_CONFIG_DIR", str(config))
    monkeypatch.setenv("MSPHUB_PLAYBOOKS_DIR", str(REPO / "playbooks"))
    monkeypatch.setenv("MSPHUB_MAPPINGS_DIR", str(REPO / "mappings"))
    monkeypatch.setenv("MSPHUB_DATABASE_URL", f"sqlite:///{tmp_path / 'hub.db'}")
    monkeypatch.setenv("MSPHUB_PUBLIC_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    return config


def test_list_shows_plugins_and_instances(env: Path) -> None:
    """Installed plugins come from their manifests; instances from the config file."""
    result = CliRunner().invoke(app, ["connectors", "list"])
    assert result.exit_code == 0, result.output
    assert "ConnectWise PSA" in result.output and "webhook_registrar" in result.output
    assert "cw-test" in result.output and "0:01:00" in result.output


def test_register_webhooks_is_idempotent_and_removable(env: Path,
                                                       sandbox: SandboxServer) -> None:
    """Registering twice leaves one callback per type; --remove deletes them."""
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["connectors", "register-webhooks", "cw-test"])
        assert result.exit_code == 0, result.output
        assert "http://127.0.0.1:9999/webhooks/cw-test" in result.output
    callbacks = sandbox.sandbox.callbacks()
    assert sorted(c["type"] for c in callbacks) == ["agreement", "ticket"]
    assert all(c["url"].startswith("http://127.0.0.1:9999/webhooks/cw-test") for c in callbacks)
    result = runner.invoke(app, ["connectors", "register-webhooks", "cw-test", "--remove"])
    assert result.exit_code == 0 and "removed 2" in result.output
    assert sandbox.sandbox.callbacks() == []


def test_status_shows_the_budget_and_pause_the_hub_sees(
        env: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Redis the budget and the vendor's pause are the hub's shared state: a fresh
    instance has its whole per-minute budget left, and a pause set by a worker shows."""
    monkeypatch.setenv("MSPHUB_REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    make_budget("cw-test", 120, redis_client=client).pause(90)  # a worker's 429
    result = CliRunner().invoke(app, ["connectors", "status"])
    client.close()
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "cw-test" in line)
    assert "120" in row and re.search(r"\b(8\d|90)s\b", row), row


def test_status_without_redis_does_not_show_its_own_budget(env: Path) -> None:
    """Without Redis the CLI cannot see the hub's in-memory budget, and says so instead
    of printing its own untouched one."""
    result = CliRunner().invoke(app, ["connectors", "status"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "cw-test" in line)
    assert "120" not in row and "n/a" in row
    assert "/metrics" in result.output


def test_unknown_instance_is_a_clear_error(env: Path) -> None:
    """Naming an instance that is not configured lists the configured ones."""
    result = CliRunner().invoke(app, ["connectors", "register-webhooks", "nope"])
    assert result.exit_code == 1
    assert "no instance named 'nope' (configured: cw-test)" in result.output


def test_missing_secret_names_file_and_key(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset ${VAR} is a ConfigError naming the file, line and key."""
    monkeypatch.delenv("CW_TEST_PRIVATE_KEY")
    result = CliRunner().invoke(app, ["connectors", "list"])
    assert result.exit_code == 1
    assert "connectors.yaml:10" in result.output
    assert "CW_TEST_PRIVATE_KEY is not set" in result.output


def test_status_shows_refused_credentials_and_retry_lets_the_jobs_try(env: Path) -> None:
    """A source the vendor refused shows as such (since when, why); `connectors retry`
    lets its jobs call the vendor again, and says so when there is nothing to retry."""
    # Given the running hub recorded a 401 for cw-test with its current credentials
    sources = configured_sources(get_settings())
    ctx = build_context(get_settings())
    upgrade(ctx.engine)
    source_health.auth_failed(ctx.sessions, "cw-test", sources.get("cw-test").fingerprint,
                              "401 Unauthorized: bad API keys", datetime.now(UTC))
    sources.close()
    runner = CliRunner()
    # When an admin looks at the status
    status = runner.invoke(app, ["connectors", "status"])
    # Then the refusal and its reason show
    assert status.exit_code == 0, status.output
    row = next(line for line in status.output.splitlines() if "cw-test" in line)
    assert "refused since" in row and "bad API keys" in status.output
    # When they retry, the jobs may call the vendor again (shown as retrying)
    retry = runner.invoke(app, ["connectors", "retry", "cw-test"])
    assert retry.exit_code == 0 and "will call the vendor again" in retry.output
    assert "retrying" in runner.invoke(app, ["connectors", "status"]).output
    # And retrying what is not failing, or an unknown name, says so
    assert source_health.succeeded(ctx.sessions, "cw-test") is True
    again = runner.invoke(app, ["connectors", "retry", "cw-test"])
    assert again.exit_code == 0 and "nothing to retry" in again.output
    unknown = runner.invoke(app, ["connectors", "retry", "nope"])
    assert unknown.exit_code == 1 and "no instance named 'nope'" in unknown.output

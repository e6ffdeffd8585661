"""config/connectors.yaml: instances, budgets, disabled sources and errors with file/line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.services.sources import load_sources, parse_interval

REPO = Path(__file__).resolve().parents[1]
CW = """\
sources:
  cw:
    vendor: connectwise
{extra}    config:
      site: https://cw.example.com
      company_id: acme
      public_key: pub
      private_key: ${{CW_KEY}}
      client_id: 00000000-0000-4000-8000-000000000000
{config_extra}"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectors.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("extra", "config_extra", "budget"), [
    ("", "", 600),
    ("", "      requests_per_minute: 77\n", 77),
    ("    requests_per_minute: 30\n", "      requests_per_minute: 77\n", 30),
])
def test_budget_comes_from_the_source_then_the_connector(tmp_path: Path, extra: str,
                                                         config_extra: str,
                                                         budget: int) -> None:
    """The source-level budget wins; else the connector's own setting; else 600/min."""
    path = write(tmp_path, CW.format(extra=extra, config_extra=config_extra))
    sources = load_sources(path, env={"CW_KEY": "secret"})
    assert sources.get("cw").remaining_budget() == budget  # type: ignore[union-attr]


def test_disabled_sources_need_no_secrets(tmp_path: Path) -> None:
    """A disabled instance is skipped entirely (its ${VARS} need not be set)."""
    path = write(tmp_path, CW.format(extra="    enabled: false\n", config_extra=""))
    assert load_sources(path, env={}).items == {}


def test_the_shipped_example_loads_with_nothing_set() -> None:
    """config/connectors.yaml as shipped: every instance disabled, nothing required."""
    assert load_sources(REPO / "config" / "connectors.yaml", env={}).items == {}


@pytest.mark.parametrize(("text", "line", "message"), [
    (CW.format(extra="", config_extra=""), 8, "CW_KEY is not set"),
    ("sources:\n  x:\n    vendor: nope\n", 3, "nope"),
    ("sources:\n  x:\n    vendor: webhook\n    poll: {interval: soon}\n", 4, "invalid interval"),
    ("sources:\n  x:\n    vendor: webhook\n    config: {secret: short}\n", 4, "16 characters"),
    ("nonsense: 1\n", 1, "unknown top-level key"),
])
def test_errors_name_file_line_and_reason(tmp_path: Path, text: str, line: int,
                                          message: str) -> None:
    """Every mistake is a ConfigError pointing at the file and line."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sources(path, env={})
    assert info.value.file == str(path) and info.value.line == line
    assert message in str(info.value)


def test_intervals() -> None:
    """Poll intervals are seconds, minutes or hours."""
    assert parse_interval("30s").total_seconds() == 30
    assert parse_interval("5m").total_seconds() == 300
    assert parse_interval("1h").total_seconds() == 3600
    with pytest.raises(ValueError):
        parse_interval("5 minutes")


def test_budgets_are_shared_in_redis_per_namespace(tmp_path: Path, redis_url: str) -> None:
    """Two processes of one deployment share a budget; another namespace has its own."""
    import redis

    client = redis.Redis.from_url(redis_url)
    path = write(tmp_path, CW.format(extra="    requests_per_minute: 5\n", config_extra=""))
    env = {"CW_KEY": "secret"}
    first = load_sources(path, env=env, redis_client=client, namespace="prod").get("cw")
    second = load_sources(path, env=env, redis_client=client, namespace="prod").get("cw")
    other = load_sources(path, env=env, redis_client=client, namespace="staging").get("cw")
    assert first and second and other
    first.budget.acquire(2)  # type: ignore[union-attr]
    assert second.remaining_budget() == 3
    assert other.remaining_budget() == 5


def test_oauth_tokens_are_shared_by_the_workers_of_a_deployment(tmp_path: Path,
                                                                redis_url: str) -> None:
    """Two processes of one deployment (two loads of the file, one Redis) fetch one OAuth2
    token for a Datto RMM source between them; another namespace fetches its own."""
    import json

    import redis

    from connectors.datto_rmm.sandbox import SandboxServer

    client = redis.Redis.from_url(redis_url)
    with SandboxServer() as rmm:
        config = rmm.connector_config()
        path = write(tmp_path, json.dumps({"sources": {"datto": {
            "vendor": "datto-rmm", "poll": {"enabled": False}, "config": config}}}))
        loaded = [load_sources(path, env={}, redis_client=client, namespace=ns)
                  for ns in ("prod", "prod", "staging")]
        try:
            for sources in loaded:
                src = sources.get("datto")
                assert src is not None
                src.connector.sites()  # type: ignore[attr-defined]
            assert rmm.sandbox.token_requests == 2  # prod once (shared), staging once
        finally:
            for sources in loaded:
                sources.close()

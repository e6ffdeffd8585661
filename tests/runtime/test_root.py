"""The composition root: what build_context / build_runtime wire from Settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.runtime.root import build_runtime
from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_config_references_resolve_from_the_env_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`${VAR}` in connectors.yaml resolves from `.env` (the process environment wins)."""
    # Given a .env in the working directory and a source whose secret references it
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (config / "connectors.yaml").write_text(
        "sources:\n  tools:\n    vendor: webhook\n    config: {secret: '${TOOLS_SECRET}'}\n")
    (tmp_path / ".env").write_text("TOOLS_SECRET=from-the-env-file-0123456789\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOOLS_SECRET", raising=False)
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'hub.db'}",
                        config_dir=config, playbooks_dir=REPO / "playbooks",
                        mappings_dir=REPO / "mappings", data_dir=tmp_path / "data")
    # When the runtime is built, then the connector got the value from .env
    rt = build_runtime(settings)
    try:
        tools = rt.sources.get("tools")
        assert tools is not None
        assert tools.connector.config.secret.get_secret_value() == (  # type: ignore[attr-defined]
            "from-the-env-file-0123456789")
    finally:
        rt.stop()
    # And the process environment wins over the file
    monkeypatch.setenv("TOOLS_SECRET", "from-the-process-0123456789")
    rt = build_runtime(settings)
    try:
        assert rt.sources.get("tools").connector.config.secret.get_secret_value() == (  # type: ignore[union-attr]
            "from-the-process-0123456789")
    finally:
        rt.stop()

"""The ``msphub`` command line."""

from __future__ import annotations

from hub.cli import admin, demo, mappings, runs, worker  # noqa: F401  (registers commands)
from hub.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()

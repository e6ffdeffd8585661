"""The ``msphub`` command line."""

from __future__ import annotations

from hub.cli import (  # noqa: F401  (registers commands)
    admin,
    clients,
    connectors,
    demo,
    events,
    mappings,
    mappings_stats,
    notifications,
    runs,
    schedules,
    users,
    worker,
)
from hub.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()

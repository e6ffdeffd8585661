"""The root typer app and helpers shared by every command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from hub.errors import ConfigError, HubError
from hub.logging import configure_logging
from hub.runtime.process import Runtime
from hub.runtime.root import build_context, build_runtime, sync_clients
from hub.services.context import HubContext
from hub.settings import Settings, get_settings
from hub.store.migrate import upgrade

app = typer.Typer(
    name="msphub",
    help="msphub: PSA/RMM events drive live, auditable checklists for MSPs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error (no stack trace) and exit."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def settings() -> Settings:
    """Settings for this process, with logging configured once."""
    s = get_settings()
    configure_logging(s.log_format, s.log_level)
    return s


@contextmanager
def hub_errors() -> Iterator[None]:
    """Turn expected errors into one readable line and exit code 1."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc))
    except HubError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))


def context(*, migrate: bool = False) -> HubContext:
    """The database services, optionally with the schema brought up to date and
    ``config/clients.yaml`` applied."""
    s = settings()
    with hub_errors():
        ctx = build_context(s)
        if migrate:
            upgrade(ctx.engine)
            sync_clients(ctx)
    return ctx


@contextmanager
def runtime(*, rules: bool = False) -> Iterator[Runtime]:
    """The whole hub for a command that changes runs: the notes it writes go to the
    ticket (through the workers with Redis; right away in embedded mode, where no
    worker runs in this process). ``rules``: also load the mapping rules (a command
    that processes events here)."""
    s = settings()
    with hub_errors():
        rt = build_runtime(s, notes="inline", rules=rules)
        upgrade(rt.ctx.engine)
        sync_clients(rt.ctx)
    try:
        yield rt
    finally:
        rt.stop()

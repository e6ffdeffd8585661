"""The root typer app and helpers shared by every command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from hub.context import HubContext
from hub.errors import ConfigError, HubError
from hub.logging import configure_logging
from hub.settings import Settings, get_settings

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
    """Build the hub from settings, optionally bringing the database schema up to date."""
    s = settings()
    with hub_errors():
        ctx = HubContext.build(s)
    if migrate:
        from hub.store.migrate import upgrade

        upgrade(ctx.engine)
    return ctx

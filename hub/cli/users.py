"""``msphub users``: named dashboard users (argon2id password hashes, a role each)."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.table import Table

from hub.cli.app import app, context, hub_errors, out
from hub.services import users
from hub.services.tokens import Role
from hub.store.db import transaction

users_app = typer.Typer(help="Dashboard users who sign in with a password.",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")

STDIN = typer.Option(False, "--password-stdin",
                     help="Read the password from standard input (scripts) instead of a prompt.")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The sign-in name (unique)."),
    role: Role = typer.Option(..., "--role", help="viewer, technician, manager or admin."),
    password_stdin: bool = STDIN,
) -> None:
    """Create a user; the password is asked for (never an argument: shell history)."""
    password = _password(password_stdin)
    ctx = context(migrate=True)
    with hub_errors(), transaction(ctx.sessions) as session:
        users.add_user(session, name, role, password, now=ctx.clock())
    out.print(f"user '{escape(name)}' ({role.value}) created")


@users_app.command("passwd")
def users_passwd(
    name: str = typer.Argument(..., help="The user."),
    password_stdin: bool = STDIN,
) -> None:
    """Set a user's password; their open sessions end."""
    password = _password(password_stdin)
    ctx = context(migrate=True)
    with hub_errors(), transaction(ctx.sessions) as session:
        users.set_password(session, name, password, now=ctx.clock())
    out.print(f"password of '{escape(name)}' changed; their sessions have ended")


@users_app.command("list")
def users_list() -> None:
    """List users with their role and last sign-in."""
    ctx = context(migrate=True)
    table = Table("name", "role", "created", "last sign-in", "state")
    with ctx.sessions() as session:
        for user in users.list_users(session):
            table.add_row(escape(user.name), user.role, f"{user.created_at:%Y-%m-%d %H:%M}",
                          f"{user.last_login_at:%Y-%m-%d %H:%M}" if user.last_login_at else "—",
                          "disabled" if user.disabled_at else "active")
    out.print(table)

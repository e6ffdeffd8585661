"""``msphub notifications``: what people were (or will be) told, and a test message."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from hub.cli.app import app, context, fail, out
from hub.services.notification_delivery import send_test
from hub.store.models import Notification

notifications_app = typer.Typer(help="Email, Teams and Slack messages to the team.",
                                no_args_is_help=True)
app.add_typer(notifications_app, name="notifications")


@notifications_app.command("list")
def notifications_list(
    status: str | None = typer.Option(None, help="pending, sending, sent or dead"),
    recipient: str | None = typer.Option(None, help="a team member id"),
    limit: int = typer.Option(50, min=1, max=1000),
) -> None:
    """The newest notifications: kind, who, channel, state, attempts and last error."""
    ctx = context(migrate=True)
    stmt = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Notification.status == status)
    if recipient:
        stmt = stmt.where(Notification.recipient == recipient)
    with ctx.sessions() as session:
        found = list(session.execute(stmt).scalars())
    if not found:
        out.print("no notifications")
        return
    table = Table("id", "kind", "to", "channel", "status", "tries", "subject", "next / sent",
                  "last error")
    for n in found:
        when = n.sent_at or n.next_attempt_at
        table.add_row(str(n.id), n.kind, n.recipient, n.channel, n.status, str(n.attempts),
                      escape(n.subject), f"{when:%Y-%m-%d %H:%M}", escape(n.last_error or ""))
    out.print(table)


@notifications_app.command("test")
def notifications_test(
    member: str = typer.Argument(..., help="team member id (config/team.yaml)"),
    channel: list[str] | None = typer.Option(
        None, "--channel", help="email, teams or slack (repeat); default: theirs"),
) -> None:
    """Send a test message to one person now, to check SMTP and their webhooks."""
    ctx = context(migrate=True)
    if ctx.team.member(member) is None:
        fail(f"'{member}' is not a member of the team (config/team.yaml)")
    bad = [c for c in channel or [] if c not in ("email", "teams", "slack")]
    if bad:
        fail(f"unknown channel {bad[0]!r}: use email, teams or slack")
    rows = send_test(ctx, member, channel or None)
    if not rows:
        fail(f"{member} has no channel to be told on (config/team.yaml notify.channels)")
    failed = False
    for row in rows:
        failed |= row.status != "sent"
        detail = f": {row.last_error}" if row.last_error else ""
        out.print(escape(f"{row.channel}: {row.status}{detail}"))
    if failed:
        raise typer.Exit(1)

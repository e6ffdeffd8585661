"""``msphub clients``: the client directory — hub clients and the vendor records linked to them."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from hub.cli.app import app, context, fail, hub_errors, out
from hub.config.clients import OBJECT_TYPES
from hub.errors import HubError
from hub.store.db import transaction

clients_app = typer.Typer(help="Hub clients and their links to PSA companies and RMM sites.",
                          no_args_is_help=True)
app.add_typer(clients_app, name="clients")

ACTOR = typer.Option("user:cli", "--actor", help="Who is acting, recorded in the audit trail.")
TYPE_HELP = f"Vendor object type: {', '.join(OBJECT_TYPES)}."


def _check_type(object_type: str) -> None:
    if object_type not in OBJECT_TYPES:
        fail(f"type must be one of {', '.join(OBJECT_TYPES)}")


@clients_app.command("list")
def clients_list(
    tag: str = typer.Option(None, help="Only clients with this tag."),
    provisional: bool = typer.Option(False, "--provisional", help="Only provisional clients."),
) -> None:
    """List hub clients with their links."""
    ctx = context(migrate=True)
    table = Table("key", "name", "calendar", "tags", "links")
    with ctx.sessions() as session:
        rows = [r for r in ctx.clients.all(session, tag=tag)
                if not provisional or r.provisional]
        for row in rows:
            links = "\n".join(f"{x.source} {x.object_type} {x.vendor_id}" for x in row.links)
            key = escape(row.key) + (" [yellow](provisional)[/]" if row.provisional else "")
            table.add_row(key, escape(row.name or ""), row.calendar or "default",
                          escape(", ".join(row.tags or ())), escape(links) or "[dim]none[/]")
    if not rows:
        out.print("no clients (declare them in config/clients.yaml or `msphub clients add`)")
        return
    out.print(table)


@clients_app.command("show")
def clients_show(key: str = typer.Argument(..., help="Hub client key.")) -> None:
    """Show one client: settings, links and active runs."""
    ctx = context(migrate=True)
    with hub_errors(), ctx.sessions() as session:
        row = ctx.clients.get(session, key)
        out.print(f"[bold]{escape(row.key)}[/] {escape(row.name or '')}"
                  + (" [yellow](provisional)[/]" if row.provisional else ""))
        tags = ", ".join(row.tags or ()) or "-"
        out.print(f"calendar: {row.calendar or 'default'}   tags: {escape(tags)}")
        table = Table("source", "type", "vendor id", "vendor name", "linked by", "since")
        for x in row.links:
            table.add_row(escape(x.source), x.object_type, escape(x.vendor_id),
                          escape(x.vendor_name or ""), escape(x.created_by),
                          f"{x.created_at:%Y-%m-%d %H:%M}")
        out.print(table if row.links else "no links: events cannot reach this client yet")
        runs = ctx.runs.active_runs(session, key, None)
        out.print(f"active runs: {', '.join(f'#{r.id} {r.playbook_id}' for r in runs) or '-'}")


@clients_app.command("add")
def clients_add(
    key: str = typer.Argument(..., help="Hub client key (lower case, e.g. acme)."),
    name: str = typer.Option(None, help="Display name."),
    calendar: str = typer.Option(None, help="A calendars.yaml name."),
    tag: list[str] = typer.Option(None, "--tag", help="A tag (repeatable); replaces the tags."),
    actor: str = ACTOR,
) -> None:
    """Create a client, or change its name, calendar or tags."""
    ctx = context(migrate=True)
    if calendar and calendar not in ctx.calendars:
        fail(f"unknown calendar '{calendar}'; calendars.yaml defines "
             f"{', '.join(sorted(ctx.calendars))}")
    with hub_errors(), transaction(ctx.sessions) as session:
        ctx.clients.save(session, key, name=name, calendar=calendar, tags=tag or None, by=actor)
    out.print(f"client {key} saved")


@clients_app.command("link")
def clients_link(
    key: str = typer.Argument(..., help="Hub client key."),
    source: str = typer.Argument(..., help="Connector instance name (connectors.yaml)."),
    object_type: str = typer.Argument(..., metavar="TYPE", help=TYPE_HELP),
    vendor_id: str = typer.Argument(..., help="The vendor's id of the record."),
    name: str = typer.Option(None, help="The vendor's name of the record (for display)."),
    actor: str = ACTOR,
) -> None:
    """Link a PSA company or RMM site/organization to a client.

    Events from that record then belong to the client. Events that failed because the
    record was not linked can be replayed (`POST /api/events/{id}/replay`).
    """
    _check_type(object_type)
    ctx = context(migrate=True)
    try:
        with transaction(ctx.sessions) as session:
            ctx.clients.link(session, key, source, object_type, vendor_id, name=name, by=actor)
    except (HubError, ValueError) as exc:
        fail(getattr(exc, "reason", str(exc)))
    out.print(f"linked {source} {object_type} {vendor_id} to client {key}")


@clients_app.command("unlink")
def clients_unlink(
    source: str = typer.Argument(..., help="Connector instance name."),
    object_type: str = typer.Argument(..., metavar="TYPE", help=TYPE_HELP),
    vendor_id: str = typer.Argument(..., help="The vendor's id of the record."),
    actor: str = ACTOR,
) -> None:
    """Remove the link of a vendor record (its client and runs stay)."""
    _check_type(object_type)
    ctx = context(migrate=True)
    with hub_errors(), transaction(ctx.sessions) as session:
        key = ctx.clients.unlink(session, source, object_type, vendor_id, by=actor)
    out.print(f"unlinked {source} {object_type} {vendor_id} from client {key}")


@clients_app.command("unlinked")
def clients_unlinked() -> None:
    """Vendor records that events named but no client is linked to (newest first)."""
    ctx = context(migrate=True)
    with ctx.sessions() as session:
        items = ctx.clients.unlinked(session)
    if not items:
        out.print("every vendor client seen in events is linked")
        return
    table = Table("source", "type", "vendor id", "vendor name", "events", "last seen")
    for v in items:
        table.add_row(escape(v.source), escape(v.type), escape(v.id), escape(v.name or ""),
                      str(v.events),
                      f"{v.last_seen:%Y-%m-%d %H:%M}")
    out.print(table)
    out.print("link one with: msphub clients link <client> <source> <type> <vendor id>")


@clients_app.command("sync")
def clients_sync() -> None:
    """Apply config/clients.yaml now (the hub also does this when it starts)."""
    context(migrate=True)  # migrating applies the file
    out.print("config/clients.yaml applied")

"""``msphub clients``: the client directory — hub clients and the vendor records linked to them."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from hub.cli.app import app, context, err, fail, hub_errors, out, settings
from hub.config.clients import OBJECT_TYPES
from hub.core.linking.proposals import THRESHOLD, Proposal, Verdict
from hub.errors import HubError
from hub.runtime.root import configured_sources, redis_client_for
from hub.services.linking import (
    Listing,
    Suggestions,
    check,
    link_command,
    report_dict,
    suggestions,
    suggestions_dict,
)
from hub.services.sources import Sources
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


def _sources() -> Sources:
    s = settings()
    with hub_errors():
        return configured_sources(s, redis_client_for(s.redis_url))


def _print_errors(listings: list[Listing]) -> None:
    for x in listings:
        if x.error:
            err.print(f"[yellow]warning:[/] {escape(x.source)} could not be listed: "
                      f"{escape(x.error)}")


def _candidates(p: Proposal) -> str:
    if p.best is None:
        return "[dim]-[/]"
    cells = [f"{escape(p.best.client)} {p.best.confidence:.2f}"]
    cells += [f"[dim]or {escape(c.client)} {c.confidence:.2f}[/]" for c in p.alternatives]
    return "\n".join(cells)


@clients_app.command("suggest")
def clients_suggest(
    source: str = typer.Option(None, help="Only this source (connector instance name)."),
    kind: str = typer.Option(None, help="Only sources of this kind: rmm (sites, "
                             "organizations) or psa (companies)."),
    min_confidence: float = typer.Option(THRESHOLD, "--min-confidence", min=0.0, max=1.0,
                                         help="Confidence a proposal needs to be suggested."),
    show_all: bool = typer.Option(False, "--all", help="Also list records matching no client."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Propose hub clients for unlinked RMM sites/organizations (links nothing).

    Each source that can list its records (Datto RMM sites, …) is read now. A proposal
    is by name similarity (legal forms such as Ltd/Inc/GmbH, punctuation and "&" ignored)
    and by the vendor's hints (a Datto site's Autotask company linked to a client). Accept
    one with the `msphub clients link …` line it prints. Exit 1 when a source failed.
    """
    if kind not in (None, "rmm", "psa"):
        fail("kind must be rmm or psa")
    sources = _sources()
    ctx = context(migrate=True)
    try:
        with hub_errors(), ctx.sessions() as session:
            report = suggestions(session, ctx.clients, sources, only=source, kind=kind,
                                 threshold=min_confidence)
    finally:
        sources.close()
    failed = any(x.error for x in report.listings)
    if as_json:
        typer.echo(json.dumps(suggestions_dict(report), indent=2))
        raise typer.Exit(1 if failed else 0)
    _print_errors(report.listings)
    if not report.listings:
        what = f"{kind.upper()} source" if kind else "source"
        out.print(f"no configured {what} can list its records (config/connectors.yaml)")
    else:
        _print_suggestions(report, show_all=show_all)
    raise typer.Exit(1 if failed else 0)


def _print_suggestions(report: Suggestions, *, show_all: bool) -> None:
    """The proposals as a table, a summary line and the commands that accept them."""
    shown = [p for p in report.proposals if show_all or p.verdict is not Verdict.NONE]
    unmatched = sum(1 for p in report.proposals if p.verdict is Verdict.NONE)
    if shown:
        table = Table("source", "record", "verdict", "client (confidence)", "why")
        for p in shown:
            r = p.record
            note = report.provisional.get((r.source, r.type, r.id))
            record = f"{escape(r.name or '-')}\n[dim]{escape(r.type)} {escape(r.id)}[/]"
            if note:
                record += f"\n[dim]now provisional client {escape(note)}[/]"
            table.add_row(escape(r.source), record, _VERDICT_STYLE[p.verdict].format(p.verdict),
                          _candidates(p), escape("; ".join(p.best.reasons) if p.best else ""))
        out.print(table)
    linked = f"; {report.already_linked} already linked" if report.already_linked else ""
    more = ""
    if unmatched:
        more = f"; {unmatched} match no client" + ("" if show_all else " (--all lists them)")
    suggested = sum(p.verdict is Verdict.SUGGESTED for p in report.proposals)
    out.print(f"{len(report.proposals)} unlinked record(s){linked}; {suggested} suggested at "
              f"confidence ≥ {report.threshold:.2f}{more}")
    commands = [link_command(p) for p in report.proposals if p.verdict is Verdict.SUGGESTED]
    if commands:
        out.print("accept a suggestion with:")
        for command in commands:
            out.print(f"  {escape(command or '')}", highlight=False, soft_wrap=True)


_VERDICT_STYLE = {Verdict.SUGGESTED: "[green]{}[/]", Verdict.AMBIGUOUS: "[yellow]{}[/]",
                  Verdict.WEAK: "[dim]{}[/]", Verdict.NONE: "[dim]{}[/]"}


@clients_app.command("check")
def clients_check(
    source: str = typer.Option(None, help="Only this source (connector instance name)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Report links the vendor now shows differently: renamed, deleted or moved.

    Renamed: the record's name differs from the one recorded at link time. Deleted: the
    vendor no longer lists it. Moved: its PSA hint (a Datto site's Autotask company) is
    now linked to another client. Changes nothing. Exit 1 when there is drift or a source
    could not be read.
    """
    sources = _sources()
    ctx = context(migrate=True)
    try:
        with hub_errors(), ctx.sessions() as session:
            report = check(session, ctx.clients, sources, only=source)
    finally:
        sources.close()
    failed = any(x.error for x in report.listings)
    code = 1 if failed or report.drift else 0
    if as_json:
        typer.echo(json.dumps(report_dict(report), indent=2))
        raise typer.Exit(code)
    _print_errors(report.listings)
    if report.drift:
        table = Table("client", "source", "type", "vendor id", "drift", "detail")
        for d in report.drift:
            table.add_row(escape(d.client), escape(d.link.source), escape(d.link.type),
                          escape(d.link.id), f"[yellow]{d.kind}[/]", escape(d.detail))
        out.print(table)
    else:
        out.print(f"{report.checked} link(s) checked: no drift")
    if report.unchecked_sources:
        out.print(f"[dim]not checked (source not configured, failed or cannot list "
                  f"records): {escape(', '.join(report.unchecked_sources))}[/]")
    raise typer.Exit(code)

"""``msphub schedules``: what recurring playbooks will launch, when, and for whom."""

from __future__ import annotations

import typer
from rich.table import Table

from hub.cli.app import app, context, fail, hub_errors, out
from hub.config.schedules import ScheduleEntry
from hub.core.recurrence import Recurrence
from hub.services.context import HubContext
from hub.services.scheduled_launches import check, preview, targets

schedules_app = typer.Typer(help="Recurring launches (config/schedules.yaml).",
                            no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")


def _loaded(ctx: HubContext) -> list[tuple[ScheduleEntry, Recurrence]]:
    with hub_errors():
        entries = check(ctx)
        library = ctx.playbooks()
        return [(e, e.recurrence(library.get(e.playbook).schedule)) for e in entries]


@schedules_app.command("list")
def schedules_list() -> None:
    """Every schedule: its rule, time zone, clients, catch-up policy and next launch."""
    ctx = context(migrate=True)
    now = ctx.clock()
    table = Table("schedule", "playbook", "when", "rule", "time zone", "clients", "catch-up",
                  "next launch (UTC)")
    for entry, rule in _loaded(ctx):
        planned = preview(ctx, entry, rule, after=now, count=1)
        who = targets(ctx, entry)
        zones = sorted({str(t.tz) for t in who})
        table.add_row(entry.label, entry.playbook, rule.source, rule.text.replace("\n", " "),
                      entry.timezone or f"client calendar ({', '.join(zones) or '-'})",
                      f"{entry.describe_clients()} ({len(who)})",
                      entry.catch_up.value,
                      f"{planned[0].at:%Y-%m-%d %H:%M}" if planned else "-")
    if not table.rows:
        out.print("No schedules: config/schedules.yaml lists none.")
        return
    out.print(table)


@schedules_app.command("preview")
def schedules_preview(
    name: str = typer.Argument(..., help="Schedule name (see `msphub schedules list`)."),
    next_: int = typer.Option(12, "--next", min=1, max=500, help="How many launches to show."),
) -> None:
    """The next launches of one schedule: when (UTC and local) and for which clients."""
    ctx = context(migrate=True)
    found = {entry.label: (entry, rule) for entry, rule in _loaded(ctx)}
    if name not in found:
        fail(f"no schedule '{name}'; known: {', '.join(sorted(found)) or 'none'}")
    entry, rule = found[name]
    planned = preview(ctx, entry, rule, after=ctx.clock(), count=next_)
    out.print(f"[bold]{entry.label}[/]: {entry.playbook} {rule.source} "
              f"(catch-up: {entry.catch_up.value})")
    if not planned:
        out.print("Nothing will launch: no clients match, or the rule has ended.")
        return
    table = Table("#", "launch (UTC)", "local time", "clients")
    for i, item in enumerate(planned, 1):
        local = sorted({f"{t:%Y-%m-%d %H:%M %Z}" for t in item.local.values()})
        table.add_row(str(i), f"{item.at:%Y-%m-%d %H:%M}", ", ".join(local),
                      ", ".join(item.clients))
    out.print(table)

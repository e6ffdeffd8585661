"""``msphub mappings stats``: per rule, what it matched, failed and would have done in a
window of stored events, and why it missed the others ("why didn't my rule fire?")."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from hub.cli.app import context, out
from hub.cli.mappings import mappings_app, parse_span
from hub.cli.stored_events import empty_inbox_message
from hub.config.mappings import load_rules
from hub.config.playbooks import PlaybookLibrary
from hub.core.mapping.engine import RuleSet, explain
from hub.errors import ConfigError
from hub.services.directory import hub_ref
from hub.services.inbox import to_event
from hub.services.rule_stats import Totals, add_near_misses, add_result, stored_rows


def _rules_on_disk(mappings_dir: Path, library: PlaybookLibrary
                   ) -> tuple[RuleSet | None, str | None]:
    """The rules on disk (for their modes and the rules that never came up), or why not."""
    try:
        return load_rules(mappings_dir, library), None
    except ConfigError as exc:
        return None, str(exc)


def _modes(rules: RuleSet | None) -> dict[str, str]:
    if rules is None:
        return {}
    return {r.id: ("off" if not r.rule.enabled else r.rule.mode) for r in rules.rules}


def _as_json(totals: Totals, modes: dict[str, str], since: str, top: int) -> str:
    ids = list(dict.fromkeys([*modes, *sorted(totals.rules)]))
    return json.dumps({"since": since, "events": totals.events, "rules": [
        {"rule_id": rule_id, "mode": modes.get(rule_id, "(not on disk)"),
         "matched": totals.of(rule_id).matched, "failed": totals.of(rule_id).failed,
         "would_have": totals.of(rule_id).would_have,
         "near_misses": [{"reason": r, "count": n} for r, n in totals.of(rule_id).top(top)]}
        for rule_id in ids]}, indent=2)


@mappings_app.command()
def stats(
    since: str = typer.Option("7d", help="How far back: 12h, 7d, 2w."),
    top: int = typer.Option(3, min=1, max=20, help="Near-miss reasons shown per rule."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    limit: int = typer.Option(20_000, min=1, help="Newest events of the window looked at."),
) -> None:
    """Per rule: events matched, failed and (shadow rules) would have acted on, over the
    stored events of a window; and its most frequent near-miss reasons, from a dry run
    of those events against the rules on disk."""
    window = parse_span(since)
    ctx = context(migrate=True)
    empty = empty_inbox_message(ctx)
    if empty is not None:
        out.print(empty)
        return
    rules, problem = _rules_on_disk(ctx.settings.mappings_dir, ctx.playbooks())
    totals = Totals()
    with ctx.sessions() as session:
        clients = {c.key: hub_ref(c) for c in ctx.clients.all(session)}
        for row in stored_rows(session, since=ctx.clock() - window, limit=limit):
            add_result(totals, row.result, near_misses=rules is None)
            if rules is not None:
                event = to_event(row)
                if row.hub_client in clients:
                    event = event.model_copy(update={"hub_client": clients[row.hub_client]})
                add_near_misses(totals, explain(rules, event, trace=True).near_misses)
    modes = _modes(rules)
    if as_json:
        typer.echo(_as_json(totals, modes, since, top))
        return
    if problem:
        out.print(f"[yellow]the mapping files on disk are invalid[/] ({escape(problem)}); "
                  "showing the rules the stored events name")
    table = Table("rule", "mode", "matched", "failed", "would have", "top near misses")
    for rule_id in dict.fromkeys([*modes, *sorted(totals.rules)]):
        figures = totals.of(rule_id)
        misses = "\n".join(f"{n} x {reason}" for reason, n in figures.top(top))
        table.add_row(escape(rule_id), modes.get(rule_id, "(not on disk)"),
                      str(figures.matched), str(figures.failed), str(figures.would_have),
                      escape(misses or "-"))
    out.print(f"{totals.events} events in the last {since}")
    out.print(table)

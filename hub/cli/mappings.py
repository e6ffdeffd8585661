"""``msphub mappings``: the mapping CLI, plus ``replay`` over the stored inbox."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import typer
from sqlalchemy import select

from hub.cli.app import app, context, fail, out
from hub.cli.mapping_files import app as mappings_app
from hub.cli.mapping_files import describe_action
from hub.config.mappings import load_rules
from hub.core.mapping.replay import diff_actions
from hub.errors import ConfigError
from hub.services.inbox import to_event
from hub.store.models import InboxEvent

app.add_typer(mappings_app, name="mappings")
_SPAN = re.compile(r"^(\d+)\s*([hdw])$")


def parse_span(text: str) -> timedelta:
    """``12h``, ``7d``, ``2w`` → timedelta."""
    match = _SPAN.match(text.strip())
    if not match:
        raise typer.BadParameter("use a number and h, d or w, e.g. 7d")
    amount, unit = int(match[1]), match[2]
    return timedelta(hours=amount) * {"h": 1, "d": 24, "w": 168}[unit]


@mappings_app.command()
def replay(
    path: Path = typer.Argument(None, help="Candidate mappings directory (default: the live one)."),
    since: str = typer.Option("7d", help="How far back: 12h, 7d, 2w."),
    limit: int = typer.Option(50, help="Most changes to list."),
) -> None:
    """Run stored events of a window through the rules at PATH; show what would change."""
    window = parse_span(since)
    ctx = context(migrate=True)
    library = ctx.playbooks()
    try:
        live = load_rules(ctx.settings.mappings_dir, library)
    except ConfigError as exc:
        fail(f"the live mappings are invalid: {exc}")
    candidate_dir = path or ctx.settings.mappings_dir
    try:
        candidate = load_rules(candidate_dir, library)
    except ConfigError as exc:
        fail(str(exc))
    cutoff = ctx.clock() - window
    with ctx.sessions() as session:
        events = [to_event(r) for r in session.execute(
            select(InboxEvent).where(InboxEvent.received_at >= cutoff).order_by(InboxEvent.id)
        ).scalars()]
    diff = diff_actions(live, candidate, events)
    out.print(f"replayed {diff.events} events from the last {since} against {candidate_dir}")
    if diff.unchanged:
        out.print("no change: the candidate rules do exactly what the live rules do")
        return
    for label, changes in (("would now", diff.added), ("would no longer", diff.removed)):
        for change in changes[:limit]:
            out.print(f"  {label}: {describe_action(change.action)}  "
                      f"[{change.source} {change.kind} {change.dedupe_key}]", highlight=False)
    for err in diff.new_errors[:limit]:
        out.print(f"  [red]new error[/] rule '{err.rule_id}': {err.message} "
                  f"[{err.source} {err.dedupe_key}]", highlight=False)
    summary = ", ".join(f"{t}: +{c['added']}/-{c['removed']}" for t, c in diff.summary().items()
                        if c["added"] or c["removed"])
    out.print(f"{diff.changed_events} of {diff.events} events change ({summary})")

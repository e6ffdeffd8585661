"""``msphub mappings``: check mapping files, print their JSON Schema, dry-run sample events, and
replay stored events against candidate rules.

``check``, ``schema`` and ``test`` need no database (they work in a checkout of the mappings
repository); ``replay`` reads the stored inbox.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from hub.cli.app import app, context, fail, out
from hub.cli.fields import catalog_rows, format_catalog
from hub.cli.stored_events import stored_event
from hub.config.fields import field_catalog
from hub.config.mappings import compile_files, load_rules, mapping_files
from hub.config.playbooks import PlaybookLibrary, load_library
from hub.core.events import Event, EventKind
from hub.core.mapping.actions import (
    Action,
    Cancel,
    Comment,
    Launch,
    Note,
    Notify,
    Tick,
    action_to_dict,
)
from hub.core.mapping.engine import Evaluation, RuleSet, explain
from hub.core.mapping.fields import FieldCatalog
from hub.core.mapping.replay import diff_actions
from hub.core.mapping.schema import mapping_json_schema
from hub.core.suggest import hint
from hub.errors import ConfigError
from hub.services.inbox import to_event
from hub.store.models import InboxEvent

mappings_app = typer.Typer(
    name="mappings",
    help="Mapping rules: check the files, print their JSON Schema, dry-run events.",
    no_args_is_help=True,
)

MAPPINGS_DIR = typer.Option(
    Path("mappings"), "--mappings-dir", "--mappings", envvar="MSPHUB_MAPPINGS_DIR",
    help="Directory of mapping files.",
)
PLAYBOOKS_DIR = typer.Option(
    Path("playbooks"), "--playbooks-dir", envvar="MSPHUB_PLAYBOOKS_DIR",
    help="Directory of playbooks rules refer to.",
)
CONFIG_DIR = typer.Option(
    Path("config"), "--config-dir", envvar="MSPHUB_CONFIG_DIR",
    help="Configuration directory: its connectors.yaml names the instances 'from:' may use "
    "(and a generic webhook's fields).",
)
_EVENTS = TypeAdapter(Event | list[Event])


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _library(playbooks_dir: Path) -> PlaybookLibrary:
    try:
        return load_library(playbooks_dir)
    except ConfigError as exc:
        _fail(f"playbooks are invalid, fix them first: {exc}")


def _catalog(config_dir: Path) -> FieldCatalog:
    try:
        return field_catalog(config_dir / "connectors.yaml")
    except ConfigError as exc:
        _fail(f"the connector configuration is invalid, fix it first: {exc}")


def _compile(paths: list[Path], library: PlaybookLibrary, catalog: FieldCatalog | None = None
             ) -> tuple[RuleSet, list[str]]:
    """The valid rules and every problem as ``file:line [key]: message`` lines.

    With ``catalog``, ``from:`` names and the fields rules read are checked against it.
    """
    problems = [f"{p}: no such file or directory" for p in paths if not p.exists()]
    ruleset, errors = compile_files([p for p in paths if p.exists()], library,
                                    sources=catalog.names() if catalog else None,
                                    catalog=catalog)
    return ruleset, problems + [str(e) for e in errors]


@mappings_app.command()
def check(
    paths: list[Path] | None = typer.Argument(
        None, help="Mapping files or directories; default: the mappings directory."
    ),
    mappings_dir: Path = MAPPINGS_DIR,
    playbooks_dir: Path = PLAYBOOKS_DIR,
    config_dir: Path = CONFIG_DIR,
) -> None:
    """Validate mapping files: syntax, keys, sources, event fields, operators, templates,
    playbooks and steps."""
    targets = list(paths) if paths else [mappings_dir]
    library = _library(playbooks_dir)
    ruleset, problems = _compile(targets, library, _catalog(config_dir))
    if problems:
        for line in problems:
            typer.echo(line)
        files = len(mapping_files([t for t in targets if t.exists()]))
        plural = "s" if len(problems) != 1 else ""
        typer.echo(f"{len(problems)} error{plural} in {files} file{'s' if files != 1 else ''}")
        raise typer.Exit(1)
    typer.echo(f"OK {len(ruleset)} rules in {len(ruleset.files)} files")


@mappings_app.command()
def schema(config_dir: Path = CONFIG_DIR) -> None:
    """Print the JSON Schema of mapping files (for editors and YAML language servers), with
    the event fields and source names so editors complete them."""
    typer.echo(json.dumps(mapping_json_schema(_catalog(config_dir)), indent=2))


@mappings_app.command("fields")
def fields_command(
    vendor: str | None = typer.Option(None, "--vendor", help="Only this vendor or instance."),
    kind: str | None = typer.Option(None, "--kind", help="Only this event kind."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    config_dir: Path = CONFIG_DIR,
) -> None:
    """The event field catalog: the fields rules may read, by event kind and source."""
    catalog = _catalog(config_dir)
    if vendor is not None and not catalog.knows(vendor):
        _fail(f"unknown vendor or source '{vendor}'{hint(vendor, catalog.names())} "
              f"(known: {', '.join(catalog.names())})")
    kinds = [k.value for k in EventKind]
    if kind is not None and kind not in kinds:
        _fail(f"unknown event kind '{kind}'{hint(kind, kinds)} (allowed: {', '.join(kinds)})")
    rows = catalog_rows(catalog, vendor=vendor, kind=kind)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    typer.echo(format_catalog(rows))


@mappings_app.command("test")
def test_event(
    event_file: Path | None = typer.Argument(
        None, help="A normalized event (Event JSON), or a JSON list of events."
    ),
    mappings_dir: Path = MAPPINGS_DIR,
    playbooks_dir: Path = PLAYBOOKS_DIR,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    event_id: int | None = typer.Option(
        None, "--event", help="A stored inbox event's id, instead of a file."),
) -> None:
    """Dry run: which rules an event matches, what they would do, and why others did not.

    Exit status 1 when a matching rule cannot be rendered for the event (or the rules
    are invalid), 2 when the event file is unreadable.
    """
    if event_file is None and event_id is None:
        _fail("give an event file, or --event ID for a stored event", 2)
    try:
        loaded = stored_event(event_id) if event_id is not None else \
            _EVENTS.validate_json(event_file.read_bytes())  # type: ignore[union-attr]
    except OSError as exc:
        _fail(f"{event_file}: {exc.strerror}", 2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        _fail(f"{event_file}: not a valid event: {where}: {first['msg']}", 2)
    events = loaded if isinstance(loaded, list) else [loaded]
    ruleset, problems = _compile([mappings_dir], _library(playbooks_dir))
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        _fail("the mapping files are invalid (see above)")
    results = [(event, explain(ruleset, event, trace=True)) for event in events]
    if as_json:
        payload = [evaluation_to_dict(ruleset, e, r) for e, r in results]
        typer.echo(json.dumps(payload if isinstance(loaded, list) else payload[0], indent=2))
    else:
        for event, result in results:
            typer.echo(format_evaluation(ruleset, event, result))
    if any(r.errors for _, r in results):
        raise typer.Exit(1)


def evaluation_to_dict(ruleset: RuleSet, event: Event, result: Evaluation) -> dict[str, Any]:
    """JSON form of a dry run (``--json``)."""
    def where(rule_id: str) -> dict[str, Any]:
        compiled = ruleset.get(rule_id)
        return {"file": compiled.file, "line": compiled.line}

    return {
        "event": {
            "source": event.source,
            "vendor": event.vendor,
            "kind": str(event.kind),
            "dedupe_key": event.dedupe_key,
            "client": event.client.model_dump() if event.client else None,
        },
        "matched": [
            {"rule_id": m.rule_id, **where(m.rule_id),
             "actions": [action_to_dict(a) for a in m.actions]}
            for m in result.matched
        ],
        "errors": [{"rule_id": e.rule_id, "message": e.message} for e in result.errors],
        "near_misses": [{"rule_id": n.rule_id, "reason": n.reason} for n in result.near_misses],
        "stopped_by": result.stopped_by,
        "examined": result.examined,
    }


def describe_action(action: Action) -> str:
    """One readable line for an action, as the dry run prints it."""
    client = f" for client {action.client_id}" if action.client_id else ""
    if isinstance(action, Launch):
        name = f" ({action.client_name})" if action.client_name else ""
        text = f"launch {action.playbook}{client}{name}, notes: {action.notes}"
        for key, value in action.inputs.items():
            text += f"\n      {key}: {value!r}"
        return text
    if isinstance(action, Notify):
        via = ", ".join(action.channels) or "their own channels"
        return f"notify {', '.join(action.to)}{client} via {via}: {action.subject!r}"
    if isinstance(action, Note):
        return f"note on the event's ticket: {action.text!r}"
    runs = "all active runs"
    if action.playbooks:
        runs = f"active runs of {', '.join(action.playbooks)}"
    if isinstance(action, Tick):
        return f"tick {action.step} in {runs}{client}; evidence: {action.evidence!r}"
    if isinstance(action, Comment):
        return f"comment on {runs}{client}: {action.text!r}"
    assert isinstance(action, Cancel)
    return f"cancel {runs}{client}; reason: {action.reason!r}"


def format_evaluation(ruleset: RuleSet, event: Event, result: Evaluation) -> str:
    """The human-readable dry run of one event."""
    client = ""
    if event.client:
        client = f", client {event.client.id}" + (f" ({event.client.name})"
                                                  if event.client.name else "")
    lines = [f"event {event.kind} from {event.vendor}/{event.source}{client} "
             f"[{event.dedupe_key}]"]
    for match in result.matched:
        compiled = ruleset.get(match.rule_id)
        lines.append(f"  MATCH {match.rule_id}  ({compiled.file}:{compiled.line})")
        lines.extend(f"    {describe_action(a)}" for a in match.actions)
    for error in result.errors:
        lines.append(f"  ERROR {error.rule_id}: {error.message}")
    for miss in result.near_misses:
        lines.append(f"  MISS  {miss.rule_id}: {miss.reason}")
    if result.stopped_by:
        lines.append(f"  STOP  rule '{result.stopped_by}' has stop: true; "
                     "later rules were not evaluated")
    if not result.matched and not result.errors:
        lines.append("  no rule matched")
    lines.append(
        f"  {len(result.matched)} matched, {len(result.errors)} errors, "
        f"{len(result.near_misses)} near misses ({result.examined} rules examined)"
    )
    return "\n".join(lines)


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

"""``msphub events``: the inbox — what arrived, what the rules did, and retrying an event."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from hub.cli.app import app, context, fail, hub_errors, out, runtime
from hub.cli.stored_events import empty_inbox_message
from hub.core.states import InboxStatus
from hub.services.actions import NO_RUN_TO_TICK, effects_of
from hub.services.inbox import recent, reopen
from hub.services.pipeline import process_event
from hub.store.db import transaction
from hub.store.models import InboxEvent

events_app = typer.Typer(help="Inbox events: list, show and retry.", no_args_is_help=True)
app.add_typer(events_app, name="events")

STATUSES = ", ".join(s.value for s in InboxStatus)


SCAN = 500  # rows read per query when filtering by effect
SCAN_MAX = 20_000  # newest rows searched for an effect before giving up


def _with_effect(session: Session, effect: str, *, limit: int, **filters: str | None
                 ) -> list[InboxEvent]:
    """The newest events with an action of this effect (results are JSON, so filtered here;
    at most ``SCAN_MAX`` rows are read)."""
    found: list[InboxEvent] = []
    for offset in range(0, SCAN_MAX, SCAN):
        rows = recent(session, limit=SCAN, offset=offset, **filters)
        found += [r for r in rows if effect in effects_of(r.result)]
        if len(found) >= limit or len(rows) < SCAN:
            break
    return found[:limit]


def _first_error(row: InboxEvent) -> str:
    errors = (row.result or {}).get("errors") or []
    return str(errors[0].get("error", "")) if errors else (row.last_error or "")


@events_app.command("list")
def events_list(
    status: str = typer.Option(None, help=f"Only events in this state: {STATUSES}."),
    failed: bool = typer.Option(False, "--failed", help="Same as --status failed."),
    source: str = typer.Option(None, help="Connector instance name."),
    client: str = typer.Option(None, help="Hub client key."),
    effect: str = typer.Option(None, help="Only events with an action of this effect, e.g. "
                               "no_run_to_tick (an alert for a client with no run to tick), "
                               "ticked, launched, error."),
    limit: int = typer.Option(50, min=1, max=1000),
) -> None:
    """Recent inbox events, newest first, with what their actions did and the first error."""
    wanted = "failed" if failed else status
    if wanted and wanted not in {s.value for s in InboxStatus}:
        fail(f"status must be one of {STATUSES}")
    ctx = context(migrate=True)
    with ctx.sessions() as session:
        if effect:
            rows = _with_effect(session, effect, limit=limit, status=wanted, source=source,
                                client=client)
        else:
            rows = recent(session, status=wanted, source=source, client=client, limit=limit)
    if not rows:
        out.print(empty_inbox_message(ctx) or (
            "no events" + (f" with status {wanted}" if wanted else "")
            + (f" with effect {effect}" if effect else "")))
        return
    table = Table("id", "received", "source", "kind", "client", "status", "rules", "effect",
                  "error")
    for row in rows:
        table.add_row(str(row.id), f"{row.received_at:%Y-%m-%d %H:%M}", escape(row.source),
                      row.kind, escape(row.hub_client or row.client_key or ""), row.status,
                      escape(", ".join((row.result or {}).get("matched", []))),
                      escape(", ".join(effects_of(row.result))), escape(_first_error(row)[:120]))
    out.print(table)


@events_app.command("show")
def events_show(event_id: int = typer.Argument(...)) -> None:
    """One event: its fields, and what the rules did (matches, actions, errors)."""
    ctx = context(migrate=True)
    with ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        if row is None:
            fail(empty_inbox_message(ctx) or f"event {event_id} does not exist")
        result = row.result or {}
        out.print(f"[bold]event {row.id}[/] {row.kind} from {escape(row.source)} — {row.status}"
                  f" (attempts {row.attempts})")
        received = f"{row.received_at:%Y-%m-%d %H:%M:%S}"
        out.print(f"dedupe key: {escape(row.dedupe_key)}   received {received} via {row.via}")
        vendor = f"{row.client_type or 'company'} {row.client_key or '-'} {row.client_name or ''}"
        out.print(f"client: {escape(vendor.strip())} → hub client "
                  f"{escape(row.hub_client or '(not linked)')}")
        out.print(f"matched: {escape(', '.join(result.get('matched', [])) or '-')}")
        for action in result.get("actions", []):
            out.print(f"  action {escape(json.dumps(action, default=str))}", highlight=False)
            if isinstance(action, dict) and action.get("effect") == NO_RUN_TO_TICK:
                out.print(f"  [yellow]no run to tick[/]: {escape(str(action.get('reason')))}")
        for error in result.get("errors", []):
            out.print(f"  [red]error[/] rule '{escape(str(error.get('rule_id')))}': "
                      f"{escape(str(error.get('error')))}")
        _show_outcome(row, result)
        for miss in result.get("near_misses", [])[:10]:
            out.print(f"  near miss '{escape(str(miss.get('rule_id')))}': "
                      f"{escape(str(miss.get('reason')))}")
        if row.last_error:
            out.print(f"last error: {escape(row.last_error)}")


def _show_outcome(row: InboxEvent, result: dict[str, Any]) -> None:
    """The parts of a trace beyond matches and actions: a partial failure, what shadow
    rules would have done, the failure note, enrichment links and rule versions."""
    if result.get("partial"):
        out.print("  [yellow]partly applied[/]: the actions above without an error took "
                  "effect; a retry adds only what is missing")
    for shadow in result.get("shadow") or []:
        rule = escape(str(shadow.get("rule_id")))
        if "would" in shadow:
            out.print(f"  shadow '{rule}': {escape(str(shadow['would']))} (not applied)")
        else:
            out.print(f"  shadow '{rule}' [red]could not render[/]: "
                      f"{escape(str(shadow.get('error')))}")
    if result.get("failure_note"):
        out.print("  the ticket was told why nothing started (one note, however often the "
                  "event is retried)")
    if row.enriched_from is not None:
        out.print(f"full record fetched for webhook event {row.enriched_from} "
                  "(which keeps what the vendor sent)")
    into = result.get("enriched_into") or []
    if into:
        out.print(f"thin webhook: its full record is event {', '.join(map(str, into))} "
                  "(processed there)")
    if result.get("ignored"):
        out.print(f"ignored: {escape(str(result['ignored']))}")
    versions = result.get("versions") or {}
    if versions:
        out.print("rule versions: " + ", ".join(f"{escape(k)}@{v}"
                                                for k, v in versions.items()))


@events_app.command("retry")
def events_retry(event_id: int = typer.Argument(...)) -> None:
    """Run one stored event through the rules live now, here and now.

    Exactly once in effect: a ticket never launches the same playbook twice and a
    finished step is not ticked again, so a retry adds only what is missing.
    """
    with runtime(rules=True) as rt:
        with hub_errors(), transaction(rt.ctx.sessions) as session:
            row = session.get(InboxEvent, event_id)
            if row is not None and row.status == InboxStatus.PENDING:
                fail(f"event {event_id} is pending: the hub processes it")
            reopen(session, event_id)
        with hub_errors():
            result = process_event(rt.ctx, rt.live_rules(), event_id, enrich=rt.enrich)
        with rt.ctx.sessions() as session:
            status = session.get(InboxEvent, event_id).status  # type: ignore[union-attr]
    effects = ", ".join(str(a.get("effect")) for a in result.actions) or "no action"
    out.print(f"event {event_id}: {status} ({effects})")
    if result.enriched_into:
        out.print(f"  processed as event {', '.join(map(str, result.enriched_into))} "
                  "(its full record)")
    for shadow in result.shadow:
        if "would" in shadow:
            out.print(f"  shadow '{escape(str(shadow['rule_id']))}': "
                      f"{escape(str(shadow['would']))} (not applied)")
    for error in result.errors:
        out.print(f"  error rule '{escape(error['rule_id'])}': {escape(error['error'])}")

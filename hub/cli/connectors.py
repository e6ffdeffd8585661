"""``msphub connectors``: what is installed and configured, budgets, callback registration."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import func, select

from connectors.base import ConnectorError, WebhookRegistrar, load_registry
from hub.cli.app import app, context, fail, hub_errors, out, settings
from hub.core.states import SourceState
from hub.runtime.root import configured_sources, redis_client_for
from hub.services import source_health
from hub.services.sources import Source, Sources
from hub.store.models import InboxEvent, SourceCursor

connectors_app = typer.Typer(help="PSA/RMM connectors and their instances.",
                             no_args_is_help=True)
app.add_typer(connectors_app, name="connectors")


def _sources() -> Sources:
    s = settings()
    with hub_errors():
        return configured_sources(s, redis_client_for(s.redis_url))


@connectors_app.command("list")
def connectors_list() -> None:
    """Installed connector plugins and configured instances (no vendor is called)."""
    table = Table("vendor", "name", "kind", "capabilities", "streams")
    for vendor, cls in sorted(load_registry().items()):
        m = cls.manifest
        table.add_row(vendor, m.display_name, m.kind,
                      ", ".join(sorted(str(c) for c in m.capabilities)),
                      ", ".join(m.streams) or "-")
    out.print(table)
    sources = _sources()
    inst = Table("instance", "vendor", "poll every", "streams")
    for src in sources:
        inst.add_row(src.name, src.vendor,
                     str(src.poll_interval()) if src.spec.poll.enabled else "off",
                     ", ".join(src.streams()) or "-")
    out.print(inst if sources.items else "no instances configured in config/connectors.yaml")


@connectors_app.command("status")
def connectors_status() -> None:
    """Per instance: remaining request budget, vendor pause, poll cursors, events received,
    dead letters.

    Budgets and pauses are shared state in Redis, so with Redis configured this shows what
    the running hub sees. Without Redis they live in the hub process's memory: this command
    cannot see them and says so (read them from the hub's /metrics).
    """
    sources = _sources()
    if not sources.items:
        out.print("no instances configured in config/connectors.yaml")
        return
    shared = settings().redis_url is not None
    ctx = context(migrate=True)
    table = Table("instance", "credentials", "budget left", "paused", "cursors", "events",
                  "pending", "dead", "last event")
    with ctx.sessions() as session:
        for src in sources:
            state = source_health.health(session, src.name, src.fingerprint)
            cursors = session.execute(select(SourceCursor).where(SourceCursor.source == src.name)
                                      ).scalars().all()
            counts: dict[str, int] = {
                status: int(n) for status, n in session.execute(
                    select(InboxEvent.status, func.count()).where(InboxEvent.source == src.name)
                    .group_by(InboxEvent.status)).all()}
            last = session.execute(select(func.max(InboxEvent.received_at))
                                   .where(InboxEvent.source == src.name)).scalar_one()
            budget_cell, paused_cell = _budget_cells(src, shared)
            table.add_row(
                src.name, _health_cell(state), budget_cell, paused_cell,
                "; ".join(f"{c.stream}@{_short(c.value.get('position', '?'))}"
                          for c in cursors) or "-",
                str(sum(counts.values())), str(counts.get("pending", 0)),
                str(counts.get("dead", 0)), f"{last:%Y-%m-%d %H:%M:%S}" if last else "-")
    out.print(table)
    if not shared:
        out.print("[dim]no Redis configured: request budgets and pauses live in the running "
                  "hub's memory; see its /metrics (msphub_connector_*)[/]")
    sources.close()


def _short(position: object, room: int = 40) -> str:
    """A cursor position as a table shows it: some carry a whole compressed state."""
    text = str(position)
    return text if len(text) <= room else text[:room - 1] + "…"


def _health_cell(state: source_health.Health) -> str:
    if state.state is SourceState.HEALTHY:
        return "ok"
    since = f"{state.since:%Y-%m-%d %H:%M}" if state.since else "?"
    if state.stale:
        return f"[yellow]refused since {since}; retrying[/]"
    return f"[red]refused since {since}[/]: {state.reason}"


@connectors_app.command("retry")
def connectors_retry(
    name: str = typer.Argument(..., help="Instance name from config/connectors.yaml."),
) -> None:
    """Let a source whose credentials were refused call the vendor again.

    Its polls and note deliveries hold after the vendor refused the credentials (no
    request is sent, notes wait). After fixing them, restart the hub (new credentials
    are tried at once) or run this; the next job's success clears the state.
    """
    sources = _sources()
    if sources.get(name) is None:
        fail(f"no instance named '{name}' (configured: {', '.join(sources.items) or 'none'})")
    ctx = context(migrate=True)
    if source_health.retry(ctx.sessions, name, by="cli"):
        out.print(f"{name}: the next poll and note delivery will call the vendor again")
    else:
        out.print(f"{name}: its credentials are not marked as refused; nothing to retry")
    sources.close()


def _budget_cells(src: Source, shared: bool) -> tuple[str, str]:
    """("budget left", "paused") as the running hub sees them, or "n/a" without Redis."""
    if not shared:
        return "n/a", "n/a"
    try:
        budget = src.remaining_budget()
        paused = src.paused_for()
    except ConnectorError as exc:
        out.print(f"[yellow]{src.name}: budget unavailable ({exc})[/]")
        return "?", "?"
    return ("-" if budget is None else str(budget),
            f"{paused:.0f}s" if paused > 0 else "no")


@connectors_app.command("register-webhooks")
def register_webhooks(
    name: str = typer.Argument(..., help="Instance name from config/connectors.yaml."),
    remove: bool = typer.Option(False, "--remove", help="Delete our registrations instead."),
) -> None:
    """Create (idempotently) or remove the vendor's callbacks pointing at this hub."""
    s = settings()
    sources = _sources()
    src = sources.get(name)
    if src is None:
        fail(f"no instance named '{name}' (configured: {', '.join(sources.items) or 'none'})")
    if not isinstance(src.connector, WebhookRegistrar):
        fail(f"{src.vendor} does not support registering webhooks; configure them in the "
             "vendor's admin console")
    url = f"{s.public_url}/webhooks/{name}"
    try:
        if remove:
            count = src.connector.remove_webhooks(url)
            out.print(f"removed {count} callback(s) for {url}")
        else:
            ids = src.connector.register_webhooks(url)
            out.print(f"registered callbacks {', '.join(ids)} → {url}")
    except ConnectorError as exc:
        fail(f"{name}: {exc}")
    finally:
        sources.close()

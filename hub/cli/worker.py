"""``msphub worker``, ``msphub scheduler`` and ``msphub deadletters``."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta

import dramatiq
import typer
from rich.markup import escape
from rich.table import Table

from hub.cli.app import app, context, fail, hub_errors, out, settings
from hub.runtime.periodic import Scheduler, requeue_unfinished
from hub.runtime.root import build_runtime, sync_clients
from hub.services.deadletters import list_dead, revive
from hub.store.migrate import upgrade

deadletters_app = typer.Typer(help="Events and notes whose last attempt failed.",
                              no_args_is_help=True)
app.add_typer(deadletters_app, name="deadletters")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@app.command()
def worker(
    threads: int = typer.Option(None, help="Worker threads (default: MSPHUB_WORKER_THREADS)."),
) -> None:
    """Process events, deliver notes and poll connectors from the Redis broker.

    Run any number of these, on any machine, against the same Redis and database.
    """
    s = settings()
    if not s.redis_url:
        fail("MSPHUB_REDIS_URL is not set: without Redis, `msphub serve` runs the workers "
             "in-process")
    with hub_errors():
        rt = build_runtime(s)
        upgrade(rt.ctx.engine)
        sync_clients(rt.ctx)
    stop = _stop_on_signals()
    # 100 ms consumer timeout: lower queueing latency for ~5 % of a core while idle
    w = dramatiq.Worker(rt.broker, worker_threads=threads or s.worker_threads,
                        worker_timeout=100)
    w.start()
    # items a crashed worker left unfinished are picked up again (idempotent)
    requeue_unfinished(rt, events_older_than=timedelta(0), notes_older_than=timedelta(0))
    out.print(f"worker started ({threads or s.worker_threads} threads)")
    stop.wait()
    w.stop(timeout=10_000)
    rt.stop()


@app.command()
def scheduler() -> None:
    """Send periodic jobs and polls on time (one per deployment; needs Redis)."""
    s = settings()
    if not s.redis_url:
        fail("MSPHUB_REDIS_URL is not set: without Redis, `msphub serve` runs the scheduler")
    with hub_errors():
        rt = build_runtime(s)
    Scheduler(rt).run_forever(_stop_on_signals())
    rt.stop()


@deadletters_app.command("list")
def deadletters_list() -> None:
    """List parked events, notes and notifications with their last error."""
    ctx = context(migrate=True)
    items = list_dead(ctx)
    if not items:
        out.print("no dead letters")
        return
    table = Table("kind", "id", "what", "attempts", "last error", "since")
    for d in items:
        table.add_row(d.kind, str(d.id), escape(d.summary), str(d.attempts),
                      escape(d.error or ""),
                      f"{d.at:%Y-%m-%d %H:%M}")
    out.print(table)


@deadletters_app.command("retry")
def deadletters_retry(
    kind: str = typer.Argument(..., help="event, note or notification"),
    item_id: int = typer.Argument(...),
) -> None:
    """Put one parked item back in the queue."""
    if kind not in ("event", "note", "notification"):
        fail("kind must be 'event', 'note' or 'notification'")
    s = settings()
    with hub_errors():
        rt = build_runtime(s)
    if not revive(rt.ctx, kind, item_id):
        fail(f"{kind} {item_id} is not a dead letter")
    if kind == "event":
        rt.dispatch.event(item_id)
    elif kind == "note":
        rt.dispatch.notes([item_id])
    if not s.redis_url:
        out.print(f"{kind} {item_id} is pending again; the running hub picks it up within "
                  "a minute")
    else:
        out.print(f"{kind} {item_id} re-queued")
    rt.stop()

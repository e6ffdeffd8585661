"""Per-event cost of the hub's own code, one thread, no HTTP, no broker.

    .venv/bin/python bench/micro.py [--db sqlite|postgres] [--events 300] [--profile]

For each of N leaver tickets made by an in-process ConnectWise sandbox (no server), it
runs the three stages a webhook goes through, in order, and times each (wall and CPU):

1. ``receive``  - ``hub.services.intake.receive``: verify the signature, parse, inbox insert;
2. ``process``  - ``hub.services.pipeline.process_event``: rules, launch user-offboarding (17 steps,
   audit chain, outbox note), one transaction - as ``process_inbox_item`` runs it;
3. ``deliver``  - ``hub.services.writeback.deliver`` of the launch note to an in-memory PSA writer
   (lease, post, record: the hub's side of write-back without the HTTP request).

This is the floor of the end-to-end benchmark: whatever ``bench/run.py`` measures above
it is HTTP, queues, threads and contention. ``--profile`` adds a pyinstrument profile of
the stages (written next to the figures as text). PostgreSQL uses schema ``bench_micro``
(dropped and re-created, then dropped).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

from connectors.base import NoteRef, WebhookRequest
from connectors.base import build_connector as _build
from connectors.connectwise.sandbox import ConnectWiseSandbox
from hub.config.live_rules import RuleHolder
from hub.core.events import SubjectRef
from hub.runtime.root import build_context, sync_clients
from hub.services.intake import receive
from hub.services.pipeline import process_batch, process_event
from hub.services.sources import Source, Sources, SourceSpec
from hub.services.writeback import deliver

try:  # benchmarking an older revision (--rev) that delivered note by note
    from hub.services.writeback import deliver_many
except ImportError:  # pragma: no cover
    deliver_many = None  # type: ignore[assignment]
from hub.settings import Settings
from hub.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench_micro"
SECRET = "bench-webhook-secret-0123456789abcdef"


class MemoryWriter:
    """The ConnectWise connector for webhooks, with notes kept in memory (no HTTP)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.manifest = inner.manifest
        self.name = inner.name
        self.notes: dict[str, list[tuple[str, str]]] = {}

    def verify(self, request: WebhookRequest) -> None:
        self.inner.verify(request)

    def parse(self, request: WebhookRequest) -> Any:
        return self.inner.parse(request)

    def close(self) -> None:
        self.inner.close()

    def post_note(self, ticket: SubjectRef, text: str, *, key: str) -> NoteRef:
        notes = self.notes.setdefault(ticket.id, [])
        notes.append((str(len(notes) + 1), f"{text}\n[msphub:{key}]"))
        return NoteRef(ticket=ticket, id=notes[-1][0])

    def find_note(self, ticket: SubjectRef, key: str) -> NoteRef | None:
        for nid, text in self.notes.get(ticket.id, []):
            if f"[msphub:{key}]" in text:
                return NoteRef(ticket=ticket, id=nid)
        return None

    def attach(self, ticket: SubjectRef, filename: str, content: bytes, *, title: str,
               key: str) -> str:
        return "1"

    def set_status(self, ticket: SubjectRef, status_name: str) -> None:
        return None


def make_callbacks(count: int) -> tuple[ConnectWiseSandbox, list[tuple[bytes, dict[str, str]]]]:
    """Signed ticket-added callback bodies, as the sandbox would POST them."""
    cw = ConnectWiseSandbox()
    cw.base_url = "http://127.0.0.1:9"
    cw.store.add_callback({"url": "http://127.0.0.1:9/webhooks/cw", "type": "ticket",
                           "isSelfSuppressedFlag": True},
                          member={"id": 178, "identifier": "msphub-api"})
    sent: list[tuple[bytes, dict[str, str]]] = []
    cw.dispatcher.submit = lambda url, body, headers: sent.append((body, headers)) or True  # type: ignore[method-assign]
    companies = [cw.create_company(f"Micro Client {c}", f"MICRO{c:03d}") for c in range(20)]
    contacts = [cw.create_contact(c["id"], "Leaver", f"P{c['id']}", f"l{c['id']}@x.example")
                for c in companies]
    for i in range(count):
        k = i % len(companies)
        cw.create_ticket(f"Leaver micro-{i}", company_id=companies[k]["id"], type="Leaver",
                         contact_id=contacts[k]["id"])
    return cw, sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--profile", type=Path, default=None,
                    help="write a pyinstrument text profile of the measured events here")
    ap.add_argument("--cprofile", type=Path, default=None,
                    help="write cProfile stats (by own time, then cumulative) here")
    ap.add_argument("--statements", action="store_true",
                    help="count SQL statements per stage and event")
    ap.add_argument("--batch", type=int, default=1,
                    help="events per process_batch call (1: process_event per event, as "
                         "before batching); stages are then timed per chunk and divided")
    ap.add_argument("--whatif", default="",
                    help="comma-separated bench/whatif patches to apply (see whatif_patches)")
    args = ap.parse_args()
    import os
    import sys

    if args.whatif:
        sys.path.insert(0, str(Path(__file__).resolve().parent / "whatif"))
        import whatif_patches

        print(f"what-if patches: {', '.join(whatif_patches.apply(args.whatif))}")

    from hub.logging import configure_logging

    # as `msphub serve` logs in production: JSON lines, INFO (to /dev/null here)
    configure_logging("json", "INFO", stream=open(os.devnull, "w"))  # noqa: SIM115
    work = Path(tempfile.mkdtemp(prefix="msphub-micro-"))
    conf = work / "config"
    conf.mkdir()
    for name in ("calendars.yaml", "team.yaml"):
        shutil.copy(ROOT / "config" / name, conf / name)
    (conf / "clients.yaml").write_text("clients:\n" + "".join(
        f"  micro{c:03d}: {{links: [{{source: cw, type: company, id: MICRO{c:03d}}}]}}\n"
        for c in range(20)))
    if args.db == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        url = ("postgresql+psycopg://postgres@127.0.0.1:5432/test"
               f"?options=-csearch_path%3D{SCHEMA}")
    else:
        url = f"sqlite:///{work / 'micro.db'}"
    try:
        settings = Settings(database_url=url, config_dir=conf, data_dir=work,
                            mappings_dir=ROOT / "mappings", playbooks_dir=ROOT / "playbooks")
        ctx = build_context(settings)
        upgrade(ctx.engine)
        sync_clients(ctx)
        total = args.warmup + args.events
        cw, callbacks = make_callbacks(total)
        connector = _build("connectwise", "cw", {
            "site": "http://127.0.0.1:9", "company_id": cw.company_id,
            "public_key": cw.public_key, "private_key": cw.private_key,
            "client_id": cw.client_id, "webhook_secret": SECRET, "api_member": "msphub-api"})
        connector._keys._keys[cw.key_url] = cw.signing_key  # no key fetch over HTTP
        writer = MemoryWriter(connector)
        sources = Sources({"cw": Source("cw", SourceSpec(vendor="connectwise"), writer)})
        rules = RuleHolder.load(settings.mappings_dir, ctx.playbooks, sources=None).rules
        stages = ("receive", "process", "deliver")
        statements: dict[str, Counter[str]] = {s: Counter() for s in stages}
        current = ["receive"]
        counting = [False]

        def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if counting[0]:
                words = statement.split()
                key = " ".join(words[:3]) if words[0] in ("SELECT", "INSERT", "UPDATE",
                                                          "DELETE") else words[0]
                if words[0] == "SELECT":
                    frm = words.index("FROM") if "FROM" in words else -1
                    key = "SELECT FROM " + (words[frm + 1] if frm >= 0 else " ".join(words[:3]))
                statements[current[0]][key] += 1

        event.listen(ctx.engine, "before_cursor_execute", count)
        head_hold: list[float] = []
        head_taken: list[float] = []

        def head_select(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if "FROM audit_head" in statement and "FOR UPDATE" in statement:
                head_taken.append(time.perf_counter())

        def head_release(conn: Any) -> None:
            if head_taken:
                held = time.perf_counter() - head_taken.pop()
                if counting[0]:
                    head_hold.append(held * 1000)
                head_taken.clear()

        event.listen(ctx.engine, "after_cursor_execute", head_select)
        event.listen(ctx.engine, "commit", head_release)
        event.listen(ctx.engine, "rollback", head_release)

        def on_begin(conn: Any) -> None:
            if counting[0]:
                statements[current[0]]["BEGIN (tx or pooled checkout)"] += 1

        event.listen(ctx.engine, "begin", on_begin)

        def on_checkout(*_: Any) -> None:
            if counting[0]:
                statements[current[0]]["pool checkout (+1 ping with pool_pre_ping)"] += 1

        def on_end(name: str) -> Any:
            def hook(conn: Any) -> None:
                if counting[0]:
                    statements[current[0]][name] += 1
            return hook

        event.listen(ctx.engine, "checkout", on_checkout)
        event.listen(ctx.engine, "commit", on_end("COMMIT"))
        event.listen(ctx.engine, "rollback", on_end("ROLLBACK"))
        wall: dict[str, list[float]] = {s: [] for s in stages}
        cpu: dict[str, list[float]] = {s: [] for s in stages}
        profiler = None
        cprof: Any = None
        size = max(1, args.batch)
        for start in range(0, len(callbacks), size):
            chunk = callbacks[start:start + size]
            i = start
            if i >= args.warmup and args.profile and profiler is None:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
            if i >= args.warmup and args.cprofile and cprof is None:
                import cProfile

                cprof = cProfile.Profile(time.thread_time)  # CPU, not waits on the DB
                cprof.enable()
            counting[0] = i >= args.warmup
            current[0] = "receive"
            t = [(time.perf_counter(), time.thread_time())]
            new_ids: list[int] = []
            for body, headers in chunk:
                got = receive(ctx, sources, "cw", headers=headers, body=body,
                              query={"token": SECRET}, path_secret=None, max_body=1 << 20)
                new_ids += got.new_ids
            t.append((time.perf_counter(), time.thread_time()))
            current[0] = "process"
            notes: list[int] = []
            if size == 1:
                for event_id in new_ids:
                    notes += process_event(ctx, rules, event_id, enrich=lambda e: [e]).notes
            else:  # as a worker's batch: the message's events plus other pending ones
                notes += process_batch(ctx, rules, new_ids, enrich=lambda e: [e]).notes
            t.append((time.perf_counter(), time.thread_time()))
            current[0] = "deliver"
            if size == 1 or deliver_many is None:
                for note_id in notes:
                    deliver(ctx, sources, note_id)
            else:  # as the worker that committed the batch delivers its notes
                deliver_many(ctx, sources, notes)
            t.append((time.perf_counter(), time.thread_time()))
            if i >= args.warmup:
                for k, stage in enumerate(stages):
                    wall[stage].append((t[k + 1][0] - t[k][0]) * 1000 / len(chunk))
                    cpu[stage].append((t[k + 1][1] - t[k][1]) * 1000 / len(chunk))
        if args.cprofile:
            import io
            import pstats

            cprof.disable()
            buf = io.StringIO()
            stats = pstats.Stats(cprof, stream=buf)
            stats.sort_stats("tottime").print_stats(45)
            stats.sort_stats("cumulative").print_stats(80)
            args.cprofile.write_text(buf.getvalue())
        if profiler is not None:
            profiler.stop()
            args.profile.write_text(profiler.output_text(unicode=False, color=False,
                                                         show_all=False))
        launched = sum(1 for notes in writer.notes.values()
                       if sum(" launched " in text for _, text in notes) == 1)
        print(f"micro ({args.db}): {args.events} events after {args.warmup} warm-up; "
              f"{launched}/{total} tickets got exactly one launch note")
        print(f"{'stage':<8} {'wall ms mean':>12} {'p50':>7} {'p99':>7} {'CPU ms mean':>12}")
        for stage in stages:
            w = wall[stage]
            print(f"{stage:<8} {statistics.mean(w):12.2f} {statistics.median(w):7.2f} "
                  f"{sorted(w)[int(len(w) * 0.99) - 1]:7.2f} {statistics.mean(cpu[stage]):12.2f}")
        if args.statements:
            ping = ctx.engine.pool._pre_ping  # type: ignore[attr-defined]
            print("SQL per event (PostgreSQL round trips = statements + BEGIN + COMMIT/"
                  f"ROLLBACK{' + ping per checkout' if ping else ''}):")
            for stage in stages:
                c = statements[stage]
                trips = sum(v for k, v in c.items() if not k.startswith("pool checkout")
                            ) + (c["pool checkout (+1 ping with pool_pre_ping)"] if ping else 0)
                print(f"  {stage}: ~{trips / args.events:.1f} round trips per event")
                for key, c in statements[stage].most_common():
                    print(f"    {c / args.events:5.2f}  {key}")
        if head_hold:
            print(f"audit head row lock held (SELECT ... FOR UPDATE -> COMMIT), one thread: "
                  f"mean {statistics.mean(head_hold):.2f} ms, p50 "
                  f"{statistics.median(head_hold):.2f} ms -> at most "
                  f"{1000 / statistics.mean(head_hold):.0f} launches/s in total, however "
                  "many workers")
        tw = sum(statistics.mean(wall[s]) for s in stages)
        tc = sum(statistics.mean(cpu[s]) for s in stages)
        print(f"{'total':<8} {tw:12.2f} {'':>7} {'':>7} {tc:12.2f}   -> at most "
              f"{1000 / tc:.0f} events/s per fully busy core for the hub's code alone")
        connector.close()
        ctx.engine.dispose()
    finally:
        if args.db == "postgres":
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

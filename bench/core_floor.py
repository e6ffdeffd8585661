"""What one launch would cost with SQLAlchemy Core instead of the ORM unit of work (estimate).

    .venv/bin/python bench/core_floor.py [--events 300]

On a migrated PostgreSQL schema (``bench_core``, dropped afterwards) it performs, per
event and in one transaction, the statements ``process_event`` needs for a leaver
launch - lock the inbox row, look for an existing run, insert the run, its 17 steps
(one executemany), lock the audit head, insert the audit entries, move the head, insert
the outbox note, mark the inbox row done - plus the pure work that does not depend on
the ORM (the checklist engine's ``launch``, due dates, audit hashing). It is not the
hub's code: it is the floor a Core rewrite of the launch path could approach, to rank
that proposal against the measured ORM cost (``bench/micro.py``, stage ``process``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import insert, select, update

from hub.config.playbooks import digest
from hub.core.calendars import DEFAULT_CALENDAR, DueRule, due_at
from hub.core.checklists import engine
from hub.core.checklists.schema import coerce_inputs
from hub.runtime.root import build_context
from hub.settings import Settings
from hub.store import audit
from hub.store.migrate import upgrade
from hub.store.models import (
    AuditEntry,
    AuditHead,
    Client,
    InboxEvent,
    OutboxNote,
    PlaybookVersion,
    Run,
    RunStep,
)

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench_core"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    work = Path(tempfile.mkdtemp(prefix="msphub-core-"))
    try:
        conf = work / "config"
        conf.mkdir()
        for name in ("calendars.yaml", "team.yaml"):
            shutil.copy(ROOT / "config" / name, conf / name)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{SCHEMA}"
        settings = Settings(database_url=url, config_dir=conf, data_dir=work,
                            mappings_dir=ROOT / "mappings", playbooks_dir=ROOT / "playbooks")
        ctx = build_context(settings)
        upgrade(ctx.engine)
        eng = ctx.engine
        playbook = ctx.playbooks().get("user-offboarding")
        now = datetime.now(UTC)
        with eng.begin() as conn:
            client_id = conn.execute(insert(Client).values(key="CORE", name="Core",
                                                           created_at=now)
                                     .returning(Client.id)).scalar_one()
            pv_id = conn.execute(insert(PlaybookVersion).values(
                playbook_id=playbook.id, version=playbook.version, digest=digest(playbook),
                title=playbook.title, definition=playbook.model_dump(mode="json"),
                created_at=now).returning(PlaybookVersion.id)).scalar_one()
            conn.execute(insert(AuditHead).values(id=1, last_id=0, last_hash=audit.GENESIS))
        total = args.warmup + args.events
        with eng.begin() as conn:
            inbox_ids = conn.execute(insert(InboxEvent).returning(InboxEvent.id), [{
                "source": "cw", "vendor": "connectwise", "kind": "ticket.created",
                "dedupe_key": f"k{i}", "occurred_at": now, "received_at": now, "via": "webhook",
                "client_key": "CORE", "client_name": "Core", "subject_type": "ticket",
                "subject_id": str(i), "data": {"ticket": {"id": i}}, "raw": {},
                "status": "pending", "attempts": 0} for i in range(total)]).scalars().all()
        inputs = coerce_inputs(playbook, {"leaver_name": "A Leaver", "last_day": "2026-11-20"})
        wall: list[float] = []
        cpu: list[float] = []
        stmt_inbox = select(InboxEvent.id, InboxEvent.status).where(
            InboxEvent.id == 0).with_for_update()
        for i, inbox_id in enumerate(inbox_ids):
            t0, c0 = time.perf_counter(), time.thread_time()
            with eng.begin() as conn:
                conn.execute(stmt_inbox.where(InboxEvent.id == inbox_id)).one_or_none()
                conn.execute(select(Run.id).where(
                    Run.origin_source == "cw", Run.origin_type == "ticket",
                    Run.origin_id == str(i), Run.playbook_id == playbook.id)).first()
                at = datetime.now(UTC)
                run_id = conn.execute(insert(Run).values(
                    playbook_id=playbook.id, playbook_version_id=pv_id, client_id=client_id,
                    status="active", inputs=inputs, launched_by="rule:x", launched_at=at,
                    ticket_source="cw", ticket_id=str(i), origin_source="cw",
                    origin_type="ticket", origin_id=str(i), options={"notes": "each"})
                    .returning(Run.id)).scalar_one()
                outcome = engine.launch(
                    playbook, run_id=run_id, client_id="CORE", inputs=inputs, by="rule:x",
                    now=at, assign=lambda s: "alice",
                    due=lambda rule, at=at: due_at(at, DueRule.parse(rule), DEFAULT_CALENDAR),
                    ticket=engine.TicketRef("cw", str(i)))
                conn.execute(insert(RunStep), [{
                    "run_id": run_id, "step_id": s.step_id, "title": s.title,
                    "position": s.position, "status": s.status.value, "assignee": s.assignee,
                    "due_at": s.due_at} for s in outcome.run.steps])
                head = conn.execute(select(AuditHead.last_id, AuditHead.last_hash)
                                    .where(AuditHead.id == 1).with_for_update()).one()
                seq, prev, rows = head.last_id, head.last_hash, []
                for fact in outcome.facts:
                    seq += 1
                    h = audit.entry_hash(seq=seq, at=fact.at, actor=fact.actor,
                                         action=fact.action, run_id=run_id,
                                         step_id=fact.step_id, event_id=inbox_id,
                                         data=dict(fact.data), prev_hash=prev)
                    rows.append({"id": seq, "at": fact.at, "actor": fact.actor,
                                 "action": fact.action, "run_id": run_id,
                                 "step_id": fact.step_id, "event_id": inbox_id,
                                 "data": dict(fact.data), "prev_hash": prev, "hash": h})
                    prev = h
                conn.execute(insert(AuditEntry), rows)
                conn.execute(update(AuditHead).where(AuditHead.id == 1)
                             .values(last_id=seq, last_hash=prev))
                conn.execute(insert(OutboxNote).values(
                    key=uuid.uuid4().hex, run_id=run_id, kind="launched", source="cw",
                    ticket_id=str(i), text=f"msphub: {playbook.title} launched (run #{run_id})",
                    status="pending", attempts=0, uncertain=False, created_at=at,
                    next_attempt_at=at))
                conn.execute(update(InboxEvent).where(InboxEvent.id == inbox_id).values(
                    status="done", attempts=1, processed_at=at, result={"matched": ["x"]}))
            if i >= args.warmup:
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
        print(f"Core launch floor (PostgreSQL, one thread, {args.events} events): wall mean "
              f"{statistics.mean(wall):.2f} ms (p50 {statistics.median(wall):.2f}), CPU mean "
              f"{statistics.mean(cpu):.2f} ms")
        eng.dispose()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: render the dashboard's portfolio with 5,000 runs in the database.

    .venv/bin/python bench/dashboard.py [--runs 5000] [--clients 40] [--rounds 30]
                                        [--database-url URL] [--json FILE]

Seeds a fresh database (SQLite in a temporary directory unless ``--database-url`` names
another, e.g. an empty PostgreSQL schema) with ``--runs`` runs of the shipped
user-offboarding playbook (17 steps each) over ``--clients`` clients: 80 % active at
varied progress, 15 % completed, 5 % cancelled, due dates spread so some are late. One
run per client is launched through the run service (so playbook versions and clients
are real); the rest are bulk-inserted copies of those, with their steps.

Then it times, in this process (no network, no browser), best / p50 / p90 over
``--rounds`` requests after two warm-ups:

- ``GET /`` — the full portfolio page (active runs, sorted by next due date), signed in
  with a viewer token through the ASGI app (FastAPI, auth, SQL, Jinja2);
- ``GET /?fragment=true`` — the part the page re-fetches every 15 s;
- ``GET /?status=all&sort=age`` and ``GET /?overdue=true&technician=alice`` — the
  widest and a narrow filter;
- the portfolio query alone (``hub.api.dashboard.portfolio_query.load``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402  (after the path set-up)
from sqlalchemy import insert, select  # noqa: E402

from hub.api import create_app  # noqa: E402
from hub.api.dashboard.portfolio_query import PortfolioFilter, load  # noqa: E402
from hub.core.states import RunStatus, StepStatus  # noqa: E402
from hub.logging import configure_logging  # noqa: E402
from hub.runtime.root import build_runtime  # noqa: E402
from hub.services.sources import Sources  # noqa: E402
from hub.services.tokens import Role, create_token  # noqa: E402
from hub.settings import Settings  # noqa: E402
from hub.store.db import make_engine, transaction  # noqa: E402
from hub.store.migrate import upgrade  # noqa: E402
from hub.store.models import Run, RunStep  # noqa: E402

START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
INPUTS = {"leaver_name": "Jane Doe", "last_day": "2025-03-07"}


def _seed(rt: Any, runs: int, clients: int, rng: random.Random) -> None:
    ctx = rt.ctx
    with transaction(ctx.sessions) as session:
        templates = [ctx.runs.launch(session, "user-offboarding", client=f"client-{n:03d}",
                                     client_name=f"Client {n:03d} Ltd", inputs=INPUTS,
                                     by="user:bench") for n in range(clients)]
        session.flush()
        shapes = [(t.client_id, t.playbook_version_id,
                   [(s.step_id, s.title, s.position, s.status, s.assignee, s.due_at)
                    for s in t.steps]) for t in templates]
    batch = 500
    for first in range(0, runs - clients, batch):
        with transaction(ctx.sessions) as session:
            rows = []
            for i in range(first, min(first + batch, runs - clients)):
                client_id, version_id, _steps = shapes[i % clients]
                roll = rng.random()
                status = (RunStatus.ACTIVE if roll < 0.8 else
                          RunStatus.COMPLETED if roll < 0.95 else RunStatus.CANCELLED)
                launched = START - timedelta(hours=rng.randint(0, 24 * 60))
                rows.append({"playbook_id": "user-offboarding", "playbook_version_id": version_id,
                             "client_id": client_id, "status": status.value, "inputs": INPUTS,
                             "launched_by": "user:bench", "launched_at": launched,
                             "completed_at": launched + timedelta(days=3)
                             if status is not RunStatus.ACTIVE else None, "options": {}})
            session.execute(insert(Run), rows)
            new = session.execute(select(Run.id, Run.client_id, Run.status, Run.launched_at)
                                  .order_by(Run.id.desc()).limit(len(rows))).all()
            step_rows = []
            for run_id, client_id, status, launched in new:
                _c, _v, steps = next(s for s in shapes if s[0] == client_id)
                done_upto = (len(steps) if status == RunStatus.COMPLETED.value
                             else rng.randint(0, len(steps) - 1))
                for step_id, title, position, st, assignee, due in steps:
                    if st != StepStatus.NOT_APPLICABLE.value:
                        st = (StepStatus.DONE.value if position < done_upto else
                              StepStatus.OPEN.value if position == done_upto else
                              StepStatus.LOCKED.value)
                    step_rows.append({
                        "run_id": run_id, "step_id": step_id, "title": title,
                        "position": position, "status": st, "assignee": assignee,
                        "due_at": (due - START) + launched if due else None,
                        "done_by": "user:bench" if st == StepStatus.DONE.value else None,
                        "done_at": launched if st == StepStatus.DONE.value else None})
            session.execute(insert(RunStep), step_rows)


def _time(call: Callable[[], object], rounds: int) -> dict[str, float]:
    for _ in range(2):
        call()
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"best_ms": round(samples[0], 1), "p50_ms": round(statistics.median(samples), 1),
            "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 1)}


def main() -> None:
    """Seed, then time the portfolio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    configure_logging("console", "WARNING")  # no access line per timed request
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=url,
                            playbooks_dir=ROOT / "playbooks", config_dir=ROOT / "config",
                            mappings_dir=Path(tmp) / "mappings", log_format="console",
                            log_level="WARNING")
        engine = make_engine(url)
        upgrade(engine)
        rt = build_runtime(settings, clock=lambda: START, engine=engine, sources=Sources())
        began = time.perf_counter()
        _seed(rt, args.runs, args.clients, random.Random(7))
        if engine.dialect.name == "postgresql":
            # a bulk load leaves no planner statistics until autovacuum runs; a live
            # database has them, so measure with them
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        seeded = time.perf_counter() - began
        with transaction(rt.ctx.sessions) as session:
            token = create_token(session, name="bench", role=Role.VIEWER, now=START)
        http = TestClient(create_app(rt))
        http.headers["Authorization"] = f"Bearer {token}"

        def get(path: str) -> Callable[[], object]:
            def call() -> object:
                response = http.get(path)
                assert response.status_code == 200, response.status_code
                return response
            return call

        def query() -> object:
            with rt.ctx.sessions() as session:
                return load(session, PortfolioFilter(), START)

        size = len(http.get("/").content)
        results = {
            "runs": args.runs, "clients": args.clients, "backend": url.split(":")[0],
            "seed_s": round(seeded, 1), "page_bytes": size,
            "GET /": _time(get("/"), args.rounds),
            "GET /?fragment=true": _time(get("/?fragment=true"), args.rounds),
            "GET /?status=all&sort=age": _time(get("/?status=all&sort=age"), args.rounds),
            "GET /?overdue=true&technician=alice":
                _time(get("/?overdue=true&technician=alice"), args.rounds),
            "portfolio query": _time(query, args.rounds),
        }
        http.close()
        rt.stop()
        engine.dispose()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

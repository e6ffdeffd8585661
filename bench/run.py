"""End-to-end throughput/latency benchmark: PSA callback → inbox → checklist → note on the ticket.

    .venv/bin/python bench/run.py [--mode embedded|redis|both] [--events N] [--rate R]

For each mode it starts, as separate processes on 127.0.0.1:

* the ConnectWise sandbox (``bench/sandbox_proc.py``: the stock simulator plus timestamps),
* the hub: ``msphub serve`` (embedded: SQLite + in-process dramatiq workers), or, in
  Redis mode, ``msphub serve`` (HTTP only) + ``--workers`` x ``msphub worker`` on
  Redis db 14 and PostgreSQL schema ``bench`` (dropped and re-created),

registers the hub's callbacks in the sandbox, warms up with a few tickets, then creates
N leaver tickets (each with a contact) as fast as possible (burst) and, unless ``--rate``
is given, a paced batch at half the burst's completed rate. Every ticket's callback
launches user-offboarding and ends with a "launched" note posted back to the ticket.

Figures per batch: accepted webhooks/s, completed events/s (N / first ticket → last
note), webhook→note latency p50/p95/p99 (ticket creation → note creation, both stamped
in the sandbox), lost events (tickets without exactly one launch note after a bounded
wait), vendor API calls per event, peak RSS per process (psutil every 100 ms) and CPU
seconds per event per process. ``--profile DIR`` attaches ``py-spy record`` to the hub
processes during the burst (figures of a profiled run are not comparable).
Every process started here is stopped here, by pid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
PY = str(VENV / "python") if (VENV / "python").exists() else sys.executable
MSPHUB = str(VENV / "msphub") if (VENV / "msphub").exists() else "msphub"
SOURCE = "cw"
REDIS_URL = "redis://127.0.0.1:6379/14"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "bench"
PG_URL = ("postgresql+psycopg://postgres@127.0.0.1:5432/test"
          f"?options=-csearch_path%3D{PG_SCHEMA}")
WEBHOOK_SECRET = "bench-webhook-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# ---- processes ------------------------------------------------------------------------------

@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Processes:
    """Every process this run started; stopped by pid (TERM, then KILL after a grace)."""

    def __init__(self) -> None:
        self.items: list[Proc] = []

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path,
              log: Path) -> Proc:
        fh = log.open("wb")
        popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        fh.close()
        proc = Proc(name, popen, log)
        self.items.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 15.0) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(5)
        if proc in self.items:
            self.items.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.items)):
            self.stop(proc)


def wait_until(what: str, check: Any, timeout: float, procs: list[Proc] = ()) -> Any:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.popen.poll() is not None:
                tail = p.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{p.name} exited with {p.popen.returncode} while waiting "
                                   f"for {what}:\n{tail}")
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class Sampler:
    """Peak RSS (psutil, every 100 ms) and CPU seconds of each named pid."""

    def __init__(self, procs: list[Proc]) -> None:
        self.ps = {p.name: psutil.Process(p.pid) for p in procs}
        self.peak: dict[str, int] = dict.fromkeys(self.ps, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self.cpu0: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def _cpu(self) -> dict[str, float]:
        out = {}
        for name, p in self.ps.items():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[name] = t.user + t.system
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, p in self.ps.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], p.memory_info().rss)
            self._stop.wait(0.1)

    def _postgres(self) -> dict[int, float]:
        """CPU seconds of the PostgreSQL backends serving our processes' connections."""
        ports = set()
        for p in self.ps.values():
            with contextlib.suppress(psutil.Error):
                for c in p.net_connections(kind="tcp"):
                    if c.raddr and c.raddr.port == 5432 and c.laddr:
                        ports.add(f"({c.laddr.port})")
        out = {}
        if not ports:
            return out
        for p in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if (p.info["name"] or "").startswith("postgres") and any(x in cmd for x in ports):
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    out[p.pid] = t.user + t.system
        return out

    def __enter__(self) -> Sampler:
        self.cpu0 = self._cpu()
        self.pg0 = self._postgres()
        self.machine0 = psutil.cpu_times()
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        end = self._cpu()
        self.cpu = {k: end[k] - self.cpu0.get(k, 0.0) for k in end}
        pg = self._postgres()
        if pg:
            self.cpu["postgres"] = sum(max(0.0, v - self.pg0.get(k, 0.0)) for k, v in pg.items())
        m1 = psutil.cpu_times()
        busy = sum(m1) - sum(self.machine0) - (m1.idle - self.machine0.idle) - (
            m1.iowait - self.machine0.iowait)
        wall = time.monotonic() - self.t0
        cores = psutil.cpu_count() or 1
        self.machine_busy = busy / (wall * cores) if wall > 0 else 0.0
        # CPU used by processes not part of this benchmark (other users, py-spy, Redis)
        self.other_busy = max(0.0, busy - sum(self.cpu.values())) / (wall * cores) \
            if wall > 0 else 0.0


class PgWaits:
    """What our PostgreSQL sessions are doing, sampled from pg_stat_activity every 100 ms."""

    def __init__(self, procs: list[Proc]) -> None:
        self.ports: list[int] = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(proc.pid).net_connections(kind="tcp"):
                    if c.raddr and c.raddr.port == 5432 and c.laddr:
                        self.ports.append(c.laddr.port)
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pg-waits")

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "select state, coalesce(wait_event_type || ':' || wait_event, 'CPU'),"
                    " left(regexp_replace(query, '\\s+', ' ', 'g'), 70)"
                    " from pg_stat_activity where client_port = any(%s)", (self.ports,)
                ).fetchall()
                self.samples += 1
                for state, wait, query in rows:
                    if state == "active":
                        self.counts[f"active  {wait:<28} {query}"] += 1
                    elif state == "idle in transaction":
                        self.counts[f"idle in transaction (client working) {query}"] += 1
                self._stop.wait(0.1)

    def __enter__(self) -> PgWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def report(self, top: int = 12) -> str:
        lines = [f"    pg_stat_activity: {len(self.ports)} sessions, {self.samples} samples; "
                 "mean sessions per state:"]
        for key, n in self.counts.most_common(top):
            lines.append(f"      {n / max(1, self.samples):5.2f}  {key}")
        return "\n".join(lines)


# ---- one mode -------------------------------------------------------------------------------

@dataclass
class BatchResult:
    label: str
    events: int
    rate: float | None
    accepted_per_s: float
    completed_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    duplicates: int
    failed_callbacks: int
    vendor_calls_per_event: float
    elapsed_s: float
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_event: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0
    other_busy: float = 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, mode: str, work: Path) -> None:
        self.args = args
        self.mode = mode
        self.work = work / mode
        self.work.mkdir(parents=True, exist_ok=True)
        self.procs = Processes()
        self.sandbox_url = ""
        self.hub_port = free_port()
        self.hub: list[Proc] = []
        self.http = httpx.Client(timeout=30, trust_env=False)

    # -- setup --------------------------------------------------------------------------------
    def start_sandbox(self) -> dict[str, Any]:
        port = free_port()
        proc = self.procs.start(
            "sandbox", [PY, str(ROOT / "bench" / "sandbox_proc.py"), "--port", str(port),
                        "--callback-workers", str(self.args.callback_workers)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
            log=self.work / "sandbox.log")
        self.sandbox = proc
        self.sandbox_url = f"http://127.0.0.1:{port}"

        def config() -> dict[str, Any] | None:
            first = proc.log.read_text().splitlines()[:1]
            return json.loads(first[0]) if first and first[0].startswith("{") else None

        cfg: dict[str, Any] = wait_until("the sandbox", config, 30, [proc])
        self.post("/_sandbox/bench/setup", {"companies": 20, "contacts": 5})
        return cfg

    def hub_env(self, cfg: dict[str, Any]) -> dict[str, str]:
        conf = self.work / "config"
        conf.mkdir(exist_ok=True)
        for name in ("calendars.yaml", "team.yaml"):
            shutil.copy(self.args.src / "config" / name, conf / name)
        (conf / "connectors.yaml").write_text(f"""\
sources:
  {SOURCE}:
    vendor: connectwise
    poll: {{enabled: false}}          # webhook path only
    requests_per_minute: 1000000     # the budget must not be the bottleneck here
    config:
      site: {cfg['site']}
      codebase: {cfg['codebase']}
      company_id: {cfg['company_id']}
      public_key: {cfg['public_key']}
      private_key: ${{BENCH_CW_PRIVATE_KEY}}
      client_id: "{cfg['client_id']}"
      webhook_secret: ${{BENCH_CW_WEBHOOK_SECRET}}
      api_member: {cfg['api_member']}
      requests_per_minute: 1000000
""")
        # the sandbox's 20 companies (BENCH000..019), each linked to a hub client
        (conf / "clients.yaml").write_text("clients:\n" + "".join(
            f"  bench{c:03d}: {{links: [{{source: {SOURCE}, type: company, id: BENCH{c:03d}}}]}}\n"
            for c in range(20)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSPHUB_")}
        env.update({
            "BENCH_CW_PRIVATE_KEY": cfg["private_key"],
            "BENCH_CW_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MSPHUB_CONFIG_DIR": str(conf),
            "MSPHUB_MAPPINGS_DIR": str(self.args.src / "mappings"),
            "MSPHUB_PLAYBOOKS_DIR": str(self.args.src / "playbooks"),
            "MSPHUB_DATA_DIR": str(self.work / "data"),
            "MSPHUB_PUBLIC_URL": f"http://127.0.0.1:{self.hub_port}",
            "MSPHUB_HOST": "127.0.0.1",
            "MSPHUB_PORT": str(self.hub_port),
            "MSPHUB_LOG_FORMAT": "json",
            "MSPHUB_LOG_LEVEL": self.args.log_level,
            "PYTHONUNBUFFERED": "1",
        })
        if self.args.whatif:
            env["BENCH_WHATIF"] = self.args.whatif
            env["PYTHONPATH"] = os.pathsep.join(
                [str(ROOT / "bench" / "whatif"), *filter(None, [env.get("PYTHONPATH")])])
        if self.args.dramatiq_timeout:
            # read by dramatiq.worker at import: the consumers' longest idle back-off
            env["dramatiq_worker_timeout"] = str(self.args.dramatiq_timeout)
        if self.args.threads:
            env["MSPHUB_WORKER_THREADS"] = str(self.args.threads)
        if self.mode == "redis":
            env["MSPHUB_REDIS_URL"] = REDIS_URL
            env["MSPHUB_DATABASE_URL"] = PG_URL
        return env

    def reset_stores(self) -> None:
        import psycopg
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")

    def drop_stores(self) -> None:
        import psycopg
        import redis

        with contextlib.suppress(Exception):
            redis.Redis.from_url(REDIS_URL).flushdb()
        with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")

    def start_hub(self, cfg: dict[str, Any]) -> None:
        env = self.hub_env(cfg)
        if self.mode == "redis":
            self.reset_stores()
        serve = self.procs.start("serve", [MSPHUB, "serve"], env=env, cwd=self.work,
                                 log=self.work / "serve.log")
        self.hub = [serve]
        url = f"http://127.0.0.1:{self.hub_port}/healthz"
        wait_until("msphub serve", lambda: self.http.get(url).status_code == 200, 60, [serve])
        if self.mode == "redis":
            workers = [self.procs.start(f"worker{i + 1}", [MSPHUB, "worker"], env=env,
                                        cwd=self.work, log=self.work / f"worker{i + 1}.log")
                       for i in range(self.args.workers)]
            for w in workers:
                wait_until(f"{w.name} to start",
                           lambda w=w: "worker started" in w.log.read_text(errors="replace"),
                           60, [w])
            self.hub += workers
        from connectors.base import build_connector

        connector = build_connector("connectwise", SOURCE,
                                    {**cfg, "webhook_secret": WEBHOOK_SECRET})
        try:
            connector.register_webhooks(  # type: ignore[attr-defined]
                f"http://127.0.0.1:{self.hub_port}/webhooks/{SOURCE}")
        finally:
            connector.close()

    # -- batches ------------------------------------------------------------------------------
    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(self.sandbox_url + path, json=body)
        r.raise_for_status()
        return r.json()

    def get(self, path: str) -> Any:
        r = self.http.get(self.sandbox_url + path)
        r.raise_for_status()
        return r.json()

    def wait_quiet(self) -> None:
        """Wait (bounded) until the machine is mostly idle: others share this box."""
        deadline = time.monotonic() + self.args.quiet_wait
        while True:
            busy = psutil.cpu_percent(interval=2.0)
            if busy <= self.args.quiet_below or time.monotonic() > deadline:
                if busy > self.args.quiet_below:
                    print(f"[{self.mode}] machine still {busy:.0f}% busy: measuring anyway",
                          flush=True)
                return
            print(f"[{self.mode}] machine {busy:.0f}% busy (other work): waiting", flush=True)

    def batch(self, label: str, count: int, rate: float | None, *,
              profile: Path | None = None) -> BatchResult:
        if label != "warmup" and self.args.quiet_wait > 0:
            self.wait_quiet()
        stats0 = self.get("/_sandbox/stats")
        spies: list[subprocess.Popen[bytes]] = []
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            for p in self.hub:
                spies.append(subprocess.Popen(
                    [str(VENV / "py-spy"), "record", "--pid", str(p.pid), "--rate", "100",
                     "--format", "raw", "--nonblocking", "--threads",
                     *{"gil": ["--gil"], "idle": ["--idle"]}.get(self.args.spy, []),
                     "-o", str(profile / f"{self.mode}-{p.name}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True))
            time.sleep(1.0)
        waits = PgWaits(self.hub) if (self.mode == "redis" and self.args.pg_waits
                                      and label != "warmup") else None
        with Sampler([self.sandbox, *self.hub]) as sampler, \
                (waits or contextlib.nullcontext()):
            self.post("/_sandbox/bench/create", {"count": count, "rate": rate, "tag": label})
            deadline = time.monotonic() + self.args.timeout
            last_change, last_launched = time.monotonic(), -1
            while time.monotonic() < deadline:
                prog = self.get("/_sandbox/bench/progress")
                if prog["error"]:
                    raise RuntimeError(f"ticket generator failed: {prog['error']}")
                if prog["launched"] != last_launched:
                    last_launched, last_change = prog["launched"], time.monotonic()
                if not prog["generating"] and prog["launched"] >= count:
                    break
                if time.monotonic() - last_change > self.args.stall:
                    break  # nothing new for a while: count what is missing as lost
                for p in self.hub:
                    if p.popen.poll() is not None:
                        raise RuntimeError(f"{p.name} died (see {p.log})")
                time.sleep(0.2)
        for spy in spies:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)
        if waits is not None:
            print(waits.report(), flush=True)
        time.sleep(self.args.settle)  # a second copy of a note would show up here
        report = self.get("/_sandbox/bench/report")
        return self.summarise(label, count, rate, report, stats0, sampler)

    def summarise(self, label: str, count: int, rate: float | None, report: dict[str, Any],
                  stats0: dict[str, Any], sampler: Sampler) -> BatchResult:
        tickets = report["tickets"]
        created = [t["created"] for t in tickets if t["created"]]
        t0 = min(created)
        latencies, lost, dupes, last_note = [], 0, 0, t0
        for t in tickets:
            launches = [ts for ts, launch in t["notes"] if launch]
            if len(launches) != 1:
                lost += 1
                dupes += len(launches) > 1
            if launches:
                latencies.append((min(launches) - t["created"]) * 1000)
                last_note = max(last_note, min(launches))
        deliveries = [(ts, ok) for ts, ok in report["deliveries"] if ts >= t0]
        ok_times = [ts for ts, ok in deliveries if ok]
        failed = sum(1 for _, ok in deliveries if not ok)
        accepted = (len(ok_times) / (max(ok_times) - t0)) if ok_times else 0.0
        elapsed = last_note - t0
        calls = report["stats"]["requests"] - stats0["requests"]
        n = max(1, len(tickets))
        return BatchResult(
            label=label, events=len(tickets), rate=rate, accepted_per_s=accepted,
            completed_per_s=len(tickets) / elapsed if elapsed > 0 else 0.0,
            p50_ms=pct(latencies, 50), p95_ms=pct(latencies, 95), p99_ms=pct(latencies, 99),
            max_ms=max(latencies, default=float("nan")), lost=lost, duplicates=dupes,
            failed_callbacks=failed, vendor_calls_per_event=calls / n, elapsed_s=elapsed,
            peak_rss_mb={k: v / 2**20 for k, v in sampler.peak.items()},
            cpu_ms_per_event={k: v * 1000 / n for k, v in sampler.cpu.items()},
            machine_busy=sampler.machine_busy, other_busy=sampler.other_busy,
        )

    def run(self) -> list[BatchResult]:
        results: list[BatchResult] = []
        try:
            cfg = self.start_sandbox()
            self.start_hub(cfg)
            warm = self.batch("warmup", self.args.warmup, None)
            print(f"[{self.mode}] warm-up: {warm.events} events, lost {warm.lost}", flush=True)
            if self.args.rate:
                results.append(self.batch("paced", self.args.events, self.args.rate))
            else:
                burst = self.batch("burst", self.args.events, None, profile=self.args.profile)
                results.append(burst)
                print(format_result(self.mode, burst), flush=True)
                rate = max(1.0, burst.completed_per_s / 2)
                count = max(50, min(self.args.events, int(rate * self.args.paced_seconds)))
                results.append(self.batch("paced", count, round(rate, 1)))
            print(format_result(self.mode, results[-1]), flush=True)
        finally:
            self.procs.stop_all()
            self.http.close()
            if self.mode == "redis" and not self.args.keep:
                self.drop_stores()
        return results


# ---- output ---------------------------------------------------------------------------------

def format_result(mode: str, r: BatchResult) -> str:
    rss = ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items())
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in r.cpu_ms_per_event.items())
    rate = f" @ {r.rate}/s" if r.rate else ""
    return (f"[{mode}] {r.label}{rate}: {r.events} events in {r.elapsed_s:.1f}s | "
            f"accepted {r.accepted_per_s:.0f} webhooks/s | completed {r.completed_per_s:.0f}"
            f" events/s | latency p50 {r.p50_ms:.0f} p95 {r.p95_ms:.0f} p99 {r.p99_ms:.0f} "
            f"max {r.max_ms:.0f} ms | lost {r.lost} (dup {r.duplicates}, failed callbacks "
            f"{r.failed_callbacks}) | vendor calls/event {r.vendor_calls_per_event:.2f}\n"
            f"    peak RSS MB: {rss}\n    CPU ms/event: {cpu} | machine CPU busy "
            f"{100 * r.machine_busy:.0f}%, of which not this benchmark "
            f"{100 * r.other_busy:.0f}%")


def markdown(all_results: dict[str, list[BatchResult]]) -> str:
    lines = ["| mode | batch | events | accepted webhooks/s | completed events/s | "
             "p50 / p95 / p99 ms | lost | vendor calls/event | peak RSS MB | CPU ms/event | "
             "machine CPU busy (other) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, results in all_results.items():
        for r in results:
            rss = "; ".join(f"{k} {v:.0f}" for k, v in r.peak_rss_mb.items())
            cpu = "; ".join(f"{k} {v:.1f}" for k, v in r.cpu_ms_per_event.items())
            label = r.label + (f" @ {r.rate:g}/s" if r.rate else "")
            lines.append(f"| {mode} | {label} | {r.events} | {r.accepted_per_s:.0f} | "
                         f"{r.completed_per_s:.0f} | {r.p50_ms:.0f} / {r.p95_ms:.0f} / "
                         f"{r.p99_ms:.0f} | {r.lost} | {r.vendor_calls_per_event:.2f} | "
                         f"{rss} | {cpu} | {100 * r.machine_busy:.0f}% "
                         f"({100 * r.other_busy:.0f}%) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["embedded", "redis", "both"], default="both")
    ap.add_argument("--events", type=int, default=2000, help="tickets per measured batch")
    ap.add_argument("--rate", type=float, default=None,
                    help="tickets/s (paced run only); default: burst, then half its rate")
    ap.add_argument("--workers", type=int, default=2, help="msphub worker processes (redis)")
    ap.add_argument("--threads", type=int, default=None,
                    help="MSPHUB_WORKER_THREADS (default: the hub's, 8)")
    ap.add_argument("--callback-workers", type=int, default=8,
                    help="sandbox threads POSTing callbacks concurrently (stock sandbox: 2)")
    ap.add_argument("--warmup", type=int, default=40, help="tickets before measuring")
    ap.add_argument("--paced-seconds", type=float, default=20.0,
                    help="length of the half-rate paced batch (events capped at --events)")
    ap.add_argument("--timeout", type=float, default=180.0, help="max seconds per batch")
    ap.add_argument("--stall", type=float, default=20.0,
                    help="stop waiting after this many seconds without a new note")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait after the last note before counting duplicates")
    ap.add_argument("--log-level", default="INFO", help="MSPHUB_LOG_LEVEL of hub processes")
    ap.add_argument("--profile", type=Path, default=None,
                    help="directory for py-spy raw profiles of the hub during the burst")
    ap.add_argument("--spy", choices=["cpu", "gil", "idle"], default="gil",
                    help="py-spy sampling: on-CPU threads, GIL holder only, or all threads")
    ap.add_argument("--whatif", default="",
                    help="bench/whatif patches to apply in the hub processes, e.g. "
                         "noping,runinit,onerecord (measures proposals; not the product)")
    ap.add_argument("--dramatiq-timeout", type=int, default=None,
                    help="dramatiq_worker_timeout (ms) for `msphub worker` (dramatiq: 1000; "
                         "the embedded worker uses 100)")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each measured batch, wait up to this many seconds for the "
                         "machine to be at most --quiet-below %% busy (0: do not wait)")
    ap.add_argument("--quiet-below", type=float, default=25.0)
    ap.add_argument("--pg-waits", action="store_true",
                    help="sample pg_stat_activity of the hub's sessions (redis mode)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    ap.add_argument("--keep", action="store_true", help="keep the work dir and PG schema")
    ap.add_argument("--rev", default=None,
                    help="benchmark this git revision (git archive into the work dir, put "
                         "first on PYTHONPATH) instead of the working tree")
    args = ap.parse_args()
    if args.events < 1 or args.events > 100_000:
        ap.error("--events must be between 1 and 100000")
    if args.rate is not None and not 0 < args.rate <= 10_000:
        ap.error("--rate must be in (0, 10000]")

    work = Path(tempfile.mkdtemp(prefix="msphub-bench-"))
    print(f"work dir (logs): {work}", flush=True)
    if args.rev:
        src = work / "src"
        src.mkdir()
        sha = subprocess.run(["git", "rev-parse", args.rev], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(src), *filter(None, [os.environ.get("PYTHONPATH")])])
        args.src = src
        print(f"source: git {sha[:12]} ({args.rev}) in {src}", flush=True)
    else:
        args.src = ROOT
        print("source: working tree", flush=True)
    modes = ["embedded", "redis"] if args.mode == "both" else [args.mode]
    started = time.monotonic()
    all_results: dict[str, list[BatchResult]] = {}
    for mode in modes:
        all_results[mode] = Bench(args, mode, work).run()
    if not args.keep and not args.profile:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal wall time {time.monotonic() - started:.0f}s\n")
    print(markdown(all_results))
    if args.json:
        args.json.write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv[1:],
             "results": {m: [r.__dict__ for r in rs] for m, rs in all_results.items()}},
            indent=2))


if __name__ == "__main__":
    main()

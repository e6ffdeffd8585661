"""End-to-end harness: a ConnectWise sandbox, real ``msphub`` processes, and bounded waits.

Everything binds 127.0.0.1; every wait is a bounded poll of a condition; every process
started here is killed by :meth:`Hub.stop` (the fixtures call it at teardown, also on
failure).

- :class:`Psa` wraps an in-process :class:`SandboxServer` (records, switches, note
  counting, capturing one signed callback).
- :class:`FaultProxy` sits between the hub and the sandbox when a test needs failures the
  sandbox switches cannot make (the PSA *applied* a request and then answered 500, or
  its answer was lost): it forwards the request, then misbehaves.
- :class:`Hub` writes a tmp ``config/`` (+ copies of the repo's playbooks and mappings),
  starts ``msphub serve`` / ``worker`` subprocesses with ``MSPHUB_*`` pointing at tmp
  dirs, registers the sandbox callbacks, and reads the hub's database for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from connectors.base import build_connector
from connectors.connectwise.sandbox import SandboxServer
from connectors.loopback import LoopbackServer

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOURCE = "cw-sandbox"
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789abcdef"
MARKER = re.compile(r"\[msphub:([0-9a-f]+d?)\]")

T = TypeVar("T")


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], *, timeout: float, what: str,
               interval: float = 0.05, detail: Callable[[], str] | None = None) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# -- the PSA --------------------------------------------------------------------------------


class Psa:
    """The ConnectWise sandbox (in-process, on 127.0.0.1) with scenario helpers."""

    def __init__(self) -> None:
        self.server = SandboxServer()
        self.cw = self.server.sandbox
        self._captured: list[tuple[str, bytes, dict[str, str]]] = []
        self._capture_armed = 0
        self._lock = threading.Lock()
        original = self.cw.dispatcher.submit

        def submit(url: str, body: bytes, headers: dict[str, str]) -> bool:
            with self._lock:
                if self._capture_armed > 0:
                    self._capture_armed -= 1
                    self._captured.append((url, body, dict(headers)))
                    return True
            return original(url, body, headers)

        self.cw.dispatcher.submit = submit  # type: ignore[method-assign]

    def start(self) -> Psa:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def api_path(self, ticket_id: int, suffix: str = "/notes") -> str:
        return f"/{self.cw.codebase}apis/3.0/service/tickets/{ticket_id}{suffix}"

    # records ---------------------------------------------------------------------------

    def new_client(self, name: str = "Acme Ltd", identifier: str = "ACME") -> dict[str, int]:
        """A company and one contact (the leaver) of it."""
        company = self.cw.create_company(name, identifier)
        contact = self.cw.create_contact(company["id"], "Jo", "Bloggs", "jo@acme.example")
        return {"company": company["id"], "contact": contact["id"]}

    def leaver_ticket(self, client: dict[str, int], summary: str = "Leaver: Jo Bloggs") -> int:
        """A leaver ticket (Service Desk, type Leaver, with a contact): sends a callback."""
        ticket = self.cw.create_ticket(summary, company_id=client["company"], type="Leaver",
                                       contact_id=client["contact"])
        return int(ticket["id"])

    # notes -------------------------------------------------------------------------------

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        return self.cw.notes(ticket_id)

    def markers(self, ticket_id: int) -> list[str]:
        """Every ``[msphub:<key>]`` marker on the ticket's notes, in note order."""
        return [m for n in self.notes(ticket_id) for m in MARKER.findall(n["text"])]

    def wait_for_notes(self, ticket_ids: list[int], count: int, *, timeout: float,
                       detail: Callable[[], str] | None = None) -> None:
        """Wait until each ticket has at least ``count`` notes (callers assert exactly)."""
        def enough() -> bool:
            return all(len(self.notes(t)) >= count for t in ticket_ids)

        def why() -> str:
            counts = Counter(len(self.notes(t)) for t in ticket_ids)
            return f"notes per ticket → tickets: {dict(counts)}" + (
                f"\n{detail()}" if detail else "")

        wait_until(enough, timeout=timeout, what=f"{count} note(s) on {len(ticket_ids)} "
                   f"ticket(s)", detail=why)

    def note_posts(self, ticket_id: int) -> int:
        """How many POSTs of a note reached the sandbox for this ticket (failed ones too)."""
        return self.cw.request_count("POST", self.api_path(ticket_id))

    def note_reads(self, ticket_id: int) -> int:
        return self.cw.request_count("GET", self.api_path(ticket_id))

    # callbacks ---------------------------------------------------------------------------

    def capture_next_callback(self) -> None:
        """Hold back the next callback (record it instead of sending it)."""
        with self._lock:
            self._capture_armed += 1

    def captured(self) -> list[tuple[str, bytes, dict[str, str]]]:
        with self._lock:
            return list(self._captured)


# -- a misbehaving hop in front of the PSA -------------------------------------------------


@dataclass
class Fault:
    """What the proxy does to the next matching request(s)."""

    method: str
    path: re.Pattern[str]
    action: str  # apply_then_500 | apply_then_hang | hang_then_forward
    seconds: float = 0.0
    times: int | None = 1  # None: every matching request
    used: int = 0


class FaultProxy:
    """HTTP proxy to the sandbox that can answer 500 or stall *after* the PSA applied a write.

    The sandbox's own switches act before a request is applied (a forced status or a
    delay that ends in the client hanging up, so nothing is stored); a real PSA also
    fails after it stored the note. ``applied_unanswered`` counts requests applied
    upstream whose answer is still being held back.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.applied_unanswered = 0
        self.fired: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await self._app(scope, receive, send)

        self._server = LoopbackServer(app)  # a plain coroutine function: ASGI 3

    def start(self) -> FaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def add(self, method: str, path: str, action: str, *, seconds: float = 0.0,
            times: int | None = 1) -> Fault:
        fault = Fault(method, re.compile(path), action, seconds, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.path.search(path) and (
                        fault.times is None or fault.used < fault.times):
                    fault.used += 1
                    self.fired[fault.action] += 1
                    return fault
        return None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        fault = self._take(method, path)
        if fault is not None and fault.action == "hang_then_forward":
            await asyncio.sleep(fault.seconds)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30, trust_env=False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.lower() not in (b"content-length", b"connection", b"accept-encoding")]
        upstream = await self._client.request(
            method, f"{self.upstream}{path}" + (f"?{query}" if query else ""),
            headers=headers, content=b"".join(chunks))
        status, body = upstream.status_code, upstream.content
        out_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                       for k, v in upstream.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding",
                                            "content-encoding", "connection")]
        if fault is not None and fault.action == "apply_then_500":
            status, body = 500, b'{"code":"ServerError","message":"forced by the proxy"}'
            out_headers = [(b"content-type", b"application/json")]
        elif fault is not None and fault.action == "apply_then_hang":
            with self._lock:
                self.applied_unanswered += 1
            try:
                await asyncio.sleep(fault.seconds)
            finally:
                with self._lock:
                    self.applied_unanswered -= 1
        out_headers.append((b"content-length", str(len(body)).encode()))
        with contextlib.suppress(Exception):  # the client may have hung up meanwhile
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            await send({"type": "http.response.body", "body": body})


# -- the hub --------------------------------------------------------------------------------


@dataclass
class HubOptions:
    """How one hub deployment is configured."""

    redis_url: str | None = None
    database_url: str | None = None  # None: SQLite under the tmp data dir
    site: str | None = None  # PSA base URL (default: the sandbox)
    poll: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    timeout_seconds: float = 10.0
    completed_status: str | None = None
    # hub client key → the sandbox company identifiers linked to it (config/clients.yaml)
    clients: dict[str, list[str]] = field(default_factory=lambda: {"acme": ["ACME"]})
    # more links: hub client key → [(source, type, vendor id)]
    links: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    # generic signed-webhook sources (standing in for tools without a connector): name → secret
    webhook_sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Proc:
    """A started subprocess, its output files, and how to end it."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = []
        for path in (self.out, self.err):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (pid {self.pid}, rc {self.popen.poll()}) ---\n" + "\n".join(text)

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """JSON log lines of this process whose ``event`` is ``event``."""
        found = []
        with contextlib.suppress(OSError):
            for line in self.err.read_text(errors="replace").splitlines():
                if f'"{event}"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("event") == event:
                        found.append(record)
        return found

    def kill(self) -> None:
        """SIGKILL (no cleanup in the process), then reap it."""
        if self.alive():
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


class Hub:
    """One msphub deployment made of subprocesses against a tmp config and database."""

    def __init__(self, root: Path, psa: Psa, options: HubOptions) -> None:
        self.root = root
        self.psa = psa
        self.options = options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[Proc] = []
        self._counter = Counter[str]()
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.database_url = options.database_url or f"sqlite:///{(data / 'msphub.db').as_posix()}"
        self._write_config()
        self.env = self._env()
        self.engine = sa.create_engine(self.database_url, poolclass=NullPool)

    # configuration -------------------------------------------------------------------------

    def connector_config(self) -> dict[str, Any]:
        """The ``connectwise`` config as the hub sees it (real secrets, for registration)."""
        return self.psa.server.connector_config(
            site=self.options.site or self.psa.url, webhook_secret=WEBHOOK_SECRET,
            timeout_seconds=self.options.timeout_seconds, page_size=50)

    def _write_config(self) -> None:
        config = self.root / "config"
        config.mkdir(exist_ok=True)
        for name in ("team.yaml", "calendars.yaml"):
            shutil.copy(REPO / "config" / name, config / name)
        for name in ("playbooks", "mappings"):
            shutil.copytree(REPO / name, self.root / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        cfg = self.connector_config()
        cfg["private_key"] = "${CW_PRIVATE_KEY}"
        cfg["webhook_secret"] = "${CW_WEBHOOK_SECRET}"
        source: dict[str, Any] = {"vendor": "connectwise", "poll": self.options.poll,
                                  "requests_per_minute": 100_000, "config": cfg}
        if self.options.completed_status:
            source["completed_status"] = self.options.completed_status
        # JSON is YAML: no quoting surprises for URLs or ${ENV} references
        sources = {SOURCE: source, **{
            name: {"vendor": "webhook", "poll": {"enabled": False}, "config": {"secret": secret}}
            for name, secret in self.options.webhook_sources.items()}}
        (config / "connectors.yaml").write_text(json.dumps({"sources": sources}, indent=2))
        clients = {key: {"links": [{"source": SOURCE, "type": "company", "id": ident}
                                   for ident in idents]}
                   for key, idents in self.options.clients.items()}
        for key, links in self.options.links.items():
            entry = clients.setdefault(key, {"links": []})
            entry["links"] += [{"source": s, "type": ty, "id": i} for s, ty, i in links]
        (config / "clients.yaml").write_text(json.dumps({"clients": clients}, indent=2))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSPHUB_")}
        env.update({
            "MSPHUB_DATA_DIR": str(self.root / "data"),
            "MSPHUB_DATABASE_URL": self.database_url,
            "MSPHUB_CONFIG_DIR": str(self.root / "config"),
            "MSPHUB_MAPPINGS_DIR": str(self.root / "mappings"),
            "MSPHUB_PLAYBOOKS_DIR": str(self.root / "playbooks"),
            "MSPHUB_PUBLIC_URL": self.url,
            "MSPHUB_HOST": "127.0.0.1",
            "MSPHUB_PORT": str(self.port),
            "MSPHUB_LOG_FORMAT": "json",
            "MSPHUB_LOG_LEVEL": "INFO",
            "MSPHUB_SECRET_KEY": "e2e-secret-key",
            "CW_PRIVATE_KEY": self.psa.cw.private_key,
            "CW_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PYTHONUNBUFFERED": "1",
        })
        if self.options.redis_url:
            env["MSPHUB_REDIS_URL"] = self.options.redis_url
        return env

    # processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None
               ) -> Proc:
        self._counter[name] += 1
        tag = f"{name}-{self._counter[name]}"
        out, err = self.root / f"{tag}.out", self.root / f"{tag}.err"
        with out.open("wb") as fo, err.open("wb") as fe:
            popen = subprocess.Popen(argv, cwd=self.root, env={**self.env, **(extra_env or {})},
                                     stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        proc = Proc(tag, popen, out, err)
        self.procs.append(proc)
        return proc

    def _msphub(self, *args: str) -> list[str]:
        return [str(BIN / "msphub"), *args]

    def serve(self, timeout: float = 40.0) -> Proc:
        """``msphub serve`` on this hub's port; returns once ``/healthz`` answers 200."""
        proc = self._spawn("serve", self._msphub("serve", "--port", str(self.port)))

        def healthy() -> bool:
            if not proc.alive():
                raise AssertionError(f"msphub serve exited\n{proc.tail()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1, trust_env=False
                                 ).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=timeout, what="msphub serve /healthz", interval=0.1,
                   detail=proc.tail)
        return proc

    def worker(self, *, threads: int | None = None, lease_seconds: float | None = None,
               timeout: float = 40.0) -> Proc:
        """``msphub worker``; returns once it has started consuming (and requeued).

        ``lease_seconds`` shortens the outbox send lease for that process only
        (``MSPHUB_OUTBOX_LEASE_SECONDS``).
        """
        args = ["worker"] + (["--threads", str(threads)] if threads else [])
        extra = {} if lease_seconds is None else {
            "MSPHUB_OUTBOX_LEASE_SECONDS": str(lease_seconds)}
        proc = self._spawn("worker", self._msphub(*args), extra)

        def started() -> bool:
            if not proc.alive():
                raise AssertionError(f"msphub worker exited\n{proc.tail()}")
            return "worker started" in proc.out.read_text(errors="replace")

        wait_until(started, timeout=timeout, what="msphub worker to start", interval=0.1,
                   detail=proc.tail)
        return proc

    def cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run one ``msphub`` command to completion; returns its stdout."""
        done = subprocess.run(self._msphub(*args), cwd=self.root, env=self.env,
                              capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"msphub {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout.decode()}\n{done.stderr.decode()}")
        return done.stdout.decode()

    def admin_token(self) -> str:
        """A fresh admin API token from ``msphub tokens create`` (same database)."""
        out = self.cli("tokens", "create", "--role", "admin", "--name", "e2e-admin")
        return out.strip().splitlines()[-1].strip()

    def register_callbacks(self) -> list[str]:
        """Register this hub's webhook URL with the sandbox (as ``connectors register``)."""
        connector = build_connector("connectwise", SOURCE, self.connector_config())
        try:
            return connector.register_webhooks(f"{self.url}/webhooks/{SOURCE}")
        finally:
            connector.close()

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process this hub started: SIGTERM to all, wait, then SIGKILL."""
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            proc.kill()
        self.engine.dispose()

    # the hub's database --------------------------------------------------------------------

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def statuses(self, table: str) -> dict[str, int]:
        """``{status: count}`` of ``inbox_events`` or ``outbox_notes``."""
        return {r[0]: r[1] for r in self.rows(
            f"SELECT status, count(*) FROM {table} GROUP BY status")}

    def runs_per_ticket(self) -> Counter[str]:
        return Counter(r[0] for r in self.rows("SELECT ticket_id FROM runs"))

    def state(self) -> str:
        """A one-line summary for failure messages."""
        try:
            return (f"inbox={self.statuses('inbox_events')} outbox="
                    f"{self.statuses('outbox_notes')} runs={sum(self.runs_per_ticket().values())}")
        except sa.exc.SQLAlchemyError as exc:
            return f"(database not readable: {exc})"

    def detail(self) -> str:
        return f"{self.state()}\n{self.logs()}"


@contextlib.contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the test database, selected through the URL; dropped afterwards.

    Connections still open at the end (a killed worker's) are terminated first.
    """
    import uuid

    schema = f"e2e_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(base_url).update_query_dict(
        {"options": f"-csearch_path={schema}", "application_name": schema})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": schema})
            conn.execute(sa.text("SET lock_timeout = '30s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

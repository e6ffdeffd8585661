"""The ConnectWise sandbox as its own process, instrumented for the benchmark.

``python bench/sandbox_proc.py --port N [--callback-workers K]``

It is the stock ``ConnectWiseSandbox`` (same REST subset, same signed callbacks, same
request counting) with three bench-only additions, none of which change what the hub
sees:

* wall-clock timestamps (``time.time()``, sub-millisecond) of every ticket creation,
  every note creation and every callback delivery, recorded by wrapping the store and
  the dispatcher; the stock records only carry whole-second ``_info`` stamps;
* ``POST /_sandbox/bench/create`` starts a thread that creates leaver tickets (each with
  a contact) in this process, as fast as possible or paced at ``rate``/s, so the load
  generator costs no HTTP round trip per ticket;
* ``GET /_sandbox/bench/progress`` and ``GET /_sandbox/bench/report`` for the driver.

Paths under ``/_sandbox/`` are not counted as vendor API requests by the sandbox gate,
so the vendor-call figure only contains what the hub sent.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# the installed project (editable), or the tree first on PYTHONPATH (run.py --rev)
from connectors.connectwise.sandbox import ConnectWiseSandbox, SandboxServer
from connectors.connectwise.sandbox_callbacks import CallbackDispatcher

LAUNCH_MARK = " launched — "


class TimedDispatcher(CallbackDispatcher):
    """The stock dispatcher, also recording when each delivery finished (and its status)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.done_at: list[tuple[float, bool]] = []

    def _run(self) -> None:  # same loop as CallbackDispatcher._run, plus a timestamp
        import httpx

        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                url, body, headers = item
                try:
                    outcome: int | str = client.post(url, content=body,
                                                     headers=headers).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                ok = isinstance(outcome, int) and outcome < 300
                now = time.time()
                with self._idle:
                    self.done_at.append((now, ok))
                    self.counts["delivered" if ok else "failed"] += 1
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()


class Bench:
    """Timestamps and the ticket generator around one sandbox."""

    def __init__(self, sandbox: ConnectWiseSandbox) -> None:
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.created: dict[int, float] = {}  # ticket id -> creation time
        self.notes: dict[int, list[tuple[float, bool]]] = {}  # ticket id -> (time, launch?)
        self.gen: threading.Thread | None = None
        self.gen_error: str | None = None
        self.batch: list[int] = []  # ticket ids of the current batch, in creation order
        self.companies: list[tuple[int, list[int]]] = []
        store = sandbox.store
        orig_create, orig_note = store.create_ticket, store.add_note

        def create_ticket(fields: Any, *, member: str) -> Any:
            record = orig_create(fields, member=member)
            with self.lock:
                self.created[record["id"]] = time.time()
            return record

        def add_note(ticket_id: int, body: Any, *, member: Any) -> Any:
            note = orig_note(ticket_id, body, member=member)
            now = time.time()
            launch = LAUNCH_MARK in str(note.get("text") or "")
            with self.lock:
                self.notes.setdefault(ticket_id, []).append((now, launch))
            return note

        store.create_ticket = create_ticket  # type: ignore[method-assign]
        store.add_note = add_note  # type: ignore[method-assign]

    def setup(self, companies: int, contacts: int) -> None:
        cw = self.sandbox
        if self.companies:
            return
        for c in range(companies):
            company = cw.create_company(f"Bench Client {c:03d}", f"BENCH{c:03d}")
            ids = [cw.create_contact(company["id"], "Leaver", f"Person{c}x{k}",
                                     f"leaver{c}x{k}@bench.example")["id"]
                   for k in range(contacts)]
            self.companies.append((company["id"], ids))

    def _generate(self, count: int, rate: float | None, tag: str) -> None:
        cw = self.sandbox
        start = time.perf_counter()
        try:
            for i in range(count):
                if rate:
                    wait = start + i / rate - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                company_id, contacts = self.companies[i % len(self.companies)]
                contact = contacts[(i // len(self.companies)) % len(contacts)]
                board = "HR" if i % 5 == 0 else "Service Desk"
                ticket = cw.create_ticket(f"Leaver {tag}-{i}", company_id=company_id,
                                          board=board, type="Leaver", contact_id=contact)
                self.batch.append(ticket["id"])
        except Exception as exc:  # reported to the driver, never silent
            self.gen_error = f"{type(exc).__name__}: {exc}"

    def start(self, count: int, rate: float | None, tag: str) -> None:
        if self.gen is not None and self.gen.is_alive():
            raise RuntimeError("a batch is still being created")
        self.batch = []
        self.gen_error = None
        self.gen = threading.Thread(target=self._generate, args=(count, rate, tag),
                                    daemon=True, name="bench-generator")
        self.gen.start()

    def progress(self) -> dict[str, Any]:
        ids = list(self.batch)
        with self.lock:
            launched = sum(1 for t in ids if any(ok for _, ok in self.notes.get(t, ())))
        return {"created": len(ids), "launched": launched,
                "generating": bool(self.gen and self.gen.is_alive()),
                "error": self.gen_error, "stats": self.sandbox.stats()}

    def report(self) -> dict[str, Any]:
        ids = list(self.batch)
        with self.lock:
            tickets = [{"id": t, "created": self.created.get(t),
                        "notes": [list(n) for n in self.notes.get(t, ())]} for t in ids]
        disp = self.sandbox.dispatcher
        with disp._idle:
            deliveries = [list(d) for d in getattr(disp, "done_at", [])]
        return {"tickets": tickets, "deliveries": deliveries, "stats": self.sandbox.stats()}


def bench_app(bench: Bench, inner: Any) -> Any:
    async def setup(request: Request) -> Response:
        data = json.loads(await request.body() or b"{}")
        bench.setup(int(data.get("companies", 20)), int(data.get("contacts", 5)))
        return JSONResponse({"companies": len(bench.companies)})

    async def create(request: Request) -> Response:
        data = json.loads(await request.body() or b"{}")
        rate = data.get("rate")
        bench.start(int(data["count"]), float(rate) if rate else None, str(data.get("tag", "b")))
        return JSONResponse({"ok": True})

    async def progress(request: Request) -> Response:
        return JSONResponse(bench.progress())

    async def report(request: Request) -> Response:
        return JSONResponse(bench.report())

    app = Starlette(routes=[
        Route("/_sandbox/bench/setup", setup, methods=["POST"]),
        Route("/_sandbox/bench/create", create, methods=["POST"]),
        Route("/_sandbox/bench/progress", progress),
        Route("/_sandbox/bench/report", report),
    ])

    async def router(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_sandbox/bench/"):
            await app(scope, receive, send)
        else:
            await inner(scope, receive, send)

    return router


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--callback-workers", type=int, default=2,
                        help="threads POSTing callbacks (the stock sandbox uses 2)")
    args = parser.parse_args()
    sandbox = ConnectWiseSandbox(callback_workers=args.callback_workers)
    sandbox.dispatcher = TimedDispatcher(workers=args.callback_workers, loopback_only=True)
    bench = Bench(sandbox)
    # the sandbox's app is a cached property: wrap it before the server reads it
    sandbox.__dict__["app"] = bench_app(bench, sandbox.app)
    server = SandboxServer(sandbox, port=args.port)
    server.start()
    print(json.dumps(server.connector_config()), flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()

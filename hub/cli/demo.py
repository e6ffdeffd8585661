"""``msphub demo``: the hub with a simulated ConnectWise PSA and a short scenario to watch."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import uvicorn
from rich.table import Table

from connectors.base import build_connector, load_sandbox
from hub.api.app import create_app
from hub.cli.admin import create_demo_token
from hub.cli.app import app, fail, hub_errors, out
from hub.errors import StepLocked
from hub.logging import configure_logging
from hub.runtime.embedded import EmbeddedWorkers
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime, sync_clients
from hub.services.runs import RunFilter, to_state
from hub.services.sources import PollSettings, Source, Sources, SourceSpec
from hub.settings import get_settings
from hub.store.db import transaction
from hub.store.migrate import upgrade

SOURCE = "cw-sandbox"
DEMO_CLIENTS = f"""\
clients:
  acme:
    name: Acme Manufacturing
    tags: [managed-services]
    links:
      - {{source: {SOURCE}, type: company, id: ACME}}
"""
TECHS = ("alice", "bob", "carol", "dan", "erin")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _wait(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    fail(f"timed out after {timeout:.0f}s waiting for {what} (see the log file)")


@app.command()
def demo(
    port: int = typer.Option(8000, help="Port for the hub (API, dashboard, webhooks)."),
    sandbox_port: int = typer.Option(0, help="Port for the PSA sandbox (0: any free port)."),
    data_dir: Path = typer.Option(Path("data/demo"), help="Demo database and log (reset)."),
    exit_after: bool = typer.Option(False, "--exit", help="Stop after the scenario."),
) -> None:
    """Start the hub with a simulated ConnectWise PSA and play a short scenario.

    A new agreement launches client onboarding; a leaver ticket launches user
    offboarding; technicians complete the steps; notes and the completion record land
    on the simulated ticket. Then it keeps running until Ctrl-C so you can look around.
    """
    host = "127.0.0.1"
    if not _port_free(host, port):
        fail(f"port {port} is already in use; try `msphub demo --port {port + 1}`")
    base = get_settings()
    data_dir = data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    log_path = data_dir / "hub.log"
    log_file = log_path.open("a", encoding="utf-8")
    configure_logging("json", "INFO", stream=log_file)
    public_url = f"http://{host}:{port}"
    # the demo's own copy of config/: team and calendars, but no other connectors and no
    # recurring schedules, so the scenario is all there is to watch
    config_dir = data_dir / "config"
    if base.config_dir.exists():
        shutil.copytree(base.config_dir, config_dir,
                        ignore=shutil.ignore_patterns("connectors.yaml", "schedules.yaml"))
    else:
        config_dir.mkdir()
    # the scenario's client, linked to the company the sandbox PSA is about to create
    (config_dir / "clients.yaml").write_text(DEMO_CLIENTS, encoding="utf-8")
    settings = base.model_copy(update={
        "data_dir": data_dir, "database_url": f"sqlite:///{data_dir / 'msphub.db'}",
        "redis_url": None, "public_url": public_url, "host": host, "port": port,
        "config_dir": config_dir})

    out.print("[bold]msphub demo[/] — a ConnectWise PSA sandbox and the hub, on this machine\n")
    sandbox_class = load_sandbox("connectwise")
    if sandbox_class is None:
        fail("the connectwise connector ships no sandbox")
    sandbox: Any = sandbox_class(port=sandbox_port)  # type: ignore[call-arg]
    sandbox.start()
    cw = sandbox.sandbox
    connector = build_connector("connectwise", SOURCE, sandbox.connector_config(page_size=1000))
    spec = SourceSpec(vendor="connectwise", completed_status="Completed",
                      poll=PollSettings(enabled=True, interval="30s"))
    sources = Sources({SOURCE: Source(SOURCE, spec, connector)})
    with hub_errors():
        rt = build_runtime(settings, sources=sources)
        upgrade(rt.ctx.engine)
        sync_clients(rt.ctx)
    token = create_demo_token(rt.ctx)
    api = create_app(rt)
    server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_config=None,
                                           access_log=False))
    threading.Thread(target=server.run, name="msphub-api", daemon=True).start()
    _wait("the API to start", lambda: server.started)
    workers = EmbeddedWorkers(rt, threads=4)
    workers.start()
    connector.register_webhooks(f"{public_url}/webhooks/{SOURCE}")  # type: ignore[attr-defined]
    out.print(f"  PSA sandbox   {sandbox.url}  (ConnectWise REST API, callbacks registered)")
    out.print(f"  hub           {public_url}  (SQLite at {data_dir / 'msphub.db'})\n")

    try:
        ticket_id = _scenario(rt, cw)
        _summary(rt, cw, ticket_id)
        out.print("\n[bold]Where to look[/]")
        out.print(f"  dashboard     {public_url}/?token={token}")
        out.print(f"  API docs      {public_url}/docs   (Authorization: Bearer {token})")
        out.print(f"  ticket notes  {sandbox.url}/_sandbox/tickets/{ticket_id}/notes")
        out.print(f"  CLI           MSPHUB_DATABASE_URL=sqlite:///{data_dir / 'msphub.db'} "
                  "msphub runs list")
        out.print(f"  log           {log_path}")
        if not exit_after:
            out.print("\nRunning — create tickets in the sandbox or work the runs; "
                      "Ctrl-C to stop.")
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        out.print("\nstopping…")
    finally:
        workers.stop()
        server.should_exit = True
        rt.stop()
        sandbox.stop()
        log_file.close()


def _runs(rt: Runtime, playbook: str) -> list[Any]:
    with rt.ctx.sessions() as session:
        return rt.ctx.runs.search(session, RunFilter(playbook=playbook))


def _notes(cw: Any, ticket_id: int) -> list[dict[str, Any]]:
    return cw.notes(ticket_id)  # type: ignore[no-any-return]


def _scenario(rt: Runtime, cw: Any) -> int:
    out.print("[bold]1.[/] ConnectWise: Acme Manufacturing signs a Managed Services agreement")
    company = cw.create_company("Acme Manufacturing", "ACME")
    cw.create_agreement(company["id"], "Acme — Managed Services", type="Managed Services",
                        start_date=time.strftime("%Y-%m-%d"))
    [onboarding] = _wait("client onboarding to launch", lambda: _runs(rt, "client-onboarding"))
    out.print(f"   → hub launched [green]client onboarding[/] (run #{onboarding.id}, "
              f"{len(onboarding.steps)} steps, assigned by role)")

    out.print("[bold]2.[/] ConnectWise: a leaver ticket arrives on the HR board")
    contact = cw.create_contact(company["id"], "Jo", "Bloggs", "jo.bloggs@acme.example")
    ticket = cw.create_ticket("Leaver: Jo Bloggs — last day Friday", company_id=company["id"],
                              board="HR", type="Leaver", contact_id=contact["id"])
    ticket_id = int(ticket["id"])
    [offboarding] = _wait("user offboarding to launch", lambda: _runs(rt, "user-offboarding"))
    _wait("the launch note on the ticket", lambda: _notes(cw, ticket_id))
    out.print(f"   → hub launched [green]user offboarding[/] (run #{offboarding.id}) and "
              f"posted a note on ticket #{ticket_id}")

    out.print("[bold]3.[/] Technicians work the offboarding checklist, in order")
    with rt.ctx.sessions() as session:
        state = rt.ctx.runs.get(session, offboarding.id)
    todo = [s for s in state.steps if s.status.value != "not_applicable"]
    locked = next((s for s in todo if s.status.value == "locked"), None)
    if locked is not None:
        try:
            with transaction(rt.ctx.sessions) as session:
                rt.ctx.runs.complete(session, offboarding.id, locked.step_id, by="user:bob")
        except StepLocked as exc:
            out.print(f"   ✗ completing '{locked.title}' early is refused: {exc.reason}")
    for i, step in enumerate(todo):
        who = f"user:{step.assignee or TECHS[i % len(TECHS)]}"
        with transaction(rt.ctx.sessions) as session:
            rt.ctx.runs.complete(session, offboarding.id, step.step_id, by=who,
                                 evidence=f"Done in the admin portal ({step.step_id})")
        out.print(f"   ✓ {step.title}  [dim]{who}[/]", highlight=False)
    _wait("the completion record on the ticket",
          lambda: any("COMPLETED" in n["text"] for n in _notes(cw, ticket_id)), timeout=30)
    _wait("the ticket to be set to Completed",
          lambda: cw.ticket(ticket_id)["status"]["name"] == "Completed", timeout=30)
    return ticket_id


def _summary(rt: Runtime, cw: Any, ticket_id: int) -> None:
    out.print("\n[bold]Runs[/]")
    table = Table("run", "playbook", "client", "status", "progress")
    with rt.ctx.sessions() as session:
        for row in rt.ctx.runs.search(session, RunFilter()):
            done, total = to_state(row).progress()
            table.add_row(str(row.id), row.playbook_id, row.client.name or row.client.key,
                          row.status, f"{done}/{total}")
    out.print(table)
    notes = _notes(cw, ticket_id)
    docs = cw.documents(ticket_id)
    status = cw.ticket(ticket_id)["status"]["name"]
    out.print(f"\n[bold]Ticket #{ticket_id} in the PSA[/]: status {status}, "
              f"{len(notes)} notes, {len(docs)} document(s) attached")
    shown = notes if len(notes) <= 5 else [*notes[:2], {"text": "…"}, *notes[-2:]]
    for note in shown:
        first = str(note["text"]).splitlines()[0]
        out.print(f"  • {first[:110]}", highlight=False)

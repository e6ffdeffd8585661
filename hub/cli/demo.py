"""``msphub demo``: the hub with a simulated PSA (ConnectWise, Autotask or HaloPSA) and
Datto RMM, and a short scenario to watch."""

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

from connectors.base import build_connector
from hub.api.app import create_app
from hub.cli.admin import create_demo_token
from hub.cli.app import app, fail, hub_errors, out
from hub.cli.demo_psa import PSAS, DemoPSA, demo_psa
from hub.cli.demo_rmm import AGENT_STEP, BACKUP_STEP, DemoRMM, rmm_scenario
from hub.cli.demo_rmm import SOURCE as RMM_SOURCE
from hub.cli.demo_rmm import VENDOR as RMM_VENDOR
from hub.core.checklists.counting import count_steps
from hub.errors import HubError, StepLocked
from hub.logging import configure_logging
from hub.runtime.embedded import EmbeddedWorkers
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime, sync_clients
from hub.services.runs import RunFilter, to_state
from hub.services.sources import PollSettings, Source, Sources, SourceSpec
from hub.settings import get_settings
from hub.store.db import transaction
from hub.store.migrate import upgrade

DEMO_CLIENTS = """\
clients:
  acme:
    name: Acme Manufacturing
    tags: [managed-services]
    links:
      - {{source: {psa}, type: {psa_type}, id: "{psa_id}"}}
      - {{source: {rmm}, type: site, id: "{site}"}}
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
    psa: str = typer.Option("connectwise", help=f"The PSA to simulate: {', '.join(PSAS)}."),
    data_dir: Path = typer.Option(Path("data/demo"), help="Demo database and log (reset)."),
    exit_after: bool = typer.Option(False, "--exit", help="Stop after the scenario."),
) -> None:
    """Start the hub with a simulated PSA and Datto RMM and play a short scenario.

    A new agreement launches client onboarding; a leaver ticket launches user
    offboarding; technicians complete the steps; notes and the completion record land
    on the simulated ticket. Then onboarding meets the RMM: a verification check ticks
    the agent step once every device is online, and a backup alert ticks "Verify
    backups". It keeps running until Ctrl-C so you can look around.
    """
    host = "127.0.0.1"
    if psa not in PSAS:
        fail(f"unknown PSA {psa!r}; choose one of: {', '.join(PSAS)}")
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
    side = demo_psa(psa)
    rmm = DemoRMM()
    out.print(f"[bold]msphub demo[/] — a {side.label} sandbox, a Datto RMM sandbox and the "
              "hub, on this machine\n")
    side.start(sandbox_port)
    rmm.start()
    # the scenario's client: its PSA company and RMM site exist before the hub starts
    side.create_client("Acme Manufacturing")
    rmm.create_site("Acme Manufacturing")
    settings = base.model_copy(update={
        "data_dir": data_dir, "database_url": f"sqlite:///{data_dir / 'msphub.db'}",
        "redis_url": None, "public_url": public_url, "host": host, "port": port,
        "config_dir": _demo_config(base.config_dir, data_dir, side, rmm)})
    connector = build_connector(psa, side.source, side.connector_config())
    rmm_connector = build_connector(RMM_VENDOR, RMM_SOURCE, rmm.connector_config())
    sources = Sources({
        side.source: Source(side.source, SourceSpec(
            vendor=psa, completed_status=side.completed_status, poll=side.poll), connector),
        RMM_SOURCE: Source(RMM_SOURCE, SourceSpec(
            vendor=RMM_VENDOR, poll=PollSettings(enabled=True, interval="30s")),
            rmm_connector)})
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
    how = side.connect(connector, f"{public_url}/webhooks/{side.source}")
    rmm.connect(f"{public_url}")
    out.print(f"  PSA sandbox   {side.server.url}  ({side.label} API, {how})")
    out.print(f"  RMM sandbox   {rmm.server.url}  (Datto RMM API, alert webhooks to the hub)")
    out.print(f"  hub           {public_url}  (SQLite at {data_dir / 'msphub.db'})\n")

    try:
        ticket_id, onboarding = _scenario(rt, side)
        rmm_scenario(rt, rmm, onboarding, _wait)
        _summary(rt, side, ticket_id, onboarding)
        out.print("\n[bold]Where to look[/]")
        out.print(f"  dashboard     {public_url}/?token={token}")
        out.print(f"  API docs      {public_url}/docs   (Authorization: Bearer {token})")
        out.print(f"  ticket notes  {side.notes_url(ticket_id)}")
        out.print(f"  CLI           MSPHUB_DATABASE_URL=sqlite:///{data_dir / 'msphub.db'} "
                  f"msphub runs show {onboarding}")
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
        side.server.stop()
        rmm.server.stop()
        log_file.close()


def _demo_config(source: Path, data_dir: Path, side: DemoPSA, rmm: DemoRMM) -> Path:
    """The demo's own copy of config/: team and calendars, but no other connectors and no
    recurring schedules (the scenario is all there is to watch), and the scenario's client
    linked to its PSA company and RMM site."""
    config_dir = data_dir / "config"
    if source.exists():
        shutil.copytree(source, config_dir,
                        ignore=shutil.ignore_patterns("connectors.yaml", "schedules.yaml"))
    else:
        config_dir.mkdir()
    (config_dir / "clients.yaml").write_text(DEMO_CLIENTS.format(
        psa=side.source, psa_type=side.link_type, psa_id=side.link_id, rmm=RMM_SOURCE,
        site=rmm.site_uid), encoding="utf-8")
    return config_dir


def _runs(rt: Runtime, playbook: str) -> list[Any]:
    with rt.ctx.sessions() as session:
        return rt.ctx.runs.search(session, RunFilter(playbook=playbook))


def _scenario(rt: Runtime, side: DemoPSA) -> tuple[int, int]:
    """Steps 1 to 3: agreement → onboarding; leaver ticket → offboarding, worked to the end."""
    out.print(f"[bold]1.[/] {side.label}: Acme Manufacturing signs a Managed Services "
              "agreement")
    side.sign_agreement("Acme — Managed Services")
    [onboarding] = _wait("client onboarding to launch", lambda: _runs(rt, "client-onboarding"),
                         timeout=60)
    out.print(f"   → hub launched [green]client onboarding[/] (run #{onboarding.id}, "
              f"{count_steps(s.status for s in onboarding.steps).label}, assigned by role)")

    out.print(f"[bold]2.[/] {side.label}: a leaver ticket arrives on the HR board")
    ticket_id = side.leaver_ticket("Leaver: Jo Bloggs — last day Friday", "Jo", "Bloggs")
    [offboarding] = _wait("user offboarding to launch", lambda: _runs(rt, "user-offboarding"),
                          timeout=60)
    _wait("the launch note on the ticket", lambda: side.notes(ticket_id))
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
        who = _finish(rt, offboarding.id, step.step_id, step.assignee or TECHS[i % len(TECHS)])
        out.print(f"   ✓ {step.title}  [dim]{who}[/]", highlight=False)
    _wait("the completion record on the ticket",
          lambda: any("COMPLETED" in n for n in side.notes(ticket_id)), timeout=30)
    _wait(f"the ticket to be set to {side.completed_status}",
          lambda: side.status(ticket_id) == side.completed_status, timeout=30)
    return ticket_id, int(onboarding.id)


def _finish(rt: Runtime, run_id: int, step_id: str, member: str) -> str:
    """Complete a step as ``member`` — or, for a sign-off, approve it as a holder of the
    approving role who did none of the approved steps (four-eyes); returns the actor."""
    with rt.ctx.sessions() as session:
        row = rt.ctx.runs.load(session, run_id)
        definition = rt.ctx.runs.playbook_for(row).step(step_id)
        client = row.client.key
    role = getattr(definition, "approver_role", None)
    if role is None:
        with transaction(rt.ctx.sessions) as session:
            rt.ctx.runs.complete(session, run_id, step_id, by=f"user:{member}",
                                 evidence=f"Done in the admin portal ({step_id})")
        return f"user:{member}"
    refusal: HubError | None = None
    for approver in rt.ctx.team.members_for(role, client):
        try:
            with transaction(rt.ctx.sessions) as session:
                rt.ctx.runs.approve(session, run_id, step_id,
                                    by=f"user:{approver}", member=approver)
        except HubError as exc:
            refusal = exc
            continue
        return f"user:{approver} (approved)"
    fail(f"nobody in config/team.yaml may approve '{step_id}' ({refusal})")


def _summary(rt: Runtime, side: DemoPSA, ticket_id: int, onboarding: int) -> None:
    out.print("\n[bold]Runs[/]")
    table = Table("run", "playbook", "client", "status", "progress")
    with rt.ctx.sessions() as session:
        for row in rt.ctx.runs.search(session, RunFilter()):
            done, total = to_state(row).progress()
            table.add_row(str(row.id), row.playbook_id, row.client.name or row.client.key,
                          row.status, f"{done}/{total}")
        state = rt.ctx.runs.get(session, onboarding)
    out.print(table)
    out.print(f"\n[bold]Onboarding run #{onboarding}: proven by the RMM[/]")
    for step_id in (AGENT_STEP, BACKUP_STEP):
        step = state.step(step_id)
        out.print(f"  • {step.title}: {step.status.value} by {step.done_by}", highlight=False)
    if state.ticket is None:
        out.print("  (launched from the agreement, so it has no ticket: its evidence is on the "
                  f"run page and in `msphub runs show {onboarding}`)", highlight=False)
    notes = side.notes(ticket_id)
    status = side.status(ticket_id)
    out.print(f"\n[bold]Ticket #{ticket_id} in the PSA[/]: status {status}, "
              f"{len(notes)} notes, {side.documents(ticket_id)} document(s) attached")
    shown = notes if len(notes) <= 5 else [*notes[:2], "…", *notes[-2:]]
    for note in shown:
        first = note.splitlines()[0] if note else ""
        out.print(f"  • {first[:110]}", highlight=False)

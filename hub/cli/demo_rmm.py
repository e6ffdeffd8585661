"""The RMM side of ``msphub demo``: a Datto RMM sandbox with the client's site, the
verification check that ticks "Deploy the RMM agent on all endpoints", and the backup
alert that ticks "Verify backups".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import load_sandbox
from hub.cli.app import out
from hub.runtime.process import Runtime
from hub.services.checks import MISSING, latest_status, run_checks
from hub.store.db import transaction

SOURCE = "datto-sandbox"
VENDOR = "datto-rmm"
DEVICES = (("ACME-FS01", True), ("ACME-PC01", True), ("ACME-LT03", False))
LATE = "ACME-LT03"  # the laptop whose agent checks in during the scenario
# onboarding steps the engineers finish first, so the agent and backup steps open
BEFORE_AGENT = ("kickoff-meeting", "collect-contacts-sites", "previous-provider-handover",
                "provision-msp-access")
BEFORE_BACKUP = ("configure-m365-backup",)
AGENT_STEP, BACKUP_STEP = "deploy-rmm-agent", "verify-backups"

Wait = Callable[..., Any]


class DemoRMM:
    """The Datto RMM sandbox with Acme's site and three devices, one laptop offline."""

    def __init__(self) -> None:
        self.server: Any = None
        self.site_uid = ""
        self.device_uids: dict[str, str] = {}

    @property
    def store(self) -> Any:
        return self.server.sandbox.store

    def start(self, port: int = 0) -> None:
        cls = load_sandbox(VENDOR)
        if cls is None:
            raise RuntimeError("the datto-rmm connector ships no sandbox")
        self.server = cls(port=port)  # type: ignore[call-arg]
        self.server.start()

    def create_site(self, name: str) -> None:
        """Acme's site; the laptop was last seen three days ago."""
        site = self.store.create_site(name)
        self.site_uid = str(site["uid"])
        stale = int((datetime.now(UTC) - timedelta(days=3)).timestamp() * 1000)
        for hostname, online in DEVICES:
            extra = {} if online else {"lastSeen": stale}
            device = self.store.create_device(self.site_uid, hostname, online=online, **extra)
            self.device_uids[hostname] = str(device["uid"])

    def connector_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.server.connector_config(page_size=100)
        return config

    def connect(self, hub_url: str) -> None:
        """Datto's global webhook → the hub (the URL carries the source's secret)."""
        secret = self.connector_config()["webhook_secret"]
        self.server.sandbox.add_webhook(f"{hub_url}/webhooks/{SOURCE}/{secret}")

    def check_in(self, hostname: str) -> None:
        """The device's agent comes online."""
        with self.store.lock:
            device = self.store.devices[self.device_uids[hostname]]
            device["online"] = True
            device["lastSeen"] = int(datetime.now(UTC).timestamp() * 1000)

    def backup_succeeds(self) -> str:
        """A backup alert on the file server, then resolved by the next good backup."""
        alert = self.store.raise_alert(
            self.site_uid, device_uid=self.device_uids["ACME-FS01"],
            diagnostics="Backup job 'Nightly image' completed successfully", priority="Low")
        self.store.resolve_alert(alert["alertUid"], by="backup")
        return str(alert["alertUid"])


def _step(rt: Runtime, run_id: int, step_id: str) -> Any:
    with rt.ctx.sessions() as session:
        return rt.ctx.runs.get(session, run_id).step(step_id)


def _work(rt: Runtime, run_id: int, steps: tuple[str, ...]) -> None:
    for step_id in steps:
        step = _step(rt, run_id, step_id)
        if step.finished:
            continue
        who = f"user:{step.assignee or 'alice'}"
        with transaction(rt.ctx.sessions) as session:
            rt.ctx.runs.complete(session, run_id, step_id, by=who,
                                 evidence=f"Done ({step_id})")
        out.print(f"   ✓ {step.title}  [dim]{who}[/]", highlight=False)


def _missing(rt: Runtime, run_id: int) -> list[str] | None:
    with rt.ctx.sessions() as session:
        status = latest_status(session, run_id).get(AGENT_STEP)
    return status["missing"] if status and status["action"] == MISSING else None


def _done(rt: Runtime, run_id: int, step_id: str) -> Any:
    step = _step(rt, run_id, step_id)
    return step if step.status.value == "done" else None


def rmm_scenario(rt: Runtime, rmm: DemoRMM, run_id: int, wait: Wait) -> None:
    """Onboarding meets the RMM: the agent check (missing, then ticked) and the backup."""
    out.print("[bold]4.[/] Engineers work client onboarding up to the RMM agent step")
    _work(rt, run_id, BEFORE_AGENT)
    out.print("[bold]5.[/] The hub checks Acme's Datto RMM site: every device needs an "
              "online agent")
    run_checks(rt.ctx, rt.sources)  # what the periodic `checks` job does every minute
    for line in wait("the check's missing list", lambda: _missing(rt, run_id)):
        out.print(f"   … still missing: {line}", highlight=False)
    out.print(f"   Datto RMM: {LATE}'s agent checks in")
    rmm.check_in(LATE)
    deadline = time.monotonic() + 30
    while _done(rt, run_id, AGENT_STEP) is None and time.monotonic() < deadline:
        run_checks(rt.ctx, rt.sources)
        time.sleep(0.2)
    agent = wait("the agent step to be ticked", lambda: _done(rt, run_id, AGENT_STEP))
    out.print(f"   ✓ {agent.title}  [dim]{agent.done_by}[/]", highlight=False)
    out.print(f"     evidence: {agent.evidence}", highlight=False, markup=False)

    out.print("[bold]6.[/] Datto RMM: the nightly backup alert on ACME-FS01 resolves")
    _work(rt, run_id, BEFORE_BACKUP)
    rmm.backup_succeeds()
    backup = wait("verify-backups to be ticked", lambda: _done(rt, run_id, BACKUP_STEP),
                  timeout=60)
    out.print(f"   ✓ {backup.title}  [dim]{backup.done_by}[/]", highlight=False)
    out.print(f"     evidence: {backup.evidence}", highlight=False, markup=False)

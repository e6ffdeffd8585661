"""Verification checks: open steps that declare a ``check`` are judged against the client's
RMM and ticked, with the evidence, once the check holds.

One pass (the periodic job ``checks``): find the open steps of active runs whose playbook
step has a check, group them by hub client, list the devices of the client's linked RMM
sites **once per (source, client)** — every step of the client is judged on that one
listing — and then, per step:

* it holds → an audit fact ``check_passed`` with the evidence snapshot (every device, what
  was seen, when), and the step is completed by ``check:<kind>`` with the evidence text
  (so the ticket note shows it);
* it does not → an audit fact ``check_missing`` with what is still missing, written only
  when that list changed since the last one (the run page and ``msphub runs show`` read
  the newest).

``gate(source, client)`` says whether this (source, client) may be listed now: the runtime
passes one backed by the rate-limiter backend (Redis or in-memory) so every worker shares
one listing per client per source poll interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, TransientError
from connectors.inventory import DeviceFact, DeviceFacts, DeviceInventory
from hub.core.checklists.checks import Check, Verdict, evaluate, facts_of
from hub.core.checklists.engine import Fact
from hub.core.states import RunStatus, StepStatus
from hub.services.context import HubContext
from hub.services.sources import Sources
from hub.store import audit
from hub.store.db import transaction
from hub.store.models import AuditEntry, Client, ClientLink, PlaybookVersion, Run, RunStep

log = structlog.get_logger()

PASSED = "check_passed"
MISSING = "check_missing"
Gate = Callable[[str, str], bool]  # (source, hub client key) → may list its devices now
MAX_STEPS = 1000  # open steps judged in one pass (oldest runs first)


def _always(source: str, client: str) -> bool:
    return True


@dataclass(frozen=True)
class DueStep:
    """An open step of an active run whose playbook step declares checks."""

    run_id: int
    step_id: str
    client: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class CheckOutcome:
    """What one pass did for one step: ``ticked``, ``missing`` or ``unchanged``."""

    run_id: int
    step_id: str
    result: str
    missing: list[str] = field(default_factory=list)


def actor_for(checks: Sequence[Check]) -> str:
    """``check:agents_online`` (or ``check:a+b`` for several): the audit actor."""
    return "check:" + "+".join(dict.fromkeys(c.kind for c in checks))


def _checked_steps(session: Session) -> dict[int, list[str]]:
    """Playbook version id → the ids of its steps that declare a check (read from the
    stored definitions, so only runs that can have a due step are loaded)."""
    out: dict[int, list[str]] = {}
    for version_id, definition in session.execute(
            select(PlaybookVersion.id, PlaybookVersion.definition)).all():
        steps = definition.get("steps") if isinstance(definition, dict) else None
        ids = [str(s["id"]) for s in steps or () if isinstance(s, dict) and s.get("check")]
        if ids:
            out[int(version_id)] = ids
    return out


def due_steps(ctx: HubContext, session: Session, *, limit: int = MAX_STEPS) -> list[DueStep]:
    """Open steps of active runs that declare checks in their run's playbook version."""
    checked = _checked_steps(session)
    if not checked:
        return []
    wanted = {step for ids in checked.values() for step in ids}
    rows = session.execute(
        select(RunStep.run_id, RunStep.step_id, Run.playbook_version_id)
        .join(Run, Run.id == RunStep.run_id)
        .where(Run.status == RunStatus.ACTIVE.value, RunStep.status == StepStatus.OPEN.value,
               Run.playbook_version_id.in_(list(checked)), RunStep.step_id.in_(wanted))
        .order_by(RunStep.run_id, RunStep.position).limit(limit)
    ).all()
    runs: dict[int, Run] = {}
    found: list[DueStep] = []
    for run_id, step_id, version_id in rows:
        if step_id not in checked[version_id]:
            continue
        run = runs.get(run_id) or ctx.runs.load(session, run_id)
        runs[run_id] = run
        checks = ctx.runs.playbook_for(run).step(step_id).check
        if checks:
            found.append(DueStep(run_id, step_id, run.client.key, tuple(checks)))
    return found


def _sites(session: Session, client: str, sources: Sources) -> dict[str, list[str]]:
    """The client's linked records per source whose connector lists devices."""
    links = session.execute(
        select(ClientLink.source, ClientLink.vendor_id).join(Client, Client.id ==
                                                             ClientLink.client_id)
        .where(Client.key == client).order_by(ClientLink.id)).all()
    out: dict[str, list[str]] = {}
    for source, vendor_id in links:
        src = sources.get(source)
        if src is not None and isinstance(src.connector, DeviceInventory):
            out.setdefault(source, []).append(vendor_id)
    return out


def _last_missing(session: Session, run_id: int, step_id: str) -> list[str] | None:
    entry = session.execute(
        select(AuditEntry).where(AuditEntry.run_id == run_id, AuditEntry.step_id == step_id,
                                 AuditEntry.action == MISSING)
        .order_by(AuditEntry.id.desc()).limit(1)).scalar_one_or_none()
    return list(entry.data.get("missing") or []) if entry is not None else None


def latest_status(session: Session, run_id: int) -> dict[str, dict[str, Any]]:
    """The newest check fact of each step of a run: ``{step_id: {action, at, missing}}``
    (what ``msphub runs show`` prints beside a step)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in session.execute(
            select(AuditEntry).where(AuditEntry.run_id == run_id,
                                     AuditEntry.action.in_((PASSED, MISSING)))
            .order_by(AuditEntry.id)).scalars():
        if entry.step_id:
            out[entry.step_id] = {"action": entry.action, "at": entry.at,
                                  "missing": list(entry.data.get("missing") or [])}
    return out


class _Listing:
    """Device listings of one pass: one per (source, client), errors kept as reasons."""

    def __init__(self, sources: Sources, gate: Gate) -> None:
        self.sources = sources
        self.gate = gate
        self._cache: dict[str, tuple[list[DeviceFacts], list[str]] | None] = {}

    def devices(self, session: Session, client: str, wanted: frozenset[str]
                ) -> tuple[list[DeviceFacts], list[str]] | None:
        """The client's devices on every linked RMM and the sources that failed for good
        (a refused credential, an incomplete listing: the check cannot hold), or None when
        there is no verdict now (listed recently, none linked, or a transient failure)."""
        if client in self._cache:
            return self._cache[client]
        sites = _sites(session, client, self.sources)
        allowed = {s: ids for s, ids in sites.items() if self.gate(s, client)}
        result: tuple[list[DeviceFacts], list[str]] | None = None
        if allowed:
            want = frozenset(DeviceFact(w) for w in wanted)
            devices: list[DeviceFacts] = []
            failed: list[str] = []
            for source, ids in allowed.items():
                src = self.sources.get(source)
                assert src is not None and isinstance(src.connector, DeviceInventory)
                try:
                    devices += src.connector.device_facts(ids, want=want)
                except TransientError as exc:  # no verdict now; the next interval retries
                    log.warning("check_listing_deferred", source=source, client=client,
                                error=exc.message)
                    self._cache[client] = None
                    return None
                except ConnectorError as exc:
                    log.warning("check_listing_failed", source=source, client=client,
                                error=exc.message)
                    failed.append(f"{source}: devices could not be listed ({exc.message})")
            result = (devices, failed)
        elif not sites:
            log.info("check_client_has_no_rmm", client=client)
        self._cache[client] = result
        return result


def run_checks(ctx: HubContext, sources: Sources, *, gate: Gate = _always) -> list[CheckOutcome]:
    """One pass over every open step with a check (see the module docstring)."""
    with ctx.sessions() as session:
        due = due_steps(ctx, session)
        wanted: dict[str, frozenset[str]] = {}
        for step in due:
            wanted[step.client] = wanted.get(step.client, frozenset()) | facts_of(step.checks)
        listing = _Listing(sources, gate)
        judged: list[tuple[DueStep, Verdict, list[str]]] = []
        for step in due:
            found = listing.devices(session, step.client, wanted[step.client])
            if found is None:
                continue
            devices, failed = found
            judged.append((step, evaluate(step.checks, devices, ctx.clock()), failed))
    return [_record(ctx, step, verdict, failed) for step, verdict, failed in judged]


def _record(ctx: HubContext, step: DueStep, verdict: Verdict,
            failed: list[str]) -> CheckOutcome:
    """Tick the step with the evidence, or note what is still missing (one transaction)."""
    by = actor_for(step.checks)
    holds = verdict.holds and not failed
    missing = [*failed, *verdict.missing()]
    with transaction(ctx.sessions) as session:
        if holds:
            run = ctx.runs.load(session, step.run_id, for_update=True)
            current = next((s for s in run.steps if s.step_id == step.step_id), None)
            if (run.status != RunStatus.ACTIVE.value or current is None
                    or current.status != StepStatus.OPEN.value):
                return CheckOutcome(step.run_id, step.step_id, "unchanged")  # done meanwhile
            fact = Fact(PASSED, by, verdict.checked_at, step.step_id,
                        data={"snapshot": verdict.snapshot()})
            audit.append(session, [fact], run_id=step.run_id)
            ctx.runs.complete(session, step.run_id, step.step_id, by=by,
                              evidence=verdict.evidence())
            log.info("check_ticked", run=step.run_id, step=step.step_id, actor=by)
            return CheckOutcome(step.run_id, step.step_id, "ticked")
        if _last_missing(session, step.run_id, step.step_id) == missing:
            return CheckOutcome(step.run_id, step.step_id, "unchanged", missing)
        fact = Fact(MISSING, by, verdict.checked_at, step.step_id,
                    data={"missing": missing, "devices": len(verdict.results[0].devices)
                          if verdict.results else 0})
        audit.append(session, [fact], run_id=step.run_id)
    return CheckOutcome(step.run_id, step.step_id, "missing", missing)

"""``msphub runs``: list, show, launch, complete, approve, reject, skip and cancel runs."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from hub.cli.app import app, context, fail, hub_errors, out, runtime
from hub.core.checklists.engine import TicketRef
from hub.core.states import StepStatus
from hub.services.checks import MISSING, latest_status
from hub.services.runs import RunFilter, to_state
from hub.store.db import transaction

runs_app = typer.Typer(help="Checklist runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

ACTOR_HELP = "Who is acting, recorded in the audit trail."
_STYLE = {
    StepStatus.DONE: "green", StepStatus.SKIPPED: "yellow", StepStatus.OPEN: "bold",
    StepStatus.LOCKED: "dim", StepStatus.NOT_APPLICABLE: "dim strike",
}


@runs_app.command("list")
def runs_list(
    client: str = typer.Option(None, help="Hub client key."),
    playbook: str = typer.Option(None, help="Playbook id."),
    assignee: str = typer.Option(None, help="Runs with open steps for this technician."),
    status: str = typer.Option(None, help="active, completed or cancelled."),
    overdue: bool = typer.Option(None, "--overdue/--not-overdue", help="Runs with late steps."),
    limit: int = typer.Option(50, min=1, max=1000),
) -> None:
    """List runs, newest first."""
    ctx = context(migrate=True)
    now = ctx.clock()
    table = Table("run", "playbook", "client", "status", "progress", "overdue", "launched",
                  "ticket")
    with ctx.sessions() as session:
        rows = ctx.runs.search(session, RunFilter(client=client, playbook=playbook,
                                                  assignee=assignee, status=status,
                                                  overdue=overdue, limit=limit))
        for row in rows:
            state = to_state(row)
            done, total = state.progress()
            late = len(state.overdue(now))
            table.add_row(str(row.id), f"{row.playbook_id} v{state.playbook_version}",
                          row.client.name or row.client.key, row.status, f"{done}/{total}",
                          f"[red]{late}[/]" if late else "",
                          f"{row.launched_at:%Y-%m-%d %H:%M}",
                          f"{row.ticket_source}#{row.ticket_id}" if row.ticket_id else "")
    out.print(table)


@runs_app.command("show")
def runs_show(run_id: int = typer.Argument(...)) -> None:
    """Show one run with every step."""
    ctx = context(migrate=True)
    now = ctx.clock()
    with hub_errors(), ctx.sessions() as session:
        row = ctx.runs.load(session, run_id)
        state = to_state(row)
        checks = latest_status(session, run_id)
    done, total = state.progress()
    out.print(f"[bold]Run {state.id}[/] {row.playbook_version.title} "
              f"(v{state.playbook_version}) for {row.client.name or state.client_id} — "
              f"{state.status}, {done}/{total} steps")
    if state.ticket:
        out.print(f"ticket: {state.ticket.source}#{state.ticket.id}")
    table = Table("#", "step", "status", "assignee", "due", "done by", "evidence")
    for s in state.steps:
        due = f"{s.due_at:%Y-%m-%d %H:%M}Z" if s.due_at else ""
        if s.is_overdue(now):
            due = f"[red]{due} overdue[/]"
        style = _STYLE.get(s.status, "")
        table.add_row(str(s.position + 1), f"{s.title} [dim]({s.step_id})[/]",
                      f"[{style}]{s.status.value}[/]", s.assignee or "", due, s.done_by or "",
                      s.evidence or s.skip_reason or "")
    out.print(table)
    _print_checks(state, checks)


def _print_checks(state: Any, checks: dict[str, dict[str, Any]]) -> None:
    """What each open step's RMM check still misses (the newest ``check_missing`` fact)."""
    for s in state.steps:
        status = checks.get(s.step_id)
        if status is None or status["action"] != MISSING or s.status is not StepStatus.OPEN:
            continue
        out.print(f"RMM check of '{s.title}' ({s.step_id}), {status['at']:%Y-%m-%d %H:%M}Z "
                  "— still missing:", highlight=False)
        for line in status["missing"]:
            out.print(f"  • {line}", highlight=False, markup=False)


def _parse_inputs(pairs: list[str] | None, raw_json: str | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            fail(f"--inputs-json is not valid JSON: {exc.msg}")
        if not isinstance(loaded, dict):
            fail("--inputs-json must be a JSON object")
        inputs.update(loaded)
    for pair in pairs or []:
        if "=" not in pair:
            fail(f"--input takes name=value, got '{pair}'")
        key, value = pair.split("=", 1)
        inputs[key.strip()] = value
    return inputs


@runs_app.command("launch")
def runs_launch(
    playbook: str = typer.Argument(..., help="Playbook id."),
    client: str = typer.Option(..., help="Hub client key (msphub clients list)."),
    client_name: str = typer.Option(None, help="Client display name."),
    input_: list[str] = typer.Option(None, "--input", "-i", help="name=value (repeatable)."),
    inputs_json: str = typer.Option(None, help="Inputs as a JSON object."),
    ticket: str = typer.Option(None, help="Originating ticket as source:id."),
    actor: str = typer.Option("user:cli", help=ACTOR_HELP),
) -> None:
    """Launch a run of a playbook for a client."""
    inputs = _parse_inputs(input_, inputs_json)
    ref = None
    if ticket:
        if ":" not in ticket:
            fail("--ticket takes source:id, e.g. cw-prod:1234")
        source, tid = ticket.split(":", 1)
        ref = TicketRef(source, tid)
    with runtime() as rt, hub_errors(), transaction(rt.ctx.sessions) as session:
        row = rt.ctx.runs.launch(session, playbook, client=client, client_name=client_name,
                                 inputs=inputs, by=actor, ticket=ref)
        run_id = row.id
    out.print(f"launched run {run_id} ({playbook}) for {client}")


@runs_app.command("complete")
def runs_complete(
    run_id: int = typer.Argument(...),
    step: str = typer.Argument(..., help="Step id."),
    evidence: str = typer.Option(None, help="Proof the step is done."),
    note: str = typer.Option(None, help="A note for the record."),
    field: list[str] = typer.Option(None, "--field", "-f",
                                    help="Evidence form value id=value (repeatable)."),
    actor: str = typer.Option("user:cli", help=ACTOR_HELP),
) -> None:
    """Complete a step (refused, naming the blockers, while it is locked, and listing
    every problem when its evidence form is not filled in right)."""
    values = _pairs(field, "--field")
    with runtime() as rt, hub_errors(), transaction(rt.ctx.sessions) as session:
        row = rt.ctx.runs.complete(session, run_id, step, by=actor, evidence=evidence,
                                   note=note, values=values)
        status = row.status
    out.print(f"run {run_id}: step '{step}' done; run is {status}")


def _pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            fail(f"{option} takes name=value, got '{pair}'")
        key, value = pair.split("=", 1)
        values[key.strip()] = value
    return values


def _member(actor: str) -> str:
    """The team member an actor ``user:<id>`` is (approvals are people's decisions)."""
    kind, _, name = actor.partition(":")
    if kind != "user" or not name:
        fail(f"--actor must be user:<team member id> to sign off, got '{actor}'")
    return name


@runs_app.command("approve")
def runs_approve(
    run_id: int = typer.Argument(...),
    step: str = typer.Argument(..., help="The approval step's id."),
    actor: str = typer.Option(..., help="user:<team member id> signing off (config/team.yaml)."),
    comment: str = typer.Option(None, help="A comment kept with the sign-off."),
) -> None:
    """Sign off an approval step (the approving team role; four-eyes)."""
    with runtime() as rt, hub_errors(), transaction(rt.ctx.sessions) as session:
        row = rt.ctx.runs.approve(session, run_id, step, by=actor, member=_member(actor),
                                  comment=comment)
        status = row.status
    out.print(f"run {run_id}: step '{step}' approved; run is {status}")


@runs_app.command("reject")
def runs_reject(
    run_id: int = typer.Argument(...),
    step: str = typer.Argument(..., help="The approval step's id."),
    reason: str = typer.Option(..., help="Why it is rejected (required)."),
    reopen: list[str] = typer.Option(None, help="A step to reopen (repeatable; default: "
                                     "every finished step it approves)."),
    actor: str = typer.Option(..., help="user:<team member id> rejecting (config/team.yaml)."),
) -> None:
    """Reject an approval step with a reason, reopening approved steps."""
    with runtime() as rt, hub_errors(), transaction(rt.ctx.sessions) as session:
        row = rt.ctx.runs.reject(session, run_id, step, by=actor, member=_member(actor),
                                 reason=reason, reopen=list(reopen or []) or None)
        now_open = [s.step_id for s in to_state(row).steps if s.status is StepStatus.OPEN]
    out.print(f"run {run_id}: step '{step}' rejected; open now: {', '.join(now_open)}")


@runs_app.command("skip")
def runs_skip(
    run_id: int = typer.Argument(...),
    step: str = typer.Argument(...),
    reason: str = typer.Option(..., help="Why it is skipped (required)."),
    actor: str = typer.Option("user:cli", help=ACTOR_HELP),
) -> None:
    """Skip a step with a reason, where the playbook allows it."""
    with runtime() as rt, hub_errors(), transaction(rt.ctx.sessions) as session:
        rt.ctx.runs.skip(session, run_id, step, by=actor, reason=reason,
                         may_skip_protected=True)
    out.print(f"run {run_id}: step '{step}' skipped")


@runs_app.command("cancel")
def runs_cancel(
    run_id: int = typer.Argument(...),
    reason: str = typer.Option("", help="Why the run is cancelled."),
    actor: str = typer.Option("user:cli", help=ACTOR_HELP),
) -> None:
    """Cancel an active run."""
    with runtime() as rt, hub_errors(), transaction(rt.ctx.sessions) as session:
        rt.ctx.runs.cancel(session, run_id, by=actor, reason=reason)
    out.print(f"run {run_id} cancelled")

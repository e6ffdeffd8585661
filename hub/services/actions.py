"""Applying one mapping action (launch, tick, comment, cancel) to a client's runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from hub.core.checklists.engine import TicketRef
from hub.core.events import Event
from hub.core.mapping.actions import Action, Cancel, Comment, Launch, Tick
from hub.core.mapping.engine import RuleSet
from hub.errors import HubError
from hub.services.context import HubContext
from hub.services.runs import Origin


def _client(rules: RuleSet, event: Event, action: Launch | Tick | Comment | Cancel) -> str:
    """The hub client an action is for: the one its rule names, else the event's."""
    launch = rules.get(action.rule_id).rule.launch
    if action.client_id and (launch is not None and launch.client is not None):
        return action.client_id  # a `launch.client:` template named the hub client
    if event.hub_client is not None:
        return event.hub_client.key
    if event.client is not None:
        ref = event.client
        name = f" ({ref.name})" if ref.name else ""
        raise HubError(
            f"{event.source} {ref.type} {ref.id}{name} is not linked to a hub client; link "
            f"it (msphub clients link <client> {event.source} {ref.type} {ref.id}) and retry "
            "the event")
    raise HubError("the event names no client, and the rule gives none")


NO_RUN_TO_TICK = "no_run_to_tick"


def effects_of(result: Mapping[str, Any] | None) -> list[str]:
    """The distinct effects of a stored event result's actions, in order (``launched``,
    ``ticked``, ``no_run_to_tick``, ``error`` …): what the CLI and dashboard list."""
    seen: list[str] = []
    for action in (result or {}).get("actions") or []:
        effect = str(action.get("effect") or "") if isinstance(action, Mapping) else ""
        if effect and effect not in seen:
            seen.append(effect)
    return seen


def no_run_to_tick(ctx: HubContext, session: Session, client: str,
                   action: Tick) -> dict[str, Any]:
    """The effect of a tick that found nothing to tick: an alert for a client with no
    active run of these playbooks, or none whose playbook has the step.

    Not an error (the event ends ``done``: the alert was understood), but never an empty
    "ticked": it names the client, step and playbooks, and the active runs that lack the
    step, so ``msphub events list --effect no_run_to_tick`` and the dashboard show it.
    """
    lacking = ctx.runs.active_runs(session, client, action.playbooks)
    return {"effect": NO_RUN_TO_TICK, "client": client, "step": action.step,
            "playbooks": list(action.playbooks),
            "active_runs_without_step": [r.id for r in lacking],
            "reason": (f"active run(s) of {', '.join(sorted({r.playbook_id for r in lacking}))}"
                       f" have no step '{action.step}'" if lacking else
                       f"client '{client}' has no active run of "
                       f"{', '.join(action.playbooks) or 'any playbook'}")}


def apply_action(ctx: HubContext, session: Session, rules: RuleSet, event: Event,
                 action: Action, event_id: int) -> dict[str, Any]:
    """Apply one action; returns a JSON-ready description of the effect."""
    by = f"rule:{action.rule_id}"
    if isinstance(action, Launch):
        subject = event.subject
        origin = Origin(event.source, subject.type, subject.id) if subject else None
        ticket = TicketRef(event.source, subject.id) if subject and subject.type == "ticket" \
            else None
        if origin is not None:
            existing = ctx.runs.find_by_origin(session, origin, action.playbook)
            if existing is not None:
                return {"effect": "already_launched", "run_id": existing.id}
        run = ctx.runs.launch(session, action.playbook, client=_client(rules, event, action),
                              client_name=action.client_name, inputs=action.inputs, by=by,
                              ticket=ticket, origin=origin,
                              options={"notes": action.notes, "rule": action.rule_id},
                              event_id=event_id, occurred_at=event.occurred_at)
        return {"effect": "launched", "run_id": run.id}
    client = _client(rules, event, action)
    if isinstance(action, Tick):
        results = ctx.runs.tick(session, client=client, playbooks=action.playbooks,
                                step_id=action.step, by=by, evidence=action.evidence,
                                event_id=event_id)
        if not results:
            return no_run_to_tick(ctx, session, client, action)
        return {"effect": "ticked",
                "runs": [{"run_id": r.run_id, "outcome": r.outcome} for r in results]}
    runs = ctx.runs.active_runs(session, client, action.playbooks or None)
    if isinstance(action, Comment):
        for run in runs:
            ctx.runs.comment(session, run.id, by=by, text=action.text, event_id=event_id)
        return {"effect": "commented", "run_ids": [r.id for r in runs]}
    for run in runs:
        ctx.runs.cancel(session, run.id, by=by, reason=action.reason, event_id=event_id)
    return {"effect": "cancelled", "run_ids": [r.id for r in runs]}

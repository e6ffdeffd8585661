"""Applying one mapping action: launch, tick, comment, cancel (a client's runs); notify
(people) and note (the event's ticket)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.checklists.engine import TicketRef
from hub.core.events import Event
from hub.core.mapping.actions import Action, Cancel, Comment, Launch, Note, Notify, Tick
from hub.core.mapping.engine import RuleSet
from hub.core.states import NoteStatus
from hub.errors import HubError
from hub.services.context import HubContext
from hub.services.notes import track_new_notes
from hub.services.notifications import About, Notifier
from hub.services.runs import Origin
from hub.store.models import OutboxNote


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
    if isinstance(action, Notify | Note):
        return _tell(ctx, session, event, action, event_id)
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


def _tell(ctx: HubContext, session: Session, event: Event, action: Notify | Note,
          event_id: int) -> dict[str, Any]:
    """A ``note`` on the event's ticket, or a ``notify``: its people on their channels (and
    the ticket, when the rule lists ``ticket``). Keyed by rule and event, so a replayed
    event tells nobody twice."""
    if isinstance(action, Note):
        return {"effect": "noted", "note_id": _ticket_note(ctx, session, event, action.rule_id,
                                                           action.text, event_id)}
    fact = f"rule/{action.rule_id}/event/{event_id}"
    people_channels = [c for c in action.channels if c != "ticket"]
    effect: dict[str, Any] = {"effect": "notified", "people": []}
    if not action.channels or people_channels:
        client = event.hub_client.key if event.hub_client is not None else None
        about = About(kind="notify", fact=fact, client=client, event_id=event_id,
                      link=f"{ctx.settings.public_url}/ops/events/{event_id}",
                      context={"message": action.text, "message_subject": action.subject,
                               "event": _event_values(event)})
        notifier = Notifier(ctx.settings, ctx.team)
        effect["people"] = notifier.queue(session, about, to=action.to,
                                          channels=people_channels or None,
                                          template=action.template, now=ctx.clock())
    if "ticket" in action.channels:
        effect["note_id"] = _ticket_note(ctx, session, event, action.rule_id,
                                         f"{action.subject}\n{action.text}"
                                         if action.subject not in action.text else action.text,
                                         event_id)
    return effect


def _event_values(event: Event) -> dict[str, Any]:
    """What a notification template may show of the event."""
    subject = event.subject
    client = event.hub_client.name or event.hub_client.key if event.hub_client else (
        event.client.name or event.client.id if event.client else None)
    return {"kind": str(event.kind), "source": event.source, "vendor": event.vendor,
            "client": client,
            "subject": {"type": subject.type, "id": subject.id} if subject else None,
            "occurred_at": event.occurred_at.isoformat()}


def _ticket_note(ctx: HubContext, session: Session, event: Event, rule_id: str, text: str,
                 event_id: int) -> int:
    """One internal note on the event's ticket through the outbox (marker, retries, dead
    letters as every note); the same rule and event never queue a second one."""
    subject = event.subject
    if subject is None or subject.type != "ticket":
        raise HubError(f"rule '{rule_id}' puts a note on a ticket, but this "
                       f"{event.kind} event is about "
                       f"{subject.type + ' ' + subject.id if subject else 'no record'}")
    key = hashlib.sha256(f"msphub:rule_note:{rule_id}:{event_id}".encode()).hexdigest()[:32]
    existing = session.execute(select(OutboxNote.id).where(OutboxNote.key == key)
                               ).scalar_one_or_none()
    if existing is not None:
        return existing
    now = ctx.clock()
    note = OutboxNote(key=key, run_id=None, kind="rule_note", step_id=None,
                      source=event.source, ticket_id=subject.id, text=text, attachment=None,
                      status=NoteStatus.PENDING, attempts=0, uncertain=False,
                      created_at=now, next_attempt_at=now)
    session.add(note)
    session.flush()
    track_new_notes(session).append(note)
    return note.id

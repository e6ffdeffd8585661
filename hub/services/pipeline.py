"""Processing one inbox event: mapping rules → actions applied in one transaction.

Each action runs in a savepoint, so one that cannot apply (unknown client, bad
input) is recorded without undoing the others; the item is marked done in the
same transaction as its effects, so a crash either leaves it pending (and it is
processed again, with no half-applied effects) or finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from hub.core.checklists.engine import TicketRef
from hub.core.events import Event
from hub.core.mapping.actions import Action, Cancel, Comment, Launch, Tick, action_to_dict
from hub.core.mapping.engine import RuleSet, explain
from hub.core.states import InboxStatus, NoteStatus
from hub.errors import HubError
from hub.services.context import HubContext
from hub.services.directory import hub_ref
from hub.services.inbox import add_events, to_event
from hub.services.notes import track_new_notes
from hub.services.runs import Origin
from hub.store.db import transaction
from hub.store.models import InboxEvent

log = structlog.get_logger()


@dataclass
class Processed:
    """What processing one event did (also stored as the inbox row's ``result``)."""

    event_id: int
    skipped: bool = False
    matched: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    near_misses: list[dict[str, str]] = field(default_factory=list)
    notes: list[int] = field(default_factory=list)
    extra_events: list[int] = field(default_factory=list)

    def as_result(self) -> dict[str, Any]:
        return {"matched": self.matched, "actions": self.actions, "errors": self.errors,
                "near_misses": self.near_misses}


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


def _pending(ctx: HubContext, event_id: int) -> tuple[Event | None, list[int]]:
    """The event if it is still pending, and earlier pending events about its subject."""
    with ctx.sessions() as session:
        row = session.get(InboxEvent, event_id)
        if row is None or row.status != InboxStatus.PENDING:
            return None, []
        if row.subject_id is None:
            return to_event(row), []
        earlier = list(session.execute(
            select(InboxEvent.id).where(InboxEvent.source == row.source,
                                        InboxEvent.subject_type == row.subject_type,
                                        InboxEvent.subject_id == row.subject_id,
                                        InboxEvent.id < event_id,
                                        InboxEvent.status == InboxStatus.PENDING)
            .order_by(InboxEvent.id)
        ).scalars())
        return to_event(row), earlier


def process_event(ctx: HubContext, rules: RuleSet, event_id: int, *,
                  enrich: Callable[[Event], list[Event]] | None = None) -> Processed:
    """Run one inbox event through the rules and apply the actions, exactly once.

    Args:
        enrich: fetches the full record for a thin webhook event (connector I/O), called
            before the transaction so no database lock is held during HTTP.
    """
    result = Processed(event_id)
    # Events about one subject apply in the order they arrived, whichever worker runs them.
    event, earlier = _pending(ctx, event_id)
    if event is None:
        result.skipped = True
        return result
    for earlier_id in earlier:
        result.notes += process_event(ctx, rules, earlier_id, enrich=enrich).notes
    if enrich is not None:
        enriched = enrich(event)
        if enriched != [event]:
            with transaction(ctx.sessions) as session:
                row = session.get(InboxEvent, event_id)
                if row is not None and row.status == InboxStatus.PENDING:
                    if not enriched:
                        # deleted since, filtered out, or our own echo: nothing to do
                        row.status, row.processed_at = InboxStatus.IGNORED, ctx.clock()
                        row.result = {"matched": [], "actions": [], "errors": [],
                                      "near_misses": [], "ignored": "nothing after enrichment"}
                        result.skipped = True
                        return result
                    full = enriched[0]
                    row.kind = str(full.kind)
                    row.data, row.raw = dict(full.data), dict(full.raw)
                    if full.client:
                        row.client_key, row.client_name = full.client.id, full.client.name
                        row.client_type = full.client.type
                    # more facts in one callback (created + closed): store them too
                    result.extra_events = add_events(session, enriched[1:], via="enrich",
                                                     now=ctx.clock())
    with transaction(ctx.sessions) as session:
        row = session.execute(
            select(InboxEvent).where(InboxEvent.id == event_id).with_for_update()
        ).scalar_one_or_none()
        if row is None or row.status != InboxStatus.PENDING:
            result.skipped = True
            return result
        event = to_event(row)
        # the vendor's client → the hub client, once, before any rule sees the event
        client = ctx.clients.resolve(session, event.source, event.client)
        if client is not None:
            event = event.model_copy(update={"hub_client": hub_ref(client)})
        row.hub_client = client.key if client is not None else None
        evaluation = explain(rules, event)
        result.errors = [{"rule_id": e.rule_id, "error": e.message} for e in evaluation.errors]
        result.near_misses = [{"rule_id": n.rule_id, "reason": n.reason}
                              for n in evaluation.near_misses]
        for match in evaluation.matched:
            result.matched.append(match.rule_id)
            for action in match.actions:
                described = action_to_dict(action)
                try:
                    with session.begin_nested():
                        described.update(
                            apply_action(ctx, session, rules, event, action, event_id))
                except (HubError, ValueError) as exc:
                    described["effect"] = "error"
                    result.errors.append({"rule_id": action.rule_id, "error": str(exc)})
                result.actions.append(described)
        row.status = (InboxStatus.FAILED if result.errors else
                      InboxStatus.DONE if result.matched else InboxStatus.IGNORED)
        row.attempts += 1
        row.processed_at = ctx.clock()
        row.result = result.as_result()
        session.flush()
        # notes of an action whose savepoint rolled back are not persistent; the context's
        # after-commit hook dispatches the others for delivery
        result.notes += [n.id for n in track_new_notes(session)
                         if inspect(n).persistent and n.status == NoteStatus.PENDING]
    log.info("event_processed", event_id=event_id, kind=str(event.kind),
             matched=len(result.matched), errors=len(result.errors))
    return result

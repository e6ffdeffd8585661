"""Processing inbox events: mapping rules → actions, many events per transaction.

A batch is the events a message names plus other pending events (up to ``BATCH``), in
arrival order, in one transaction: one commit, one audit-chain append at the end. Each
event runs in a savepoint and each action in a savepoint inside it, so an action that
cannot apply (an unlinked client, a missing input) is recorded without undoing the
others, and an event that breaks unexpectedly is rolled back alone and retried on its
own (``process_event``), where the broker's retries and dead letters apply to it. An
event is marked in the same transaction as its effects, so a crash leaves it pending
(processed again later, with no half-applied effects) or finished.

Events about one subject apply in the order they arrived: earlier pending events of
the subject are processed first, and an event whose predecessor another worker holds
is left for later (``Batch.deferred``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import inspect, select, tuple_, update
from sqlalchemy.orm import Session

from connectors.base import is_thin
from hub.core.events import Event
from hub.core.mapping.actions import Action, action_to_dict
from hub.core.mapping.engine import RuleSet, explain
from hub.core.states import InboxStatus, NoteStatus
from hub.errors import HubError
from hub.services.actions import apply_action
from hub.services.context import HubContext
from hub.services.directory import hub_ref
from hub.services.inbox import add_enriched, to_event
from hub.services.notes import track_new_notes
from hub.services.outcomes import queue_failure_note, versions, would_have
from hub.store.db import transaction
from hub.store.models import InboxEvent

log = structlog.get_logger()

BATCH = 50  # events per transaction at most (MSPHUB_BATCH_SIZE; see batch_size)
NEAR_MISSES = 20  # stored per event; `msphub mappings test` shows them all
Enrich = Callable[[Event], list[Event]]
Subject = tuple[str, str | None, str | None]


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
    # what shadow rules would have done (or could not render): never applied
    shadow: list[dict[str, Any]] = field(default_factory=list)
    # {rule id: version digest} of every rule that acted, failed or would have acted
    versions: dict[str, str] = field(default_factory=dict)
    failure_note: str | None = None  # outbox key of the note telling the ticket
    hub_client: str | None = None  # the hub client the event resolved to
    # a thin webhook row whose full record went to these rows (processed there)
    enriched_into: list[int] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Failed, yet some actions applied (each action has its own savepoint)."""
        return bool(self.errors) and any(a.get("effect") != "error" for a in self.actions)

    def as_result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matched": self.matched, "actions": self.actions,
                               "errors": self.errors, "near_misses": self.near_misses,
                               "versions": self.versions}
        if self.errors:
            out["partial"] = self.partial
        if self.shadow:
            out["shadow"] = self.shadow
        if self.failure_note:
            out["failure_note"] = self.failure_note
        return out


@dataclass
class Batch:
    """What one batch did."""

    processed: list[Processed] = field(default_factory=list)
    # left pending: an earlier event of the same subject is held by another worker
    deferred: list[int] = field(default_factory=list)
    # rolled back by an unexpected error: to be retried one by one
    broken: list[int] = field(default_factory=list)
    # stored by another process's step, to be processed by their own messages
    extra_events: list[int] = field(default_factory=list)
    # thin webhook rows → the rows holding their full records (processed in this batch)
    enriched: dict[int, list[int]] = field(default_factory=dict)

    @property
    def notes(self) -> list[int]:
        """Outbox notes the batch wrote (dispatched by the after-commit hook)."""
        return [n for p in self.processed for n in p.notes]


def _subject(row: InboxEvent) -> Subject:
    return (row.source, row.subject_type, row.subject_id)


def _enrich(ctx: HubContext, row: InboxEvent, enrich: Enrich) -> list[int] | None:
    """Fetch the full record of a thin event (vendor I/O, outside the main transaction)
    and store it as rows linked to the thin one (:func:`~hub.services.inbox.add_enriched`).

    Returns:
        None when the event passes through as it is (process the row itself); else the
        rows to process instead: new, or linked earlier and failed (a retry of the thin
        event re-runs them). Empty when nothing is left: the record is gone, our own echo,
        or a poll already stored the change.
    """
    event = to_event(row)
    enriched = enrich(event)
    if enriched == [event]:
        return None
    with transaction(ctx.sessions) as session:
        stored = session.get(InboxEvent, row.id)
        if stored is None or stored.status != InboxStatus.PENDING:
            return []
        stored.processed_at = ctx.clock()
        stored.attempts += 1
        if not enriched:
            # deleted since, filtered out, or our own echo: nothing to do
            stored.status = InboxStatus.IGNORED
            stored.result = _empty_result(ignored="nothing after enrichment")
            return []
        where = add_enriched(session, stored, enriched, now=ctx.clock())
        again = list(session.execute(select(InboxEvent).where(
            InboxEvent.id.in_([i for i in where.linked if i not in where.new]),
            InboxEvent.status == InboxStatus.FAILED)).scalars())
        for linked in again:
            linked.status, linked.last_error = InboxStatus.PENDING, None
        stored.status = InboxStatus.DONE if where.linked else InboxStatus.IGNORED
        stored.result = _empty_result(enriched_into=where.linked, already_stored=where.elsewhere)
        if not where.linked:
            stored.result["ignored"] = ("the change was already stored: event "
                                        + ", ".join(f"#{i}" for i in where.elsewhere))
        return where.new + [r.id for r in again]


def _empty_result(**extra: Any) -> dict[str, Any]:
    return {"matched": [], "actions": [], "errors": [], "near_misses": [], **extra}


def _apply(ctx: HubContext, session: Session, rules: RuleSet, row: InboxEvent) -> Processed:
    """Resolve the client, evaluate the rules and apply the actions of one locked event.

    Shadow rules are evaluated like the others; what they would have done goes to the
    trace (``shadow``), and neither their matches nor their errors change the outcome.
    """
    result = Processed(row.id)
    event = to_event(row)
    # the vendor's client → the hub client, once, before any rule sees the event
    client = ctx.clients.resolve(session, event.source, event.client)
    if client is not None:
        event = event.model_copy(update={"hub_client": hub_ref(client)})
    evaluation = explain(rules, event)
    shadows = {r.id for r in rules.rules if r.rule.mode == "shadow"}
    result.errors = [{"rule_id": e.rule_id, "error": e.message} for e in evaluation.errors
                     if e.rule_id not in shadows]
    result.shadow = [{"rule_id": e.rule_id, "error": e.message} for e in evaluation.errors
                     if e.rule_id in shadows]
    result.near_misses = [{"rule_id": n.rule_id, "reason": n.reason}
                          for n in evaluation.near_misses[:NEAR_MISSES]]
    more = len(evaluation.near_misses) - NEAR_MISSES
    if more > 0:
        result.near_misses.append({"rule_id": "…", "reason": f"and {more} more"})
    for match in evaluation.matched:
        if match.rule_id in shadows:
            result.shadow += [{"rule_id": match.rule_id, "would": would_have(a),
                               "action": action_to_dict(a)} for a in match.actions]
            continue
        result.matched.append(match.rule_id)
        for action in match.actions:
            result.actions.append(_act(ctx, session, rules, event, action, row.id, result))
    result.versions = versions(rules, [*result.matched, *(e["rule_id"] for e in result.errors),
                                       *(s["rule_id"] for s in result.shadow)])
    if result.errors:
        _failed(ctx, session, rules, row, event, result)
    # every column of the row set here, at the end: one UPDATE (not one per autoflush)
    row.hub_client = result.hub_client = client.key if client is not None else None
    row.status = (InboxStatus.FAILED if result.errors else
                  InboxStatus.DONE if result.matched else InboxStatus.IGNORED)
    row.attempts += 1
    row.processed_at = ctx.clock()
    row.result = result.as_result()
    log.info("event_processed", event_id=row.id, kind=row.kind, status=str(row.status),
             matched=len(result.matched), errors=len(result.errors),
             shadow=len(result.shadow))
    return result


def _act(ctx: HubContext, session: Session, rules: RuleSet, event: Event, action: Action,
         event_id: int, result: Processed) -> dict[str, Any]:
    """Apply one action in its own savepoint; an error is recorded, not raised."""
    described = action_to_dict(action)
    held = ctx.runs.held(session)
    try:
        with session.begin_nested():
            described.update(apply_action(ctx, session, rules, event, action, event_id))
    except (HubError, ValueError) as exc:
        ctx.runs.drop_held(session, held)
        ctx.clients.forget(session)
        described["effect"] = "error"
        result.errors.append({"rule_id": action.rule_id, "error": str(exc)})
    return described


def _failed(ctx: HubContext, session: Session, rules: RuleSet, row: InboxEvent,
            event: Event, result: Processed) -> None:
    """A rule or action could not apply: say so at warning, and on the ticket (once)."""
    first = result.errors[0]
    log.warning("event_failed", event_id=row.id, source=row.source, kind=row.kind,
                rule=first["rule_id"], reason=first["error"], errors=len(result.errors),
                partial=result.partial)
    wanted = [e for e in result.errors if rules.get(e["rule_id"]).rule.on_error == "note"]
    note = queue_failure_note(session, event=event, event_id=row.id, errors=wanted,
                              config_dir=ctx.settings.config_dir, now=ctx.clock())
    if note is not None:
        result.failure_note = note.key


def batch_size(ctx: HubContext) -> int:
    """Events per transaction: the setting, else 50 on PostgreSQL and 10 on SQLite, whose
    one write lock would otherwise keep webhook receipts waiting for a whole batch."""
    if ctx.settings.batch_size:
        return ctx.settings.batch_size
    return 10 if ctx.engine.dialect.name == "sqlite" else BATCH


def process_batch(ctx: HubContext, rules: RuleSet, event_ids: Iterable[int], *,
                  enrich: Enrich | None = None, claim: bool = True) -> Batch:
    """Process these events (and, with ``claim``, other pending ones) exactly once.

    Args:
        enrich: fetches the full record of a thin webhook event (connector I/O), called
            before the transaction so no database lock is held during HTTP.
        claim: also take other pending events, up to :func:`batch_size`, that no other worker
            holds. Off: only these events, and an unexpected error propagates (the
            broker retries it).
    """
    batch = Batch()
    own = list(event_ids)
    with ctx.sessions() as session:
        rows = list(session.execute(
            select(InboxEvent).where(InboxEvent.id.in_(own),
                                     InboxEvent.status == InboxStatus.PENDING)).scalars())
        # nothing of ours left (another batch took it): is there other work to take?
        if not rows and not (claim and session.execute(
                select(InboxEvent.id).where(InboxEvent.status == InboxStatus.PENDING)
                .limit(1)).first()):
            return batch
    for row in rows:
        if enrich is not None and is_thin(to_event(row)):
            instead = _enrich(ctx, row, enrich)
            if instead is not None:
                batch.enriched[row.id] = instead
    own = [i for i in own if i not in batch.enriched]
    own += [i for ids in batch.enriched.values() for i in ids if i not in own]
    with transaction(ctx.sessions) as session:
        ctx.runs.hold(session)  # the audit head is locked once, at the end
        locked = _lock(session, own, limit=batch_size(ctx) if claim else 0)
        first_pending = _first_pending(session, locked)
        done_here: set[int] = set()
        for row in locked:
            earliest = first_pending.get(_subject(row))
            if earliest is not None and earliest < row.id and earliest not in done_here:
                batch.deferred.append(row.id)  # its predecessor is held elsewhere
                continue
            if enrich is not None and row.id not in own and is_thin(to_event(row)):
                batch.deferred.append(row.id)  # enriched by its own message
                continue
            held = ctx.runs.held(session)
            try:
                with session.begin_nested():
                    batch.processed.append(_apply(ctx, session, rules, row))
                    done_here.add(row.id)
            except Exception:  # one broken event must not undo the batch: retried alone
                if not claim:
                    raise
                ctx.runs.drop_held(session, held)
                ctx.clients.forget(session)
                log.exception("event_batch_member_failed", event_id=row.id)
                batch.broken.append(row.id)
        _label_thin_rows(session, batch)
        ctx.runs.record_held(session)  # audit facts and notes of the whole batch
        session.flush()
        notes = {n.id for n in track_new_notes(session)
                 if inspect(n).persistent and n.status == NoteStatus.PENDING}
        for result in batch.processed:
            result.notes = sorted(notes)
            notes = set()
    return batch


def _label_thin_rows(session: Session, batch: Batch) -> None:
    """A thin webhook row is about the hub client its full record resolved to: say so,
    so filtering the inbox by client finds the callback too."""
    clients = {p.event_id: p.hub_client for p in batch.processed if p.hub_client}
    for thin_id, into in batch.enriched.items():
        client = next((clients[i] for i in into if i in clients), None)
        if client is not None:
            session.execute(update(InboxEvent).where(InboxEvent.id == thin_id)
                            .values(hub_client=client))


def _lock(session: Session, own: list[int], *, limit: int) -> list[InboxEvent]:
    """The batch's pending rows, locked, in arrival order.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so two workers never wait for each other's
    rows (an event another worker holds is being processed there). SQLite: the write
    transaction (``BEGIN IMMEDIATE``) already excludes every other writer.
    """
    mine = select(InboxEvent.source, InboxEvent.subject_type, InboxEvent.subject_id) \
        .where(InboxEvent.id.in_(own), InboxEvent.subject_id.is_not(None))
    stmt = (select(InboxEvent).where(
                InboxEvent.status == InboxStatus.PENDING,
                # ours, and the earlier events of our subjects (they apply first)
                InboxEvent.id.in_(own) | (
                    tuple_(InboxEvent.source, InboxEvent.subject_type,
                           InboxEvent.subject_id).in_(mine)
                    & (InboxEvent.id < max(own, default=0))))
            .order_by(InboxEvent.id).with_for_update(skip_locked=True))
    rows = list(session.execute(stmt).scalars())
    if len(rows) < limit:
        # (rows this transaction already locked are not skipped: leave them out)
        taken = [r.id for r in rows] or own
        more = (select(InboxEvent).where(InboxEvent.status == InboxStatus.PENDING,
                                         InboxEvent.id.not_in(taken))
                .order_by(InboxEvent.id).limit(limit - len(rows))
                .with_for_update(skip_locked=True))
        rows += session.execute(more).scalars()
        rows.sort(key=lambda r: r.id)
    return rows


def _first_pending(session: Session, rows: list[InboxEvent]) -> dict[Subject, int]:
    """The oldest pending event of each subject these rows are about."""
    subjects = {_subject(r) for r in rows if r.subject_id}
    if not subjects:
        return {}
    found = session.execute(
        select(InboxEvent.source, InboxEvent.subject_type, InboxEvent.subject_id,
               InboxEvent.id)
        .where(tuple_(InboxEvent.source, InboxEvent.subject_type,
                      InboxEvent.subject_id).in_(list(subjects)),
               InboxEvent.status == InboxStatus.PENDING)
        .order_by(InboxEvent.id)
    ).all()
    first: dict[Subject, int] = {}
    for source, kind, subject_id, event_id in found:
        first.setdefault((source, kind, subject_id), event_id)
    return first


def process_event(ctx: HubContext, rules: RuleSet, event_id: int, *,
                  enrich: Enrich | None = None) -> Processed:
    """Process one event (and the earlier pending events of its subject) on its own."""
    batch = process_batch(ctx, rules, [event_id], enrich=enrich, claim=False)
    mine = next((p for p in batch.processed if p.event_id == event_id), None)
    if mine is None and event_id in batch.enriched:
        mine = _merged(event_id, batch)
    result = mine or Processed(event_id, skipped=True)
    result.notes = batch.notes
    result.extra_events = batch.extra_events
    return result


def _merged(event_id: int, batch: Batch) -> Processed:
    """What a thin event led to: the processing of the rows its full records went to."""
    into = batch.enriched[event_id]
    merged = Processed(event_id, enriched_into=list(into))
    for part in batch.processed:
        if part.event_id in into:
            merged.matched += part.matched
            merged.actions += part.actions
            merged.errors += part.errors
            merged.near_misses += part.near_misses
            merged.shadow += part.shadow
            merged.versions.update(part.versions)
    merged.skipped = not any(p.event_id in into for p in batch.processed)
    return merged

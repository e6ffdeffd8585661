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
from sqlalchemy import inspect, select, tuple_
from sqlalchemy.orm import Session

from connectors.base import is_thin
from hub.core.events import Event
from hub.core.mapping.actions import action_to_dict
from hub.core.mapping.engine import RuleSet, explain
from hub.core.states import InboxStatus, NoteStatus
from hub.errors import HubError
from hub.services.actions import apply_action
from hub.services.context import HubContext
from hub.services.directory import hub_ref
from hub.services.inbox import add_events, to_event
from hub.services.notes import track_new_notes
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

    def as_result(self) -> dict[str, Any]:
        return {"matched": self.matched, "actions": self.actions, "errors": self.errors,
                "near_misses": self.near_misses}


@dataclass
class Batch:
    """What one batch did."""

    processed: list[Processed] = field(default_factory=list)
    # left pending: an earlier event of the same subject is held by another worker
    deferred: list[int] = field(default_factory=list)
    # rolled back by an unexpected error: to be retried one by one
    broken: list[int] = field(default_factory=list)
    # stored by enrichment (one callback can carry several facts)
    extra_events: list[int] = field(default_factory=list)

    @property
    def notes(self) -> list[int]:
        """Outbox notes the batch wrote (dispatched by the after-commit hook)."""
        return [n for p in self.processed for n in p.notes]


def _subject(row: InboxEvent) -> Subject:
    return (row.source, row.subject_type, row.subject_id)


def _enrich(ctx: HubContext, row: InboxEvent, enrich: Enrich, batch: Batch) -> bool:
    """Fetch the full record of a thin event (vendor I/O, outside the main transaction).

    Returns:
        False when nothing is left to process (the record is gone or is our own echo).
    """
    event = to_event(row)
    enriched = enrich(event)
    if enriched == [event]:
        return True
    with transaction(ctx.sessions) as session:
        stored = session.get(InboxEvent, row.id)
        if stored is None or stored.status != InboxStatus.PENDING:
            return False
        if not enriched:
            # deleted since, filtered out, or our own echo: nothing to do
            stored.status, stored.processed_at = InboxStatus.IGNORED, ctx.clock()
            stored.result = {"matched": [], "actions": [], "errors": [], "near_misses": [],
                             "ignored": "nothing after enrichment"}
            return False
        full = enriched[0]
        stored.kind = str(full.kind)
        stored.data, stored.raw = dict(full.data), dict(full.raw)
        if full.client:
            stored.client_key, stored.client_name = full.client.id, full.client.name
            stored.client_type = full.client.type
        # more facts in one callback (created + closed): store them too
        batch.extra_events += add_events(session, enriched[1:], via="enrich", now=ctx.clock())
    return True


def _apply(ctx: HubContext, session: Session, rules: RuleSet, row: InboxEvent) -> Processed:
    """Resolve the client, evaluate the rules and apply the actions of one locked event."""
    result = Processed(row.id)
    event = to_event(row)
    # the vendor's client → the hub client, once, before any rule sees the event
    client = ctx.clients.resolve(session, event.source, event.client)
    if client is not None:
        event = event.model_copy(update={"hub_client": hub_ref(client)})
    evaluation = explain(rules, event)
    result.errors = [{"rule_id": e.rule_id, "error": e.message} for e in evaluation.errors]
    result.near_misses = [{"rule_id": n.rule_id, "reason": n.reason}
                          for n in evaluation.near_misses[:NEAR_MISSES]]
    more = len(evaluation.near_misses) - NEAR_MISSES
    if more > 0:
        result.near_misses.append({"rule_id": "…", "reason": f"and {more} more"})
    for match in evaluation.matched:
        result.matched.append(match.rule_id)
        for action in match.actions:
            described = action_to_dict(action)
            held = ctx.runs.held(session)
            try:
                with session.begin_nested():
                    described.update(apply_action(ctx, session, rules, event, action, row.id))
            except (HubError, ValueError) as exc:
                ctx.runs.drop_held(session, held)
                ctx.clients.forget(session)
                described["effect"] = "error"
                result.errors.append({"rule_id": action.rule_id, "error": str(exc)})
            result.actions.append(described)
    # every column of the row set here, at the end: one UPDATE (not one per autoflush)
    row.hub_client = client.key if client is not None else None
    row.status = (InboxStatus.FAILED if result.errors else
                  InboxStatus.DONE if result.matched else InboxStatus.IGNORED)
    row.attempts += 1
    row.processed_at = ctx.clock()
    row.result = result.as_result()
    log.info("event_processed", event_id=row.id, kind=row.kind, status=str(row.status),
             matched=len(result.matched), errors=len(result.errors))
    return result


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
    gone = {row.id for row in rows
            if enrich is not None and is_thin(to_event(row))
            and not _enrich(ctx, row, enrich, batch)}
    own = [i for i in own if i not in gone]
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
        ctx.runs.record_held(session)  # audit facts and notes of the whole batch
        session.flush()
        notes = {n.id for n in track_new_notes(session)
                 if inspect(n).persistent and n.status == NoteStatus.PENDING}
        for result in batch.processed:
            result.notes = sorted(notes)
            notes = set()
    return batch


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
    result = mine or Processed(event_id, skipped=True)
    result.notes = batch.notes
    result.extra_events = batch.extra_events
    return result

"""Delivering outbox notes to PSA tickets — at most one copy of each, however often it runs.

Before each send the note is leased (status ``sending``) in its own commit. A later
attempt after one that may have reached the PSA (a timeout, a 5xx, a crash between
send and commit — the lease then expires) first looks for the note's marker on the
ticket and only posts when it is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.orm import aliased

from connectors.base import (
    AuthFailed,
    ConnectorError,
    PermanentError,
    TicketWriter,
    TransientError,
)
from hub.core.events import SubjectRef
from hub.core.states import NoteStatus, SourceState
from hub.services import source_health
from hub.services.context import HubContext
from hub.services.notes import track_new_notes
from hub.services.sources import Sources
from hub.store.db import transaction
from hub.store.models import OutboxNote, Run

log = structlog.get_logger()
PENDING, SENDING, HELD, SENT, DEAD, MERGED = (
    NoteStatus.PENDING, NoteStatus.SENDING, NoteStatus.HELD, NoteStatus.SENT, NoteStatus.DEAD,
    NoteStatus.MERGED)


@dataclass(frozen=True)
class Delivery:
    """Result of one delivery attempt: ``sent``, ``found`` (already there), ``skipped``
    or ``held`` (the PSA refused our credentials; the note waits)."""

    note_id: int
    outcome: str
    remote_id: str | None = None


def _writer(sources: Sources, name: str) -> TicketWriter:
    src = sources.get(name)
    if src is None:
        raise PermanentError(f"no connector instance named '{name}' is configured",
                             source=name)
    if not isinstance(src.connector, TicketWriter):
        raise PermanentError(f"connector '{name}' cannot write to tickets", source=name)
    return src.connector


class InFlight(TransientError):
    """Another worker holds the lease on an earlier note of this ticket; try again soon."""


def deliver(ctx: HubContext, sources: Sources, note_id: int) -> Delivery:
    """Post one note, after any earlier notes of the same ticket; safe to call again.

    Notes reach a ticket in the order they were written (the completion record comes
    last). Each send holds a short lease (``MSPHUB_OUTBOX_LEASE_SECONDS``) so two workers
    never send one note at once.

    Raises:
        TransientError: the PSA failed or timed out; retry later (marker check first).
        PermanentError: the note can never be delivered (unknown source, 4xx).
    """
    this = aliased(OutboxNote)
    with ctx.sessions() as session:
        # this note and the earlier unsent notes of its ticket, in one read
        rows = session.execute(
            select(OutboxNote.id, OutboxNote.source).join(this, this.id == note_id)
            .where(OutboxNote.source == this.source, OutboxNote.ticket_id == this.ticket_id,
                   OutboxNote.id <= note_id, OutboxNote.status.in_((PENDING, SENDING)))
            .order_by(OutboxNote.id)
        ).all()
        todo = [row[0] for row in rows]
        if not todo or todo[-1] != note_id:
            return Delivery(note_id, "skipped")
        source = sources.get(rows[-1][1])
        state = source_health.health(session, source.name, source.fingerprint) \
            if source is not None else None
    if state is not None and state.holding:
        # the PSA refused our credentials: the note waits (pending, no attempt spent)
        log.debug("note_held_auth_failed", note_id=note_id, source=state.source)
        return Delivery(note_id, "held")
    for earlier_id in todo[:-1]:
        _deliver_one(ctx, sources, earlier_id)
    delivery = _deliver_one(ctx, sources, note_id)
    if state is not None and state.state is not SourceState.HEALTHY:
        source_health.succeeded(ctx.sessions, state.source)
    return delivery


def _claim(ctx: HubContext, note_id: int) -> OutboxNote | None:
    """Take the lease on a note; None when it needs nothing (sent, dead …)."""
    now = ctx.clock()
    free = or_(OutboxNote.status == PENDING,
               and_(OutboxNote.status == SENDING,
                    or_(OutboxNote.next_attempt_at.is_(None), OutboxNote.next_attempt_at <= now)))
    with transaction(ctx.sessions) as session:
        # one statement: take the lease if nobody holds it
        note = session.execute(
            update(OutboxNote).where(OutboxNote.id == note_id, free).values(
                # a previous attempt that may have reached the PSA makes this one uncertain
                uncertain=or_(OutboxNote.uncertain, OutboxNote.status == SENDING),
                status=SENDING,
                next_attempt_at=now + timedelta(seconds=ctx.settings.outbox_lease_seconds),
                attempts=OutboxNote.attempts + 1,
            ).returning(OutboxNote).execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if note is None:
            status = session.execute(select(OutboxNote.status)
                                     .where(OutboxNote.id == note_id)).scalar_one_or_none()
            if status == SENDING:
                raise InFlight(f"note {note_id} is being sent by another worker")
            return None
        session.expunge(note)
        return note


def _deliver_one(ctx: HubContext, sources: Sources, note_id: int) -> Delivery:
    note = _claim(ctx, note_id)
    if note is None:
        return Delivery(note_id, "skipped")
    delivery = _send(ctx, sources, note)
    _record(ctx, note_id, remote_id=delivery.remote_id, sent=True)
    _delivered(note, delivery)
    return delivery


def _send(ctx: HubContext, sources: Sources, note: OutboxNote) -> Delivery:
    """The vendor calls of one claimed note: find (after an uncertain attempt) or post,
    then its attachment and the completion status. A failure is recorded and raised."""
    ticket = SubjectRef(type="ticket", id=note.ticket_id, source=note.source)
    remote_id = note.remote_id
    found = False
    try:
        writer = _writer(sources, note.source)
        if remote_id is None:
            ref = writer.find_note(ticket, note.key) if note.uncertain else None
            if ref is not None:
                remote_id, found = ref.id, True
                log.info("note_found_after_uncertain_send", note_id=note.id, ticket=ticket.id)
            else:
                remote_id = writer.post_note(ticket, note.text, key=note.key).id
            if note.attachment or note.kind == "completed":
                # more calls follow: remember the posted note in case one of them fails
                _record(ctx, note.id, remote_id=remote_id)
        if note.attachment:
            writer.attach(ticket, note.attachment["filename"],
                          note.attachment["content"].encode(), title=note.attachment["title"],
                          key=note.key)
        if note.kind == "completed":
            src = sources.get(note.source)
            # the source's setting, else the connector's own (e.g. ConnectWise config)
            status = (src.spec.completed_status or getattr(
                getattr(src.connector, "config", None), "completed_status", None)) if src else None
            if status:
                writer.set_status(ticket, status)
    except ConnectorError as exc:
        uncertain = not isinstance(exc, TransientError) or exc.maybe_applied or \
            remote_id is not None
        refused = isinstance(exc, AuthFailed)
        if refused:  # not the note's fault: it waits for the credentials, never dead
            src = sources.get(note.source)
            source_health.auth_failed(ctx.sessions, note.source,
                                      src.fingerprint if src else "", str(exc), ctx.clock())
        _record(ctx, note.id, remote_id=remote_id, error=f"{type(exc).__name__}: {exc}",
                dead=isinstance(exc, PermanentError) and not refused, uncertain=uncertain)
        raise
    return Delivery(note.id, "found" if found else "sent", remote_id)


def _delivered(note: OutboxNote, delivery: Delivery) -> None:
    log.info("note_delivered", note_id=note.id, run_id=note.run_id, kind=note.kind,
             ticket=note.ticket_id)


Outcome = Delivery | ConnectorError


def deliver_many(ctx: HubContext, sources: Sources, note_ids: Sequence[int]) -> dict[int, Outcome]:
    """Deliver several notes (a batch's) with three statements in all — one read, one
    claim, one record — plus the vendor calls, instead of about ten per note.

    The guarantees of :func:`deliver` hold: each note's ticket gets its earlier unsent
    notes first and in order, a lease excludes other workers, an uncertain note is looked
    for before it is posted again. A note that fails ends its ticket's turn (the later
    notes of that ticket wait, released, with the same outcome); other tickets go on.

    Returns:
        for each of ``note_ids``: its ``Delivery`` (``sent``, ``found``, ``skipped``,
        ``held``), or the ``ConnectorError`` it met (``InFlight`` when another worker
        holds an earlier note of its ticket) — already recorded on the note, for the
        caller to retry, park or leave for the requeue sweep.
    """
    wanted = set(note_ids)
    if not wanted:
        return {}
    out: dict[int, Outcome] = {}
    tickets = select(OutboxNote.source, OutboxNote.ticket_id).where(OutboxNote.id.in_(wanted))
    with ctx.sessions() as session:
        rows = session.execute(
            select(OutboxNote.id, OutboxNote.source, OutboxNote.ticket_id)
            .where(tuple_(OutboxNote.source, OutboxNote.ticket_id).in_(tickets),
                   OutboxNote.id <= max(wanted), OutboxNote.status.in_((PENDING, SENDING)))
            .order_by(OutboxNote.id)).all()
        failing = source_health.all_health(session) if rows else {}
    groups: dict[tuple[str, str], list[int]] = {}
    for note_id, source, ticket_id in rows:
        groups.setdefault((source, ticket_id), []).append(note_id)
    for key, ids in list(groups.items()):
        last = max((i for i in ids if i in wanted), default=None)
        ids[:] = [i for i in ids if last is not None and i <= last]
        src = sources.get(key[0])
        state = source_health.from_row(key[0], failing.get(key[0]),
                                       src.fingerprint if src else "")
        if not ids or state.holding:
            # the PSA refused our credentials: the notes wait (pending, no attempt spent)
            out.update((i, Delivery(i, "held")) for i in ids if i in wanted)
            del groups[key]
    claimed = _claim_many(ctx, [i for ids in groups.values() for i in ids])
    sent: list[tuple[OutboxNote, Delivery]] = []
    release: list[int] = []
    try:
        for ids in groups.values():
            _send_ticket(ctx, sources, ids, claimed, wanted, out, sent, release)
    finally:
        _record_many(ctx, sent, release)
    for note, delivery in sent:
        _delivered(note, delivery)
    for note_id in wanted:
        out.setdefault(note_id, Delivery(note_id, "skipped"))
    return out


def _send_ticket(ctx: HubContext, sources: Sources, ids: list[int],
                 claimed: dict[int, OutboxNote], wanted: set[int], out: dict[int, Outcome],
                 sent: list[tuple[OutboxNote, Delivery]], release: list[int]) -> None:
    """One ticket's notes, in order, until one cannot go: the rest are released."""
    stop: ConnectorError | None = None
    for note_id in ids:
        note = claimed.get(note_id)
        if stop is None and note is None:
            if _status(ctx, note_id) == SENDING:  # another worker is sending it
                stop = InFlight(f"note {note_id} is being sent by another worker")
            continue  # sent or parked meanwhile: nothing to do
        if stop is not None:
            if note is not None:
                release.append(note_id)
            if note_id in wanted:
                out[note_id] = stop
            continue
        assert note is not None
        try:
            delivery = _send(ctx, sources, note)
        except ConnectorError as exc:  # recorded by _send
            stop = exc
            if note_id in wanted:
                out[note_id] = exc
            continue
        sent.append((note, delivery))
        if note_id in wanted:
            out[note_id] = delivery


def _status(ctx: HubContext, note_id: int) -> str | None:
    with ctx.sessions() as session:
        return session.execute(select(OutboxNote.status)
                               .where(OutboxNote.id == note_id)).scalar_one_or_none()


def _claim_many(ctx: HubContext, note_ids: list[int]) -> dict[int, OutboxNote]:
    """Take the lease on every free note of ``note_ids`` in one statement."""
    if not note_ids:
        return {}
    now = ctx.clock()
    free = or_(OutboxNote.status == PENDING,
               and_(OutboxNote.status == SENDING,
                    or_(OutboxNote.next_attempt_at.is_(None), OutboxNote.next_attempt_at <= now)))
    with transaction(ctx.sessions) as session:
        notes = session.execute(
            update(OutboxNote).where(OutboxNote.id.in_(note_ids), free).values(
                uncertain=or_(OutboxNote.uncertain, OutboxNote.status == SENDING),
                status=SENDING,
                next_attempt_at=now + timedelta(seconds=ctx.settings.outbox_lease_seconds),
                attempts=OutboxNote.attempts + 1,
            ).returning(OutboxNote).execution_options(synchronize_session=False)
        ).scalars().all()
        for note in notes:
            session.expunge(note)
    return {note.id: note for note in notes}


def _record_many(ctx: HubContext, sent: list[tuple[OutboxNote, Delivery]],
                 release: list[int]) -> None:
    """The sent notes marked sent, and the leases of notes not tried given back."""
    if not sent and not release:
        return
    now = ctx.clock()
    with transaction(ctx.sessions) as session:
        if sent:
            session.execute(update(OutboxNote), [
                {"id": note.id, "remote_id": delivery.remote_id, "status": SENT,
                 "sent_at": now, "last_error": None} for note, delivery in sent])
        if release:  # claimed behind a note that failed: as if never taken
            session.execute(update(OutboxNote).where(OutboxNote.id.in_(release)).values(
                status=PENDING, next_attempt_at=now, attempts=OutboxNote.attempts - 1)
                .execution_options(synchronize_session=False))


def _record(ctx: HubContext, note_id: int, *, remote_id: str | None = None,
            sent: bool = False, error: str | None = None, dead: bool = False,
            uncertain: bool = True) -> None:
    if error is None:  # the common case, one statement: the note was sent
        values: dict[str, object] = {}
        if remote_id is not None:
            values["remote_id"] = remote_id
        if sent:
            values.update(status=SENT, sent_at=ctx.clock(), last_error=None)
        if values:
            with transaction(ctx.sessions) as session:
                session.execute(update(OutboxNote).where(OutboxNote.id == note_id)
                                .values(**values).execution_options(synchronize_session=False))
        return
    with transaction(ctx.sessions) as session:
        note = session.get(OutboxNote, note_id)
        if note is None:
            return
        if remote_id is not None:
            note.remote_id = remote_id
        if error is not None:
            # release the lease: the actor's retry (or the requeue job) tries again
            note.status = DEAD if dead else PENDING
            note.uncertain = note.uncertain or uncertain
            note.last_error = error[:500]
            note.next_attempt_at = ctx.clock()


def unfinished(ctx: HubContext, *, older_than: timedelta, limit: int = 1000) -> list[int]:
    """Pending notes older than ``older_than`` (a lost message or a crashed worker)."""
    cutoff = ctx.clock() - older_than
    with ctx.sessions() as session:
        return list(session.execute(
            select(OutboxNote.id).where(
                ((OutboxNote.status == PENDING) & (OutboxNote.created_at < cutoff))
                | ((OutboxNote.status == SENDING) & (OutboxNote.next_attempt_at < ctx.clock())))
            .order_by(OutboxNote.id).limit(limit)
        ).scalars())


def flush_digests(ctx: HubContext) -> list[int]:
    """Fold held step notes into one digest note per run; returns the new note ids."""
    created: list[int] = []
    with transaction(ctx.sessions) as session:
        held = session.execute(
            select(OutboxNote).where(OutboxNote.status == HELD).order_by(OutboxNote.id)
            .with_for_update()
        ).scalars().all()
        by_run: dict[int, list[OutboxNote]] = {}
        for note in held:
            by_run.setdefault(note.run_id, []).append(note)
        for run_id, notes in by_run.items():
            run = session.get(Run, run_id)
            title = run.playbook_version.title if run else f"run {run_id}"
            lines = [f"msphub: progress digest for {title} (run #{run_id}):"]
            lines += ["- " + n.text.split(": ", 1)[-1] for n in notes]
            first = notes[0]
            digest = OutboxNote(key=first.key + "d", run_id=run_id, kind="digest", step_id=None,
                                source=first.source, ticket_id=first.ticket_id,
                                text="\n".join(lines), status=PENDING, attempts=0,
                                uncertain=False, created_at=ctx.clock(),
                                next_attempt_at=ctx.clock())
            session.add(digest)
            track_new_notes(session).append(digest)  # dispatched after commit
            for n in notes:
                n.status = MERGED
            session.flush()
            created.append(digest.id)
    return created

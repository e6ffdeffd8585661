"""Delivering outbox notes to PSA tickets — at most one copy of each, however often it runs.

Before each send the attempt is committed as *uncertain*; a later attempt after an
uncertain one (a timeout, a 5xx, a crash between send and commit) first looks for
the note's marker on the ticket and only posts when it is not there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select

from connectors.base import ConnectorError, PermanentError, TicketWriter
from hub.context import HubContext
from hub.events import SubjectRef
from hub.sources import Sources
from hub.store.db import transaction
from hub.store.models import OutboxNote, Run

log = structlog.get_logger()
PENDING, HELD, SENT, DEAD, MERGED = "pending", "held", "sent", "dead", "merged"


@dataclass(frozen=True)
class Delivery:
    """Result of one delivery attempt: ``sent``, ``found`` (already there) or ``skipped``."""

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


def deliver(ctx: HubContext, sources: Sources, note_id: int) -> Delivery:
    """Post one pending note (and its attachment) to its ticket; safe to call again.

    Raises:
        TransientError: the PSA failed or timed out; retry later (marker check first).
        PermanentError: the note can never be delivered (unknown source, 4xx).
    """
    with transaction(ctx.sessions) as session:
        note = session.execute(
            select(OutboxNote).where(OutboxNote.id == note_id).with_for_update()
        ).scalar_one_or_none()
        if note is None or note.status != PENDING:
            return Delivery(note_id, "skipped")
        was_uncertain = note.uncertain
        note.attempts += 1
        note.uncertain = True
        ticket = SubjectRef(type="ticket", id=note.ticket_id, source=note.source)
        key, text, attachment, kind, source = (note.key, note.text, note.attachment,
                                               note.kind, note.source)
        remote_id = note.remote_id
        run_id = note.run_id
    try:
        writer = _writer(sources, source)
        if remote_id is None:
            found = writer.find_note(ticket, key) if was_uncertain else None
            if found is not None:
                remote_id = found.id
                log.info("note_found_after_uncertain_send", note_id=note_id, ticket=ticket.id)
            else:
                remote_id = writer.post_note(ticket, text, key=key).id
            _record(ctx, note_id, remote_id=remote_id)
        if attachment:
            writer.attach(ticket, attachment["filename"], attachment["content"].encode(),
                          title=attachment["title"], key=key)
        if kind == "completed":
            src = sources.get(source)
            status = src.spec.completed_status if src else None
            if status:
                writer.set_status(ticket, status)
    except ConnectorError as exc:
        _record(ctx, note_id, error=f"{type(exc).__name__}: {exc}",
                dead=isinstance(exc, PermanentError))
        raise
    _record(ctx, note_id, remote_id=remote_id, sent=True)
    log.info("note_delivered", note_id=note_id, run_id=run_id, kind=kind, ticket=ticket.id)
    return Delivery(note_id, "sent" if not was_uncertain else "found", remote_id)


def _record(ctx: HubContext, note_id: int, *, remote_id: str | None = None,
            sent: bool = False, error: str | None = None, dead: bool = False) -> None:
    with transaction(ctx.sessions) as session:
        note = session.get(OutboxNote, note_id)
        if note is None:
            return
        if remote_id is not None:
            note.remote_id = remote_id
        if sent:
            note.status, note.sent_at, note.last_error = SENT, ctx.clock(), None
        if error is not None:
            note.last_error = error[:500]
            note.next_attempt_at = ctx.clock() + timedelta(seconds=30)
        if dead:
            note.status = DEAD


def unfinished(ctx: HubContext, *, older_than: timedelta, limit: int = 1000) -> list[int]:
    """Pending notes older than ``older_than`` (a lost message or a crashed worker)."""
    cutoff = ctx.clock() - older_than
    with ctx.sessions() as session:
        return list(session.execute(
            select(OutboxNote.id).where(OutboxNote.status == PENDING,
                                        OutboxNote.created_at < cutoff)
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
            for n in notes:
                n.status = MERGED
            session.flush()
            created.append(digest.id)
    return created

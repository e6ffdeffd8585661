"""Sending queued notifications: each on its own, retried with backoff, then a dead letter.

A pass claims the due rows (``pending``, or ``sending`` whose lease ran out after a
crash) in one short transaction, sends each outside any transaction and records each
result on its own — so a failing channel (an SMTP server down, a webhook gone) never
holds up the others. A transient failure waits 30 s, then twice as long each time (at
most an hour) up to ``MSPHUB_NOTIFICATION_MAX_ATTEMPTS`` sends; a permanent one, or the
last attempt, leaves the row ``dead`` with its error, listed by ``msphub deadletters``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import and_, or_, select

from connectors.base import PermanentError, TransientError
from hub.core.states import NoteStatus
from hub.services.context import HubContext
from hub.services.notification_channels import Message, Sender, senders
from hub.services.notifications import About, Notifier
from hub.store.db import transaction
from hub.store.models import Notification

log = structlog.get_logger()

LEASE = timedelta(minutes=5)  # at least; a pass holds its rows while it may still run
FIRST_BACKOFF = 30.0
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class DeliveryReport:
    """What one pass did, by notification id."""

    sent: tuple[int, ...] = ()
    retrying: tuple[int, ...] = ()
    dead: tuple[int, ...] = ()


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed send: 30 s, 60 s, 120 s … at most 1 h."""
    return timedelta(seconds=min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


def _claim(ctx: HubContext, now: datetime, limit: int,
           only: Sequence[int] | None = None) -> list[tuple[str, Message]]:
    """Lease the due rows (one transaction; rows another worker holds are skipped)."""
    due = or_(Notification.status == NoteStatus.PENDING.value,
              Notification.status == NoteStatus.SENDING.value)
    if only is not None:
        due = and_(due, Notification.id.in_(list(only)))
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(Notification).where(and_(due, Notification.next_attempt_at <= now))
            .order_by(Notification.next_attempt_at, Notification.id).limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars().all()
        # every send may take the whole timeout: the lease outlasts the slowest pass, so
        # no other worker takes a row this pass will still send
        lease = max(LEASE, timedelta(seconds=len(rows) * ctx.settings.smtp_timeout + 60))
        out: list[tuple[str, Message]] = []
        for row in rows:
            row.status = NoteStatus.SENDING.value
            row.attempts += 1
            row.next_attempt_at = now + lease
            member = ctx.team.member(row.recipient)
            out.append((row.channel, Message(
                row.id, row.recipient, member.name if member else row.recipient, row.address,
                row.subject, row.body_text, row.body_html, row.link)))
    return out


def _record(ctx: HubContext, note_id: int, *, error: Exception | None, now: datetime) -> str:
    """Store one send's result; returns the row's new status."""
    with transaction(ctx.sessions) as session:
        row = session.get(Notification, note_id)
        if row is None:
            return "gone"
        if error is None:
            row.status, row.sent_at, row.last_error = NoteStatus.SENT.value, now, None
        elif isinstance(error, PermanentError) or \
                row.attempts >= ctx.settings.notification_max_attempts:
            row.status, row.last_error = NoteStatus.DEAD.value, str(error)[:500]
        else:
            row.status, row.last_error = NoteStatus.PENDING.value, str(error)[:500]
            row.next_attempt_at = now + backoff(row.attempts)
        return row.status


def deliver_due(ctx: HubContext, *, limit: int = 20, passes: int = 10,
                channels: dict[str, Sender] | None = None,
                only: Sequence[int] | None = None) -> DeliveryReport:
    """Send the notifications that are due now, ``limit`` at a time, for at most
    ``passes`` claims (a burst after a month's launches goes out in one job, bounded);
    returns what happened to each.

    Args:
        channels: senders by channel name (default: SMTP and webhooks from the settings
            and team.yaml).
        only: these notification ids, if due (``msphub notifications test``).
    """
    outcomes: dict[str, list[int]] = {"sent": [], "retrying": [], "dead": []}
    with httpx.Client(timeout=ctx.settings.smtp_timeout, follow_redirects=False) as http:
        by_channel = channels if channels is not None else senders(ctx.settings, ctx.team,
                                                                    http)
        for _ in range(passes):
            messages = _claim(ctx, ctx.clock(), limit, only)
            for channel, message in messages:
                status = _send(ctx, by_channel, channel, message)
                outcomes.get(status, outcomes["retrying"]).append(message.id)
            if len(messages) < limit:
                break
    return DeliveryReport(tuple(outcomes["sent"]), tuple(outcomes["retrying"]),
                          tuple(outcomes["dead"]))


def _send(ctx: HubContext, by_channel: dict[str, Sender], channel: str,
          message: Message) -> str:
    """One send and its record; the row's new status."""
    error: Exception | None = None
    try:
        sender = by_channel.get(channel)
        if sender is None:
            raise PermanentError(f"unknown channel '{channel}'")
        sender.send(message)
    except (TransientError, PermanentError) as exc:
        error = exc
    status = _record(ctx, message.id, error=error, now=ctx.clock())
    _log(message, channel, status, error)
    return "retrying" if status == NoteStatus.PENDING.value else status


def _log(message: Message, channel: str, status: str, error: Exception | None) -> None:
    if error is None:
        log.info("notification_sent", notification_id=message.id, channel=channel,
                 recipient=message.recipient)
    elif status == NoteStatus.DEAD.value:
        log.error("notification_dead", notification_id=message.id, channel=channel,
                  recipient=message.recipient, reason=str(error))
    else:
        log.warning("notification_retry", notification_id=message.id, channel=channel,
                    recipient=message.recipient, reason=str(error))


def send_test(ctx: HubContext, member_id: str,
              channels: Sequence[str] | None = None) -> list[Notification]:
    """Queue a test message for one team member (their channels, or these) and send it now,
    bypassing quiet hours: how an admin checks SMTP and webhooks. Returns its rows."""
    about = About(kind="notify", fact=f"test/{uuid.uuid4().hex}", client=None,
                  link=ctx.settings.public_url,
                  context={"message": "This is a test message from msphub: your channels "
                           "work.", "message_subject": "Test notification", "event": {}})
    now = ctx.clock()
    with transaction(ctx.sessions) as session:
        if not Notifier(ctx.settings, ctx.team).queue(session, about, to=[f"person:{member_id}"],
                                                      channels=channels, now=now):
            return []
        session.flush()
        ids = list(session.execute(select(Notification.id)
                                   .where(Notification.fact == about.fact)).scalars())
        for row in session.execute(select(Notification).where(Notification.id.in_(ids))
                                   ).scalars():
            if row.status == NoteStatus.PENDING.value:
                row.next_attempt_at = now  # a test ignores quiet hours
    deliver_due(ctx, only=ids, passes=1)
    with ctx.sessions() as session:
        return list(session.execute(select(Notification).where(Notification.id.in_(ids))
                                    .order_by(Notification.id)).scalars())

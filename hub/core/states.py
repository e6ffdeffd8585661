"""Every state the hub stores, in one place (the database columns hold these strings)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Lifecycle of a run: ``active → completed | cancelled``."""

    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Lifecycle of a step: ``locked → open → done | skipped``; or ``not_applicable``."""

    LOCKED = "locked"
    OPEN = "open"
    DONE = "done"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not_applicable"


class InboxStatus(StrEnum):
    """An inbox event: ``pending →`` done (rules applied) | ignored (no rule matched) |
    failed (a rule or action could not apply; retryable) | dead (retries exhausted)."""

    PENDING = "pending"
    DONE = "done"
    IGNORED = "ignored"
    FAILED = "failed"
    DEAD = "dead"


class NoteStatus(StrEnum):
    """An outbox note: ``pending → sending → sent``; ``held`` waits for a digest and ends
    ``merged`` into it; ``dead`` when it can never be delivered."""

    PENDING = "pending"
    SENDING = "sending"
    HELD = "held"
    SENT = "sent"
    DEAD = "dead"
    MERGED = "merged"


class SourceState(StrEnum):
    """A source's health: no row is ``healthy``; ``auth_failed`` once the vendor refused
    our credentials (its jobs hold until the credentials change or an admin retries)."""

    HEALTHY = "healthy"
    AUTH_FAILED = "auth_failed"

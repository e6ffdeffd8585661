"""SQLAlchemy 2 models: clients and links, playbook versions, runs, steps, audit, tokens, inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hub.store.types import JSONType, UTCDateTime


class Base(DeclarativeBase):
    """Declarative base of every msphub table."""


class Client(Base):
    """An MSP's customer in the hub's own key space (``acme``), whatever each tool calls it."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    calendar: Mapped[str | None] = mapped_column(String(100))  # a calendars.yaml name
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    # made automatically for an unlinked vendor client (only when the deployment opts in)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    # loaded when asked for (CLI, API): resolving an event's client needs only the row
    links: Mapped[list[ClientLink]] = relationship(
        back_populates="client", lazy="select", order_by="ClientLink.id",
        cascade="all, delete-orphan")


class ClientLink(Base):
    """One vendor record that is this client: a PSA company, an RMM site or organization."""

    __tablename__ = "client_links"
    __table_args__ = (
        # a vendor record belongs to at most one hub client
        UniqueConstraint("source", "object_type", "vendor_id", name="uq_client_link"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"),
                                           index=True)
    source: Mapped[str] = mapped_column(String(100))  # connector instance name
    object_type: Mapped[str] = mapped_column(String(30))  # company | site | organization …
    vendor_id: Mapped[str] = mapped_column(String(200))
    vendor_name: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(200))  # config | user:… | migration
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    client: Mapped[Client] = relationship(back_populates="links")


class PlaybookVersion(Base):
    """A playbook definition as it was when a run was launched (runs pin one)."""

    __tablename__ = "playbook_versions"
    __table_args__ = (UniqueConstraint("playbook_id", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playbook_id: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Run(Base):
    """A live checklist."""

    __tablename__ = "runs"
    __table_args__ = (
        # the same ticket never launches the same playbook twice
        UniqueConstraint("ticket_source", "ticket_id", "playbook_id", name="uq_run_ticket"),
        # nor does the same agreement / alert / company (the subject that launched it)
        UniqueConstraint("origin_source", "origin_type", "origin_id", "playbook_id",
                         name="uq_run_origin"),
        Index("ix_runs_client_status", "client_id", "status"),
        Index("ix_runs_status_playbook", "status", "playbook_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playbook_id: Mapped[str] = mapped_column(String(100))
    playbook_version_id: Mapped[int] = mapped_column(ForeignKey("playbook_versions.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    status: Mapped[str] = mapped_column(String(20))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    ticket_source: Mapped[str | None] = mapped_column(String(100))
    ticket_id: Mapped[str | None] = mapped_column(String(100))
    origin_source: Mapped[str | None] = mapped_column(String(100))
    origin_type: Mapped[str | None] = mapped_column(String(30))
    origin_id: Mapped[str | None] = mapped_column(String(100))
    launched_by: Mapped[str] = mapped_column(String(200))
    launched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    client: Mapped[Client] = relationship(lazy="joined")
    playbook_version: Mapped[PlaybookVersion] = relationship(lazy="joined")
    steps: Mapped[list[RunStep]] = relationship(
        back_populates="run", order_by="RunStep.position", lazy="selectin",
        cascade="all, delete-orphan",
    )


class RunStep(Base):
    """The state of one step in one run."""

    __tablename__ = "run_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "step_id"),
        Index("ix_run_steps_assignee_status", "assignee", "status"),
        Index("ix_run_steps_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    assignee: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    evidence: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # set once each: the due-soon reminder, and the playbook's escalation of a late step
    due_soon_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    run: Mapped[Run] = relationship(back_populates="steps")


class AuditEntry(Base):
    """One audit fact, SHA-256 chained to the entry before it (append-only)."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    step_id: Mapped[str | None] = mapped_column(String(100))
    event_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The newest entry of the chain: detects removal of trailing entries, serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InboxEvent(Base):
    """Every accepted event, stored once per (source, dedupe_key) before anything acts on it."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key", name="uq_inbox_dedupe"),
        Index("ix_inbox_status_received", "status", "received_at"),
        Index("ix_inbox_subject", "source", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    vendor: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    via: Mapped[str] = mapped_column(String(20))  # webhook | poll | replay | api
    # the vendor's client as the event named it, and the hub client it resolved to
    client_key: Mapped[str | None] = mapped_column(String(200))
    client_name: Mapped[str | None] = mapped_column(String(300))
    client_type: Mapped[str | None] = mapped_column(String(30))
    hub_client: Mapped[str | None] = mapped_column(String(200), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(30))
    subject_id: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20))  # pending | done | failed | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # the thin webhook row whose full record this row holds (via "enrich"); the thin row
    # keeps what the vendor sent
    enriched_from: Mapped[int | None] = mapped_column(Integer, index=True)


class OutboxNote(Base):
    """A note the PSA must receive; written with the change that caused it, sent afterwards."""

    __tablename__ = "outbox_notes"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # marker embedded in the note
    # NULL only for a note about an event that launched nothing (kind ``event_failed``,
    # never held for a digest, so the run-keyed code paths never see one): typed int
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(30))
    step_id: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    ticket_id: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    attachment: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # pending | held (waiting for a digest) | sent | dead | merged (folded into a digest)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    uncertain: Mapped[bool] = mapped_column(default=False)  # a send may have reached the PSA
    last_error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PendingEvidence(Base):
    """Evidence that arrived for a step still locked; it ticks the step once it opens."""

    __tablename__ = "pending_evidence"
    __table_args__ = (UniqueConstraint("run_id", "step_id", name="uq_pending_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    evidence: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SourceCursor(Base):
    """Where a connector's poll of one stream got to (saved with the events of each page)."""

    __tablename__ = "source_cursors"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    stream: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class User(Base):
    """A named dashboard user: a password hash (argon2id) and a role, like a token's."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # sessions signed before this instant are refused (a new password signs everyone out)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# The portfolio's unfinished-step aggregate (overdue count, next due date per run) reads
# only this index: status first for the IN (open, locked) range, then run and due date.
Index("ix_run_steps_open", RunStep.status, RunStep.run_id, RunStep.due_at)


class ShareLink(Base):
    """A client's read-only link to one run's completion record: expiring, revocable."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(200))


class SourceHealth(Base):
    """A source the vendor refused our credentials for (``AuthFailed``): its jobs stop
    calling the vendor until the credentials change (another ``fingerprint``) or an admin
    retries (the row is deleted). No row: the source is healthy."""

    __tablename__ = "source_health"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the source's config
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """One message owed to one person on one channel (email, Teams, Slack) about one fact.

    Written in the transaction of the fact (a step assigned, overdue, escalated …) with its
    text already rendered; sent afterwards with retries and backoff, like the PSA notes.
    ``(fact, recipient, channel)`` is unique, so a fact seen twice notifies once.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("fact", "recipient", "channel", name="uq_notification_fact"),
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fact: Mapped[str] = mapped_column(String(200))  # e.g. overdue:run/12/step/revoke
    kind: Mapped[str] = mapped_column(String(30))  # assigned | due_soon | overdue | …
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    step_id: Mapped[str | None] = mapped_column(String(100))
    event_id: Mapped[int | None] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(100))  # a team member id
    channel: Mapped[str] = mapped_column(String(20))  # email | teams | slack
    # the email address; webhook URLs are secrets and are read from team.yaml when sent
    address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    # pending | sending | sent | dead (the outbox notes' states)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

"""Write-back notes: what each state change tells the ticket, queued in the outbox.

Notes are rendered and stored in the same transaction as the change that caused
them (the run service calls :class:`OutboxSink`); delivery happens later.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Capability, RegistryError, get_connector_class
from hub.config.yamlio import read_yaml
from hub.core.checklists.counting import count_steps
from hub.core.checklists.engine import NoteIntent, Outcome, RunState, StepState
from hub.core.states import NoteStatus, StepStatus
from hub.errors import ConfigError
from hub.store.models import AuditEntry, OutboxNote, Run

NEW_NOTES = "msphub_new_outbox"


def track_new_notes(session: Session) -> list[OutboxNote]:
    """The outbox rows this session added (dispatched for delivery after commit)."""
    notes: list[OutboxNote] = session.info.setdefault(NEW_NOTES, [])
    return notes


def dispatch_after_commit(sessions: sessionmaker[Session],
                          send: Callable[[list[int]], None]) -> None:
    """After each commit of these sessions, hand the pending notes it wrote to ``send``.

    ``send`` queues delivery (a dramatiq message) or delivers at once; the outbox row is
    the idempotent fallback either way, so a lost hand-over only delays a note.
    """
    def after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return  # SQLAlchemy also calls after_commit when a savepoint is released
        notes = session.info.pop(NEW_NOTES, None)
        if not notes:
            return
        ids = [n.id for n in notes if inspect(n).persistent and n.status == NoteStatus.PENDING]
        if ids:
            send(ids)

    event.listen(sessions, "after_commit", after_commit)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def _who(actor: str | None) -> str:
    return actor or "-"


def render(intent: NoteIntent, run: Run, state: RunState, *, link: str,
           entries: Sequence[AuditEntry]) -> str:
    """The text of one note (without the marker)."""
    title = run.playbook_version.title
    client = run.client.name or state.client_id
    done, total = state.progress()
    head = f"msphub: {title} for {client} (run #{state.id})"
    if intent.kind == "launched":
        first = [s.title for s in state.steps if s.status is StepStatus.OPEN]
        owners = sorted({s.assignee for s in state.steps if s.assignee})
        lines = [f"{head} launched — {count_steps(s.status for s in state.steps).label}.",
                 f"Open now: {'; '.join(first) or '-'}."]
        if owners:
            lines.append(f"Assigned to: {', '.join(owners)}.")
        lines.append(f"Track it: {link}")
        return "\n".join(lines)
    if intent.kind in ("step_done", "step_skipped") and intent.step_id:
        step = state.step(intent.step_id)
        if intent.kind == "step_skipped":
            return (f"{head}: step '{step.title}' skipped by {_who(step.done_by)} — "
                    f"reason: {step.skip_reason}. Progress {done}/{total}.")
        evidence = f" Evidence: {step.evidence}." if step.evidence else ""
        return (f"{head}: step '{step.title}' done by {_who(step.done_by)} at "
                f"{_when(step.done_at)}.{evidence} Progress {done}/{total}.")
    if intent.kind in ("step_approved", "step_rejected") and intent.step_id:
        return _sign_off(head, intent, state.step(intent.step_id), done, total)
    if intent.kind == "overdue" and intent.step_id:
        step = state.step(intent.step_id)
        return (f"{head}: step '{step.title}' is overdue (due {_when(step.due_at)}, "
                f"assigned to {step.assignee or 'nobody'}). {link}")
    if intent.kind == "completed":
        return completion_record(run, state, entries)
    if intent.kind == "cancelled":
        reason = f" Reason: {intent.text}." if intent.text else ""
        return f"{head} cancelled at {done}/{total} steps.{reason}"
    return f"{head}: {intent.text or ''}"


def _sign_off(head: str, intent: NoteIntent, step: StepState, done: int, total: int) -> str:
    if intent.kind == "step_approved":
        comment = f" Comment: {intent.text}." if intent.text else ""
        return (f"{head}: '{step.title}' approved by {_who(step.done_by)} at "
                f"{_when(step.done_at)}.{comment} Progress {done}/{total}.")
    return (f"{head}: '{step.title}' rejected — reason: {intent.text}. The steps it "
            f"reopened are to be done again. Progress {done}/{total}.")


def _approval_steps(run: Run) -> set[str]:
    """Ids of the sign-off steps of the run's pinned playbook version."""
    steps = (run.playbook_version.definition or {}).get("steps") or []
    return {s["id"] for s in steps if isinstance(s, dict) and s.get("approval")}


def completion_record(run: Run, state: RunState, entries: Sequence[AuditEntry]) -> str:
    """The evidence record: every applicable step, who or what did it, when, the evidence,
    and the audit-chain hash that seals it."""
    title = run.playbook_version.title
    done, total = state.progress()
    lines = [
        f"msphub: {title} for {run.client.name or state.client_id} (run #{state.id}) "
        f"COMPLETED — {done}/{total} steps.",
        f"Playbook {state.playbook_id} v{state.playbook_version}; launched "
        f"{_when(state.launched_at)} by {state.launched_by}; "
        f"completed {_when(state.completed_at)}.",
        "",
    ]
    sign_offs = _approval_steps(run)
    for s in state.steps:
        if s.status is StepStatus.NOT_APPLICABLE:
            continue
        mark = "[x]" if s.status is StepStatus.DONE else "[-]"
        if s.step_id in sign_offs and s.status is StepStatus.DONE:
            comment = f" — {s.evidence}" if s.evidence else ""
            lines.append(f"{mark} {s.title} — approved by {_who(s.done_by)}, "
                         f"{_when(s.done_at)}{comment}")
            continue
        detail = (f"evidence: {_one_line(s.evidence)}" if s.evidence else
                  f"skipped: {s.skip_reason}" if s.skip_reason else "no evidence recorded")
        lines.append(f"{mark} {s.title} — {_who(s.done_by)}, {_when(s.done_at)} — {detail}")
    skipped = [s.title for s in state.steps if s.status is StepStatus.NOT_APPLICABLE]
    if skipped:
        lines.append(f"Not applicable: {'; '.join(skipped)}")
    if entries:
        last = entries[-1]
        lines += ["", f"Audit chain: entry #{last.id}, sha256 {last.hash}"]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    # free-text evidence and the evidence form's line are kept on separate lines
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def _any_source(_source: str) -> bool:
    return True


def ticket_writers(config_dir: Path) -> Callable[[str], bool]:
    """"Can this source write to tickets?" from ``connectors.yaml``, without building
    connectors: an instance whose vendor lacks the ``ticket_writer`` capability (an RMM,
    the generic webhook) cannot; a name the file does not configure is given the benefit
    of the doubt (delivery then reports it), as are files that cannot be read here (the
    runtime refuses those at start-up with file and line).
    """
    connectors_file = config_dir / "connectors.yaml"
    try:
        doc = read_yaml(connectors_file) if connectors_file.exists() else None
    except ConfigError:
        return _any_source
    data = doc.data if doc is not None else None
    raw = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        return _any_source
    cannot: set[str] = set()
    for name, spec in raw.items():
        vendor = spec.get("vendor") if isinstance(spec, dict) else None
        if not isinstance(vendor, str):
            continue
        try:
            capabilities = get_connector_class(vendor).manifest.capabilities
        except RegistryError:
            continue
        if Capability.TICKET_WRITER not in capabilities:
            cannot.add(str(name))
    return lambda source: source not in cannot


class OutboxSink:
    """Queues the notes of a transition in the outbox (same transaction as the change).

    Runs without an originating ticket produce no notes, nor do runs whose ticket source
    cannot write to tickets (``can_write(source)`` is False: an RMM alert or the generic
    webhook launched it), so no note is queued only to go dead. ``notes`` in the run's
    options picks how step completions are reported: ``each`` (default), ``digest``
    (held, then sent together by the digest job) or ``none``.
    """

    def __init__(self, public_url: str,
                 can_write: Callable[[str], bool] = _any_source) -> None:
        self.public_url = public_url.rstrip("/")
        self.can_write = can_write

    def __call__(self, session: Session, run: Run, outcome: Outcome,
                 entries: Sequence[AuditEntry]) -> None:
        if not (run.ticket_source and run.ticket_id):
            return
        if not self.can_write(run.ticket_source):
            return
        mode = (run.options or {}).get("notes", "each")
        now = entries[-1].at if entries else outcome.run.launched_at
        link = f"{self.public_url}/runs/{run.id}"
        for intent in outcome.notes:
            is_step = intent.kind in ("step_done", "step_skipped")
            if is_step and mode == "none":
                continue
            text = render(intent, run, outcome.run, link=link, entries=entries)
            attachment = None
            if intent.kind == "completed":
                attachment = {
                    "filename": f"msphub-run-{run.id}-evidence.txt",
                    "title": f"Completion evidence: {run.playbook_version.title} (run {run.id})",
                    "content": text,
                }
            note = OutboxNote(
                key=uuid.uuid4().hex, run_id=run.id, kind=intent.kind, step_id=intent.step_id,
                source=run.ticket_source, ticket_id=run.ticket_id, text=text,
                attachment=attachment,
                status=NoteStatus.HELD if (is_step and mode == "digest") else NoteStatus.PENDING,
                attempts=0, uncertain=False, created_at=now, next_attempt_at=now,
            )
            session.add(note)
            track_new_notes(session).append(note)

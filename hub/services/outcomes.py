"""What an event's outcome records beside its applied actions: which rule version acted,
what a shadow rule would have done, and the one note telling a ticket why nothing started.

The pipeline (:mod:`hub.services.pipeline`) calls these inside the event's savepoint, so
a failure note commits with the ``failed`` status that caused it, or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.events import Event
from hub.core.mapping.actions import Action, Cancel, Comment, Launch, Tick, action_to_dict
from hub.core.mapping.engine import CompiledRule, RuleSet
from hub.core.states import NoteStatus
from hub.services.notes import ticket_writers, track_new_notes
from hub.store.models import OutboxNote

FAILED_NOTE = "event_failed"  # OutboxNote.kind of the note about an event that failed


def rule_version(compiled: CompiledRule) -> str:
    """A short digest of the rule as written (its fields, not its place in the file): the
    trace and the audit trail name the version of a rule that acted."""
    canonical = json.dumps(compiled.rule.model_dump(mode="json", by_alias=True),
                           sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def versions(rules: RuleSet, rule_ids: Sequence[str]) -> dict[str, str]:
    """``{rule id: version}`` for the rules that acted (or would have) on an event."""
    return {rule_id: rule_version(rules.get(rule_id)) for rule_id in dict.fromkeys(rule_ids)}


def would_have(action: Action) -> str:
    """"would have …": what a shadow rule's action would have done, in admin words."""
    client = f" for {action.client_id}" if action.client_id else ""
    if isinstance(action, Launch):
        inputs = ", ".join(f"{k}={v!r}" for k, v in action.inputs.items())
        return f"would have launched {action.playbook}{client}" + (
            f" ({inputs})" if inputs else "")
    if isinstance(action, Tick | Comment | Cancel):
        runs = f"active runs of {', '.join(action.playbooks)}" if action.playbooks else \
            "all active runs"
        if isinstance(action, Tick):
            return f"would have ticked {action.step} in {runs}{client}"
        if isinstance(action, Comment):
            return f"would have commented on {runs}{client}: {action.text!r}"
        return f"would have cancelled {runs}{client}: {action.reason!r}"
    # any other action (notify, note …): its type and what it names
    detail = {k: v for k, v in action_to_dict(action).items() if k not in ("type", "rule_id")}
    return f"would have done {action.type}{client}: {json.dumps(detail, default=str)}"


@lru_cache(maxsize=16)
def _writers(config_dir: Path) -> Callable[[str], bool]:
    """Which sources write to tickets (read once per config directory: the hub reads
    connectors.yaml at start-up too)."""
    return ticket_writers(config_dir)


def failure_key(event_id: int) -> str:
    """The outbox key of the failure note of one inbox event: one note per event, however
    often the event is retried (the key is unique, and the marker in the note)."""
    return hashlib.sha256(f"msphub:{FAILED_NOTE}:{event_id}".encode()).hexdigest()[:32]


def failure_text(event_id: int, errors: Sequence[dict[str, str]]) -> str:
    """The note: which rule could not apply and what is missing, and how to retry."""
    lines = ["msphub: no checklist was started for this ticket."]
    lines += [f"Rule '{e['rule_id']}': {e['error']}" for e in errors]
    lines.append(f"Once it is fixed (the ticket or the rule), an admin can retry it: "
                 f"msphub events retry {event_id}")
    return "\n".join(lines)


def queue_failure_note(session: Session, *, event: Event, event_id: int,
                       errors: Sequence[dict[str, str]], config_dir: Path,
                       now: datetime) -> OutboxNote | None:
    """Queue the one note telling a ticket's technician why no checklist started.

    Nothing is queued when the event is not about a ticket, its source cannot write to
    tickets, no error is given (every failing rule said ``on_error: none``), or this
    event's note already exists (a retry that fails again).
    """
    subject = event.subject
    if not errors or subject is None or subject.type != "ticket":
        return None
    if not _writers(config_dir)(event.source):
        return None
    key = failure_key(event_id)
    if session.execute(select(OutboxNote.id).where(OutboxNote.key == key)).first():
        return None
    note = OutboxNote(key=key, run_id=None, kind=FAILED_NOTE, step_id=None,
                      source=event.source, ticket_id=subject.id,
                      text=failure_text(event_id, errors), attachment=None,
                      status=NoteStatus.PENDING, attempts=0, uncertain=False,
                      created_at=now, next_attempt_at=now)
    session.add(note)
    track_new_notes(session).append(note)
    return note

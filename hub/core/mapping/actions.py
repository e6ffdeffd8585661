"""The typed actions a matched rule asks the hub to take (plain, frozen values)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Launch:
    """Start a run of ``playbook`` for a client.

    Attributes:
        rule_id: the rule that asked for it (audit actor ``rule:<id>``).
        client_id: the rendered ``launch.client``, or the event's client id.
        client_name: the event's client name when the run is for the event's client.
        inputs: playbook inputs, rendered; checked by the checklist engine at launch.
        notes: write-back mode for step progress: each | digest | none.
    """

    type: ClassVar[str] = "launch"

    rule_id: str
    playbook: str
    client_id: str
    client_name: str | None
    inputs: dict[str, Any]
    notes: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Mark ``step`` done in the client's active runs of ``playbooks``, with evidence."""

    type: ClassVar[str] = "tick"

    rule_id: str
    playbooks: tuple[str, ...]
    step: str
    evidence: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Comment:
    """Add ``text`` to the client's active runs of ``playbooks`` (empty: all of them)."""

    type: ClassVar[str] = "comment"

    rule_id: str
    playbooks: tuple[str, ...]
    text: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the client's active runs of ``playbooks``, recording ``reason``."""

    type: ClassVar[str] = "cancel"

    rule_id: str
    playbooks: tuple[str, ...]
    reason: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell people (``to``: ``manager``, ``role:<r>``, ``person:<id>``) about the event.

    Attributes:
        channels: email | teams | slack | ticket; empty: each person's own choice.
        template: the notification template set the message is rendered with.
        subject, text: rendered from the rule's templates against the event.
    """

    type: ClassVar[str] = "notify"

    rule_id: str
    to: tuple[str, ...]
    channels: tuple[str, ...]
    template: str
    subject: str
    text: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """Put ``text`` as one internal note on the ticket the event is about."""

    type: ClassVar[str] = "note"

    rule_id: str
    text: str
    client_id: str | None = None


Action = Launch | Tick | Comment | Cancel | Notify | Note


def action_to_dict(action: Action) -> dict[str, Any]:
    """JSON-ready form: ``{"type": "tick", "rule_id": ..., ...}``."""
    out: dict[str, Any] = {"type": action.type}
    for key, value in asdict(action).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def effect_key(action: Action) -> str:
    """What the action does, without which rule asked for it (to compare rulesets)."""
    data = action_to_dict(action)
    data.pop("rule_id")
    return json.dumps(data, sort_keys=True, default=str)

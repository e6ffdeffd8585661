"""The shipped people rules (mappings/examples/people.yaml, loaded only when copied) are
valid against the shipped playbooks, and each sample event gives the expected actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config.mappings import compile_files, load_rules
from hub.config.playbooks import load_library
from hub.core.events import Event
from hub.core.mapping.actions import Launch, Note, Notify, action_to_dict
from hub.core.mapping.engine import RuleSet, explain

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "mappings" / "examples"


@pytest.fixture(scope="module")
def examples() -> RuleSet:
    library = load_library(REPO / "playbooks")
    ruleset, errors = compile_files([EXAMPLES / "people.yaml"], library)
    assert [str(e) for e in errors] == []
    return ruleset


def actions(ruleset: RuleSet, sample: str) -> list[dict[str, object]]:
    event = Event.model_validate_json((EXAMPLES / "samples" / f"{sample}.json").read_bytes())
    result = explain(ruleset, event)
    assert result.errors == []
    return [action_to_dict(a) for a in result.actions]


def test_the_examples_are_not_live() -> None:
    """Only files directly under mappings/ load: the shipped rules do not include these."""
    shipped = load_rules(REPO / "mappings", load_library(REPO / "playbooks"))
    for rule_id in ("vip-high-priority-notifies-manager", "sla-warning-notes-ticket"):
        with pytest.raises(KeyError):
            shipped.get(rule_id)


def test_a_vip_high_priority_ticket_notifies_the_manager_everywhere(examples: RuleSet) -> None:
    [notify] = actions(examples, "vip-high-priority")
    assert notify == {
        "type": Notify.type, "rule_id": "vip-high-priority-notifies-manager",
        "to": ["manager"], "channels": ["email", "teams", "slack"], "template": "notify",
        "subject": "VIP Acme Manufacturing: high-priority ticket 48300",
        "text": "Email down for the whole office (Priority 1 - Emergency Response, board "
                "Service Desk)", "client_id": "acme"}


def test_an_sla_warning_notes_the_ticket_and_tells_the_dispatcher(examples: RuleSet) -> None:
    note, notify = actions(examples, "sla-warning")
    assert note["type"] == Note.type and note["text"] == (
        "msphub: this ticket entered its SLA warning stage (2026-11-20T10:00:00+00:00); the "
        "dispatcher has been told.")
    assert notify["type"] == Notify.type and notify["to"] == ["role:dispatcher"]
    assert notify["channels"] == []  # the dispatcher's own channels
    assert notify["text"] == ("Ticket 48213 for Acme Manufacturing is in its SLA warning "
                              "stage: Printer on floor 2 offline")


def test_a_security_incident_ticket_launches_response_and_notifies(examples: RuleSet) -> None:
    launch, notify = actions(examples, "security-incident")
    assert launch["type"] == Launch.type and launch["playbook"] == "security-incident-response"
    assert launch["inputs"] == {"severity": "high", "reported_by": "Sam Lee (ticket 7781)"}
    assert notify["to"] == ["manager", "role:security"]
    assert notify["channels"] == ["email", "teams", "ticket"]
    assert notify["subject"] == "Security incident at Globex Corporation: ticket 7781"


def test_a_low_priority_ticket_tells_nobody(examples: RuleSet) -> None:
    assert actions(examples, "low-priority") == []

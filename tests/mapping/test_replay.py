"""diff_actions: what switching rule sets would change over stored events."""

from __future__ import annotations

from hub.core.mapping.actions import Launch, Tick
from hub.core.mapping.replay import diff_actions

from .conftest import RulesFactory, make_event

OLD = """
    rules:
      - id: backup
        on: alert.resolved
        if: {alert.category: backup}
        tick: {playbook: onboard, step: verify-backups, evidence: "alert {{ alert.id }}"}
      - id: leaver
        on: ticket.created
        if: {ticket.type: Leaver}
        launch: {playbook: offboard, inputs: {leaver_name: "{{ ticket.name }}"}}
"""

EVENTS = [
    make_event("alert.resolved", {"alert": {"id": "a1", "category": "backup"}}, key="e1"),
    make_event("alert.resolved", {"alert": {"id": "a2", "category": "patch"}}, key="e2"),
    make_event("ticket.created", {"ticket": {"type": "Leaver", "name": "Jo"}}, key="e3"),
    make_event("ticket.created", {"ticket": {"type": "Other", "name": "Al"}}, key="e4"),
]


def test_same_rules_change_nothing(rules: RulesFactory) -> None:
    """Replaying through identical rule sets shows no difference."""
    diff = diff_actions(rules(OLD), rules(OLD), EVENTS)
    assert diff.unchanged and diff.events == 4 and diff.changed_events == 0


def test_renamed_rule_with_same_effect_is_no_change(rules: RulesFactory) -> None:
    """Actions are compared by effect, not by the rule id that produced them."""
    diff = diff_actions(rules(OLD), rules(OLD.replace("id: backup", "id: backups-ok")), EVENTS)
    assert diff.unchanged


def test_added_and_removed_actions(rules: RulesFactory) -> None:
    """Widening one rule adds ticks; narrowing another removes a launch."""
    new = (OLD.replace("{alert.category: backup}", "{alert.category: {in: [backup, patch]}}")
              .replace("{ticket.type: Leaver}", "{ticket.type: Leaver, ticket.board: HR}"))
    diff = diff_actions(rules(OLD), rules(new), EVENTS)
    assert diff.changed_events == 2
    assert [(c.dedupe_key, c.action) for c in diff.added] == [
        ("e2", Tick("backup", ("onboard",), "verify-backups", "alert a2", "ACME")),
    ]
    assert [(c.dedupe_key, c.kind, c.action) for c in diff.removed] == [
        ("e3", "ticket.created",
         Launch("leaver", "offboard", "ACME", "Acme Ltd", {"leaver_name": "Jo"}, "each")),
    ]
    assert diff.summary()["tick"] == {"added": 1, "removed": 0}
    assert diff.summary()["launch"] == {"added": 0, "removed": 1}
    assert not diff.unchanged


def test_changed_template_is_a_remove_and_an_add(rules: RulesFactory) -> None:
    """A different rendered value (evidence text) replaces the old action."""
    diff = diff_actions(rules(OLD), rules(OLD.replace('"alert {{', '"RMM alert {{')), EVENTS)
    assert [c.action.evidence for c in diff.removed] == ["alert a1"]  # type: ignore[union-attr]
    assert [c.action.evidence for c in diff.added] == ["RMM alert a1"]  # type: ignore[union-attr]


def test_new_render_errors_are_reported(rules: RulesFactory) -> None:
    """Events the new rules would fail on are listed with the rule and message."""
    new = OLD.replace("{{ ticket.name }}", "{{ ticket.contact.name }}")
    diff = diff_actions(rules(OLD), rules(new), EVENTS)
    assert [(e.dedupe_key, e.rule_id) for e in diff.new_errors] == [("e3", "leaver")]
    assert "ticket.contact" in diff.new_errors[0].message
    assert diff.old_errors == ()
    assert [c.dedupe_key for c in diff.removed] == ["e3"]
    assert not diff.unchanged

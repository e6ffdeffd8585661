"""Actions: what each rule type produces, rule order, priority, stop, enabled, from."""

from __future__ import annotations

import textwrap

import pytest

from hub.core.mapping.actions import Cancel, Comment, Launch, Tick, action_to_dict
from hub.core.mapping.engine import RuleSet, evaluate, explain
from hub.errors import MappingError

from .conftest import RulesFactory, make_event

LEAVER = {"ticket": {"id": 7, "type": "Leaver", "contact": {"name": "John Smith"},
                     "custom_fields": {"Last Day": "2024-05-31"}}}


@pytest.mark.parametrize(
    ("action_yaml", "expected"),
    [
        (
            """
            launch:
              playbook: offboard
              inputs:
                leaver_name: "{{ ticket.contact.name }}"
                last_day: "{{ ticket.custom_fields['Last Day'] }}"
            """,
            Launch("r", "offboard", "ACME", "Acme Ltd",
                   {"leaver_name": "John Smith", "last_day": "2024-05-31"}, "each"),
        ),
        (
            """
            launch:
              playbook: offboard
              client: "{{ client.id }}-child"
              inputs: {leaver_name: "x", convert: false, last_day: 2024-06-01}
              notes: digest
            """,
            Launch("r", "offboard", "ACME-child", None,
                   {"leaver_name": "x", "convert": False, "last_day": "2024-06-01"}, "digest"),
        ),
        (
            """
            launch:
              playbook: offboard
              client: "{{ client.id }}"
              inputs: {leaver_name: "x"}
              notes: none
            """,
            Launch("r", "offboard", "ACME", "Acme Ltd", {"leaver_name": "x"}, "none"),
        ),
        (
            """
            tick:
              playbook: [onboard, maint]
              step: verify-backups
              evidence: "{{ source }} ticket {{ ticket.id }}"
            """,
            Tick("r", ("onboard", "maint"), "verify-backups", "cw-prod ticket 7", "ACME"),
        ),
        (
            """
            tick: {playbook: onboard, step: deploy-agent}
            """,
            Tick("r", ("onboard",), "deploy-agent", "ticket.created ticket 100 from cw-prod",
                 "ACME"),
        ),
        (
            """
            comment: {playbook: offboard, text: "Ticket {{ ticket.id }} closed"}
            """,
            Comment("r", ("offboard",), "Ticket 7 closed", "ACME"),
        ),
        (
            """
            comment: {text: "to every active run"}
            """,
            Comment("r", (), "to every active run", "ACME"),
        ),
        (
            """
            cancel: {playbook: [onboard, offboard], reason: "{{ ticket.type }} withdrawn"}
            """,
            Cancel("r", ("onboard", "offboard"), "Leaver withdrawn", "ACME"),
        ),
    ],
    ids=["launch", "launch-client-template", "launch-same-client", "tick", "tick-default-evidence",
         "comment", "comment-all-runs", "cancel"],
)
def test_action_types(rules: RulesFactory, action_yaml: str, expected: object) -> None:
    """Each action type renders its templates and carries the rule id and client."""
    action = textwrap.indent(textwrap.dedent(action_yaml).strip("\n"), "    ")
    ruleset = rules(f"rules:\n  - id: r\n    on: ticket.created\n{action}\n")
    assert evaluate(ruleset, make_event(data=LEAVER)) == [expected]


def test_action_to_dict_is_json_ready(rules: RulesFactory) -> None:
    """action_to_dict adds the type and turns tuples into lists."""
    ruleset = rules("""
        rules:
          - id: r
            on: ticket.created
            tick: {playbook: [onboard, maint], step: verify-backups, evidence: x}
    """)
    (action,) = evaluate(ruleset, make_event())
    assert action_to_dict(action) == {
        "type": "tick", "rule_id": "r", "playbooks": ["onboard", "maint"],
        "step": "verify-backups", "evidence": "x", "client_id": "ACME",
    }


def test_launch_without_any_client_is_an_error(rules: RulesFactory) -> None:
    """A launch for an event with no client and no `client` template cannot apply."""
    ruleset = rules("""
        rules:
          - id: r
            on: ticket.created
            launch: {playbook: offboard, inputs: {leaver_name: x}}
    """)
    with pytest.raises(MappingError, match=r"rule 'r': launch\.client: the event has no client"):
        evaluate(ruleset, make_event(client=None))


def test_tick_without_client_carries_none(rules: RulesFactory) -> None:
    """Tick/comment/cancel target the event's client; none when the event has none."""
    ruleset = rules("""
        rules:
          - id: r
            on: ticket.created
            tick: {playbook: onboard, step: deploy-agent}
    """)
    (action,) = evaluate(ruleset, make_event(client=None))
    assert isinstance(action, Tick) and action.client_id is None


ORDERED = """
    rules:
      - id: first-in-file
        on: ticket.created
        comment: {text: a}
      - id: high
        priority: 10
        on: ticket.created
        comment: {text: b}
      - id: second-in-file
        on: ticket.created
        comment: {text: c}
      - id: negative
        priority: -5
        on: ticket.created
        comment: {text: d}
"""


def test_priority_then_file_order(rules: RulesFactory) -> None:
    """Rules run by priority (highest first), then in file order."""
    result = explain(rules(ORDERED), make_event())
    assert [m.rule_id for m in result.matched] == [
        "high", "first-in-file", "second-in-file", "negative",
    ]


def test_stop_skips_later_rules(rules: RulesFactory) -> None:
    """A matching rule with stop: true ends evaluation; a non-matching one does not."""
    ruleset = rules("""
        rules:
          - id: specific-but-no-match
            priority: 20
            stop: true
            on: ticket.created
            if: {ticket.type: Starter}
            comment: {text: a}
          - id: specific
            priority: 10
            stop: true
            on: ticket.created
            if: {ticket.type: Leaver}
            comment: {text: b}
          - id: general
            on: ticket.created
            comment: {text: c}
    """)
    result = explain(ruleset, make_event(data=LEAVER), trace=True)
    assert [m.rule_id for m in result.matched] == ["specific"]
    assert result.stopped_by == "specific"
    assert [m.rule_id for m in result.near_misses] == ["specific-but-no-match"]
    # the pipeline's pass skips the Starter rule through the index: same outcome
    fast = explain(ruleset, make_event(data=LEAVER))
    assert (fast.matched, fast.stopped_by, fast.near_misses) == (result.matched, "specific", [])
    # Without the leaver type, the general rule applies.
    other = explain(ruleset, make_event(data={"ticket": {"type": "Other"}}))
    assert [m.rule_id for m in other.matched] == ["general"]
    assert other.stopped_by is None


def test_stop_applies_even_when_the_stopping_rule_errors(rules: RulesFactory) -> None:
    """The event was meant for the stopping rule: its render error does not fall through."""
    ruleset = rules("""
        rules:
          - id: specific
            priority: 1
            stop: true
            on: ticket.created
            comment: {text: "{{ ticket.nothing }}"}
          - id: general
            on: ticket.created
            comment: {text: c}
    """)
    result = explain(ruleset, make_event(data=LEAVER))
    assert result.matched == [] and [e.rule_id for e in result.errors] == ["specific"]


def test_disabled_rules_are_loaded_but_never_apply(rules: RulesFactory) -> None:
    """enabled: false keeps a rule checked and listed, but out of evaluation."""
    ruleset = rules("""
        rules:
          - id: disabled
            enabled: false
            on: ticket.created
            comment: {text: a}
    """)
    assert len(ruleset) == 1 and ruleset.get("disabled").rule.enabled is False
    assert explain(ruleset, make_event()).examined == 0


@pytest.mark.parametrize(
    ("on", "kind", "hit"),
    [
        ("ticket.created", "ticket.created", True),
        ("ticket.created", "ticket.updated", False),
        ("[ticket.created, ticket.updated]", "ticket.updated", True),
        ("[ticket.created, ticket.updated]", "ticket.closed", False),
    ],
)
def test_on_kind_or_list(rules: RulesFactory, on: str, kind: str, hit: bool) -> None:
    """`on` takes one kind or a list."""
    ruleset = rules(f"""
        rules:
          - id: r
            on: {on}
            comment: {{text: x}}
    """)
    assert bool(evaluate(ruleset, make_event(kind))) is hit


@pytest.mark.parametrize(
    ("from_", "vendor", "source", "hit"),
    [
        (None, "ninjaone", "anything", True),
        ("connectwise", "connectwise", "cw-prod", True),
        ("cw-prod", "connectwise", "cw-prod", True),
        ("[autotask, cw-prod]", "connectwise", "cw-prod", True),
        ("CW-Prod", "connectwise", "cw-prod", True),
        ("datto-rmm", "datto_rmm", "rmm", True),
        ("datto_rmm", "datto-rmm", "rmm", True),
        ("autotask", "connectwise", "cw-prod", False),
        ("cw-test", "connectwise", "cw-prod", False),
    ],
)
def test_from_vendor_or_instance(rules: RulesFactory, from_: str | None, vendor: str,
                                 source: str, hit: bool) -> None:
    """`from` names vendors or instances; case-insensitive, `_` equals `-`."""
    line = f"from: {from_}" if from_ else ""
    ruleset = rules(f"""
        rules:
          - id: r
            on: ticket.created
            {line}
            comment: {{text: x}}
    """)
    event = make_event(vendor=vendor, source=source)
    assert bool(evaluate(ruleset, event)) is hit


def test_rule_naming_vendor_and_instance_fires_once(rules: RulesFactory) -> None:
    """A rule indexed under both the event's vendor and source is evaluated once."""
    ruleset = rules("""
        rules:
          - id: r
            on: ticket.created
            from: [connectwise, cw-prod]
            comment: {text: x}
    """)
    result = explain(ruleset, make_event())
    assert len(result.matched) == 1 and result.examined == 1


def test_evaluation_never_changes_the_event(rules: RulesFactory) -> None:
    """Evaluating (even a template that tries to mutate) leaves the event as it was."""
    ruleset = rules("""
        rules:
          - id: mutate
            on: ticket.created
            comment: {text: "{{ ticket.custom_fields.update({'x': 1}) }}"}
          - id: append
            on: ticket.created
            comment: {text: "{{ ticket.tags.append('y') }}"}
          - id: read
            on: ticket.created
            launch: {playbook: offboard, inputs: {leaver_name: "{{ ticket.contact.name }}"}}
    """)
    data = {"ticket": {**LEAVER["ticket"], "tags": ["a"]}}
    event = make_event(data=data)
    before = event.model_dump()
    result = explain(ruleset, event)
    assert event.model_dump() == before
    assert sorted(e.rule_id for e in result.errors) == ["append", "mutate"]
    assert all("unsafe" in e.message for e in result.errors)
    (launch,) = result.actions
    assert isinstance(launch, Launch)
    launch.inputs["leaver_name"] = "changed"  # the action owns a copy, not the event's data
    assert event.model_dump() == before


def test_empty_ruleset() -> None:
    """No rules: nothing happens and nothing is examined."""
    result = explain(RuleSet(), make_event())
    assert result.matched == [] and result.examined == 0

"""Validation errors in admin words: no pydantic wording, the allowed keys or values, and a
suggestion for a near miss, with file, line and key path."""

from __future__ import annotations

import textwrap

import pytest

from hub.config.mappings import parse_rules
from hub.config.playbooks import PlaybookLibrary
from hub.core.suggest import did_you_mean, hint_listed

PYDANTIC_WORDING = ("Extra inputs are not permitted", "Input should be", "Field required",
                    "String should", "Value error")


def _errors(library: PlaybookLibrary, rule: str) -> list[str]:
    text = "rules:\n" + textwrap.indent(textwrap.dedent(rule), "  ")
    return [str(e) for e in parse_rules(text, "m.yaml", library)[1]]


@pytest.mark.parametrize(("rule", "expected"), [
    ("""\
     - id: r
       on: ticket.created
       launch: {playbook: offboard, inputs: {leaver_name: x}, notes: eachh}
     """,
     "m.yaml:4 [rules.0.launch.notes]: rule 'r': 'eachh' is not allowed here (did you mean "
     "'each'?); use one of: each, digest, none"),
    ("""\
     - id: r
       on: ticket.created
       comment: {text: x, playbok: [offboard]}
     """,
     "m.yaml:4 [rules.0.comment.playbok]: rule 'r': unknown key 'playbok' (did you mean "
     "'playbook'?) (allowed here: playbook, text)"),
    ("""\
     - id: r
       on: ticket.created
       priorty: 5
       comment: {text: x}
     """,
     "m.yaml:4 [rules.0.priorty]: rule 'r': unknown key 'priorty' (did you mean 'priority'?)"),
    ("""\
     - id: r
       on: ticket.created
       priority: high
       comment: {text: x}
     """,
     "m.yaml:4 [rules.0.priority]: rule 'r': must be a whole number"),
])
def test_rule_errors_are_in_admin_words(library: PlaybookLibrary, rule: str,
                                        expected: str) -> None:
    """The message names file, line, key path and suggests the near miss."""
    errors = _errors(library, rule)

    assert errors and errors[0].startswith(expected)
    assert not any(w in e for e in errors for w in PYDANTIC_WORDING)


def test_messages_listing_names_get_suggestions() -> None:
    """Messages the team model writes (listing the names) gain "did you mean"."""
    assert hint_listed("unknown member 'caroll' (members: alice, carol)") == \
        "unknown member 'caroll' (did you mean 'carol'?) (members: alice, carol)"
    assert hint_listed("unknown member 'zed' (members: alice, carol)") == \
        "unknown member 'zed' (members: alice, carol)"


@pytest.mark.parametrize(("word", "names", "expected"), [
    ("enginer", ["engineer", "security"], "engineer"),
    ("ncentrall", ["ncentral", "ninjaone"], "ncentral"),
    ("ConnectWise", ["connectwise"], "connectwise"),   # only the case differs
    ("backup", ["engineer", "security"], None),         # nothing close
    ("engineer", ["engineer"], None),                   # already right
])
def test_did_you_mean(word: str, names: list[str], expected: str | None) -> None:
    """Near misses are suggested; far ones and exact ones are not."""
    assert did_you_mean(word, names) == expected

"""Rule conditions (`if`): every operator of the shared condition language, through rules."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml

from hub.core.mapping.engine import explain

from .conftest import build_rules, make_event

TICKET = {
    "type": "Leaver",
    "board": "Service Desk",
    "summary": "Leaver: John Smith",
    "priority": 3,
    "hours": "2.5",
    "due": "2024-05-31",
    "contact": {"name": "Maria", "email": None},
    "tags": ["vip"],
}

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # equality: implicit, explicit, case-insensitive for text, numbers
    ("eq-implicit", {"ticket.type": "Leaver"}, True),
    ("eq-case-insensitive", {"ticket.type": "LEAVER"}, True),
    ("eq-explicit", {"ticket.type": {"eq": "leaver"}}, True),
    ("eq-mismatch", {"ticket.type": "Starter"}, False),
    ("eq-number", {"ticket.priority": 3}, True),
    ("eq-nested", {"ticket.contact.name": "maria"}, True),
    ("eq-null-value", {"ticket.contact.email": None}, True),
    ("ne", {"ticket.type": {"ne": "Starter"}}, True),
    ("ne-same-other-case", {"ticket.type": {"ne": "leaver"}}, False),
    # membership
    ("in", {"ticket.board": {"in": ["HR", "service desk"]}}, True),
    ("in-miss", {"ticket.board": {"in": ["HR", "Projects"]}}, False),
    ("not_in", {"ticket.board": {"not_in": ["HR", "Projects"]}}, True),
    ("not_in-hit", {"ticket.board": {"not_in": ["SERVICE DESK"]}}, False),
    # regular expressions (search, not full match)
    ("matches", {"ticket.summary": {"matches": "(?i)leaver|offboard"}}, True),
    ("matches-case-sensitive", {"ticket.summary": {"matches": "leaver"}}, False),
    ("matches-anchored", {"ticket.summary": {"matches": "^Leaver:"}}, True),
    ("matches-null", {"ticket.contact.email": {"matches": ".*"}}, False),
    # exists
    ("exists", {"ticket.contact.name": {"exists": True}}, True),
    ("exists-null-is-absent", {"ticket.contact.email": {"exists": True}}, False),
    ("exists-false", {"ticket.nothing": {"exists": False}}, True),
    ("exists-false-present", {"ticket.type": {"exists": False}}, False),
    # ordering: numbers, numeric strings, ISO dates (as text or YAML dates)
    ("gt", {"ticket.priority": {"gt": 2}}, True),
    ("gt-equal", {"ticket.priority": {"gt": 3}}, False),
    ("gte", {"ticket.priority": {"gte": 3}}, True),
    ("lt", {"ticket.priority": {"lt": 4}}, True),
    ("lte", {"ticket.priority": {"lte": 2}}, False),
    ("range", {"ticket.priority": {"gte": 1, "lt": 5}}, True),
    ("range-out", {"ticket.priority": {"gte": 4, "lt": 5}}, False),
    ("numeric-string", {"ticket.hours": {"gt": 2}}, True),
    ("date-string-gte", {"ticket.due": {"gte": "2024-05-01"}}, True),
    ("date-string-lt", {"ticket.due": {"lt": "2024-05-01"}}, False),
    ("date-yaml", {"ticket.due": {"lte": date(2024, 5, 31)}}, True),
    ("date-yaml-after", {"ticket.due": {"gt": date(2024, 5, 31)}}, False),
    ("compare-incomparable", {"ticket.type": {"gt": 3}}, False),
    # combinators
    ("any", {"any": [{"ticket.type": "Starter"}, {"ticket.board": "Service Desk"}]}, True),
    ("any-none", {"any": [{"ticket.type": "Starter"}, {"ticket.board": "HR"}]}, False),
    ("all", {"all": [{"ticket.type": "Leaver"}, {"ticket.board": "Service Desk"}]}, True),
    ("all-one-fails", {"all": [{"ticket.type": "Leaver"}, {"ticket.board": "HR"}]}, False),
    ("not", {"not": {"ticket.type": "Starter"}}, True),
    ("not-holds", {"not": {"ticket.type": "Leaver"}}, False),
    ("nested", {"ticket.board": "Service Desk",
                "any": [{"not": {"ticket.type": "Leaver"}}, {"ticket.priority": {"lt": 5}}]}, True),
    ("several-keys-all-hold", {"ticket.type": "Leaver", "ticket.board": "HR"}, False),
    # missing fields fail every test except ne / not_in / exists: false
    ("missing-eq", {"ticket.missing": "x"}, False),
    ("missing-ne", {"ticket.missing": {"ne": "x"}}, True),
    ("missing-in", {"ticket.missing": {"in": ["x"]}}, False),
    ("missing-not_in", {"ticket.missing": {"not_in": ["x"]}}, True),
    ("missing-matches", {"ticket.missing": {"matches": ".*"}}, False),
    ("missing-gt", {"ticket.missing": {"gt": 0}}, False),
    ("missing-parent", {"company.name": "Acme"}, False),
    ("missing-through-scalar", {"ticket.type.name": "Leaver"}, False),
    # event envelope fields are visible too
    ("envelope-client", {"client.name": "acme ltd", "vendor": "connectwise"}, True),
    ("envelope-kind", {"kind": "ticket.created", "source": "cw-prod"}, True),
]


@pytest.mark.parametrize(("condition", "expected"), [(c, e) for _, c, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_operator(condition: dict[str, Any], expected: bool) -> None:
    """A rule fires exactly when its `if` condition holds for the event."""
    ruleset = build_rules(yaml.safe_dump({"rules": [{
        "id": "r", "on": "ticket.created", "if": condition,
        "comment": {"text": "hit"},
    }]}))
    event = make_event(data={"ticket": TICKET})
    result = explain(ruleset, event, trace=True)
    assert bool(result.matched) is expected
    assert bool(result.near_misses) is not expected
    # the pipeline's indexed pass agrees on the match
    assert explain(ruleset, event).matched == result.matched


def test_no_condition_always_matches() -> None:
    """A rule without `if` matches every event of its kind and source."""
    ruleset = build_rules("""
        rules:
          - id: r
            on: ticket.created
            comment: {text: hit}
    """)
    assert explain(ruleset, make_event()).matched


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"ticket.type": "Starter"}, "ticket.type == 'Starter' (got 'Leaver')"),
        ({"ticket.missing": "x"}, "ticket.missing == 'x' (got missing)"),
        ({"ticket.board": {"in": ["HR"]}}, "ticket.board in ['HR'] (got 'Service Desk')"),
        ({"ticket.type": "Leaver", "ticket.priority": {"gt": 5}}, "ticket.priority > 5 (got 3)"),
        ({"any": [{"ticket.type": "A"}, {"ticket.type": "B"}]},
         "none of: ticket.type == 'A' (got 'Leaver'); ticket.type == 'B' (got 'Leaver')"),
    ],
)
def test_near_miss_names_first_failing_condition(condition: dict[str, Any], reason: str) -> None:
    """A dry run (trace) reports, for a rule that failed its `if`, the first part that failed."""
    ruleset = build_rules(yaml.safe_dump({"rules": [{
        "id": "r", "on": "ticket.created", "if": condition, "comment": {"text": "x"},
    }]}))
    result = explain(ruleset, make_event(data={"ticket": TICKET}), trace=True)
    assert [(m.rule_id, m.reason) for m in result.near_misses] == [("r", reason)]

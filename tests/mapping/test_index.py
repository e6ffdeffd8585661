"""The RuleSet index: an event only examines rules for its kind and its vendor/source."""

from __future__ import annotations

from itertools import cycle, islice

import pytest

from hub.core.conditions import parse_condition
from hub.core.events import EventKind
from hub.core.mapping.engine import ANY_SOURCE, CompiledRule, RuleSet, explain
from hub.core.mapping.schema import Rule

from .conftest import make_event

SOURCES = ["connectwise", "autotask", "halopsa", "datto-rmm", "ninjaone", "cw-prod", None]


def _rule(i: int, kind: EventKind, source: str | None) -> CompiledRule:
    data = {"id": f"r{i}", "on": kind.value, "if": {"ticket.n": {"gte": i % 7}},
            "comment": {"text": "x"}}
    if source:
        data["from"] = source
    rule = Rule.model_validate(data)
    return CompiledRule(rule=rule, file="m.yaml", line=i, index=i,
                        condition=parse_condition(rule.if_))


@pytest.fixture(scope="module")
def big() -> RuleSet:
    """5,000 rules spread round-robin over every kind and seven sources (one is 'any')."""
    combos = [(k, s) for k in EventKind for s in SOURCES]
    specs = islice(cycle(combos), 5000)
    return RuleSet([_rule(i, k, s) for i, (k, s) in enumerate(specs)])


def _expected(ruleset: RuleSet, kind: EventKind, names: set[str]) -> list[str]:
    """Rules a brute-force scan would consider, in rank order."""
    return [
        r.id for r in ruleset.rules
        if kind in r.rule.on and (r.rule.from_ is None or set(r.rule.from_) & names)
    ]


def test_only_the_events_buckets_are_examined(big: RuleSet) -> None:
    """Of 5,000 rules, an event looks at its kind's vendor, source and wildcard buckets only."""
    event = make_event("ticket.created", {"ticket": {"n": 10}}, vendor="connectwise",
                       source="cw-prod")
    expected = _expected(big, EventKind.TICKET_CREATED, {"connectwise", "cw-prod"})
    result = explain(big, event)
    assert result.examined == len(expected) < len(big) / 20
    assert [r.id for r in big.candidates(event)] == expected
    assert [m.rule_id for m in result.matched] == expected  # n=10 passes every gte


def test_bucket_structure(big: RuleSet) -> None:
    """Buckets are keyed by kind then by source name; rules without `from` sit under '*'."""
    event = make_event("alert.resolved", vendor="datto-rmm", source="rmm-eu")
    buckets = big.buckets(event)
    assert len(buckets) == 2  # 'datto-rmm' and '*' ('rmm-eu' has no rules)
    by_vendor, wildcard = buckets
    assert all(r.rule.from_ == ["datto-rmm"] for r in by_vendor)
    assert all(r.rule.from_ is None for r in wildcard)
    assert all(EventKind.ALERT_RESOLVED in r.rule.on for b in buckets for r in b)
    assert ANY_SOURCE == "*"


def test_unknown_source_sees_only_wildcard_rules(big: RuleSet) -> None:
    """An event from a source no rule names only examines the rules without `from`."""
    event = make_event("device.added", vendor="ncentral", source="nc-1")
    expected = _expected(big, EventKind.DEVICE_ADDED, set())
    assert explain(big, event).examined == len(expected)
    assert all(big.get(rid).rule.from_ is None for rid in expected)


def test_candidates_keep_priority_order_across_buckets() -> None:
    """Merging buckets keeps the global order: priority first, then file order."""
    specs = [("a", "connectwise", 0), ("b", None, 5), ("c", "cw-prod", 5), ("d", None, 0),
             ("e", "connectwise", 9)]
    rules = []
    for i, (rid, source, priority) in enumerate(specs):
        data = {"id": rid, "on": "ticket.created", "priority": priority, "comment": {"text": "x"}}
        if source:
            data["from"] = source
        rule = Rule.model_validate(data)
        rules.append(CompiledRule(rule=rule, file="m.yaml", line=i, index=i,
                                  condition=parse_condition(None)))
    ruleset = RuleSet(rules)
    event = make_event(vendor="connectwise", source="cw-prod")
    assert [r.id for r in ruleset.candidates(event)] == ["e", "b", "c", "a", "d"]


def test_ruleset_is_immutable(big: RuleSet) -> None:
    """A RuleSet cannot be changed after it is built (it is shared between threads)."""
    with pytest.raises(AttributeError):
        big.rules = ()  # type: ignore[misc]
    assert len(big.digest) == 64


def test_duplicate_ids_are_refused() -> None:
    """RuleSet refuses two rules with one id (the loader reports it with file and line)."""
    rule = _rule(1, EventKind.TICKET_CREATED, None)
    with pytest.raises(ValueError, match="duplicate rule ids"):
        RuleSet([rule, rule])

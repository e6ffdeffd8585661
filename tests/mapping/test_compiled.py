"""Compiled conditions and the value index give exactly the interpreter's answers.

Property-style: seeded generators build thousands of random conditions, contexts, rules
and events; every one is checked against the reference semantics (``conditions.evaluate``
and ``first_failure`` over every rule of the event's kind and source, as the engine did
before it was compiled and indexed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hub.core.conditions import (
    MISSING,
    _equal,
    compile_condition,
    compile_explainer,
    equality_key,
    evaluate,
    first_failure,
    parse_condition,
    path_getter,
)
from hub.core.events import ClientRef, Event, EventKind, SubjectRef, lookup
from hub.core.mapping.engine import (
    CompiledRule,
    NearMiss,
    RuleError,
    RuleMatch,
    RuleSet,
    build_action,
    explain,
    source_key,
)
from hub.core.mapping.engine import (
    evaluate as evaluate_rules,
)
from hub.core.mapping.schema import Rule
from hub.core.mapping.templates import TemplateRenderError, compile_template
from hub.errors import MappingError

PATHS = ["ticket.type", "ticket.board", "ticket.priority", "ticket.summary", "ticket.due",
         "ticket.contact.name", "ticket.tags", "ticket.closed", "client.key", "vendor",
         "ticket.missing", "ticket.type.name", "deep.a.b.c"]
TEXT = ["Leaver", "leaver", "LEAVER", "Starter", "Service Desk", "service desk", "HR", "",
        "2024-05-31", "2024-05-31T08:00:00+00:00", "3", "2.5", "x", "ǅ", "Straße", "STRASSE"]
SCALARS: list[Any] = [*TEXT, 0, 1, 3, 2.5, -1, True, False, None,
                      date(2024, 5, 31), datetime(2024, 5, 31, 8, 0, tzinfo=UTC)]
PATTERNS = ["(?i)leaver", "^Lea", "desk$", r"\d", "ß", ".*", "(?i)straße"]
SOURCES = ["connectwise", "cw-prod", "datto_rmm", "Datto-RMM", "autotask"]
KINDS = [EventKind.TICKET_CREATED, EventKind.TICKET_UPDATED, EventKind.ALERT_RAISED]


def random_test(rng: random.Random) -> dict[str, Any]:
    """One `path: test` entry with a random operator and operand."""
    path = rng.choice(PATHS)
    op = rng.choice(["eq", "eq", "eq", "in", "in", "ne", "not_in", "matches", "exists",
                     "gt", "gte", "lt", "lte", "implicit"])
    if op == "implicit":
        return {path: rng.choice(SCALARS)}
    if op in ("in", "not_in"):
        return {path: {op: rng.sample(SCALARS, rng.randint(1, 4))}}
    if op == "matches":
        return {path: {op: rng.choice(PATTERNS)}}
    if op == "exists":
        return {path: {op: rng.choice([True, False])}}
    if op in ("gt", "gte", "lt", "lte"):
        operand = rng.choice([0, 1, 3, 2.5, "2024-05-01", "b", date(2024, 5, 31)])
        return {path: {op: operand}}
    return {path: {op: rng.choice(SCALARS)}}


def random_condition(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random condition mapping: several tests, maybe any / all / not below."""
    spec: dict[str, Any] = {}
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if depth < 3 and roll < 0.12:
            spec["any"] = [random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        elif depth < 3 and roll < 0.2:
            spec["all"] = [random_condition(rng, depth + 1) for _ in range(rng.randint(1, 2))]
        elif depth < 3 and roll < 0.27:
            spec["not"] = random_condition(rng, depth + 1)
        else:
            spec.update(random_test(rng))
    return spec


def random_value(rng: random.Random) -> Any:
    """A context value: scalars of every type, lists, nested dicts."""
    roll = rng.random()
    if roll < 0.1:
        return rng.sample(SCALARS, 2)
    if roll < 0.15:
        return {"name": rng.choice(TEXT)}
    return rng.choice(SCALARS)


def random_context(rng: random.Random) -> dict[str, Any]:
    """A context where each known path is present, absent or of the wrong shape."""
    ctx: dict[str, Any] = {}
    for path in PATHS:
        if rng.random() < 0.3:
            continue
        *parents, leaf = path.split(".")
        node = ctx
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = random_value(rng)
    return ctx


def conditions_and_contexts(n: int, seed: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` (condition spec, context) pairs from one seed."""
    rng = random.Random(seed)
    for _ in range(n):
        yield random_condition(rng), random_context(rng)


@pytest.mark.parametrize("seed", range(4))
def test_compiled_condition_equals_the_interpreter(seed: int) -> None:
    """compile_condition gives evaluate's verdict for 2,500 random conditions and contexts."""
    for spec, ctx in conditions_and_contexts(2500, seed):
        cond = parse_condition(spec)
        assert compile_condition(cond)(ctx) is evaluate(cond, ctx), (spec, ctx)


@pytest.mark.parametrize("seed", range(4))
def test_compiled_explainer_equals_first_failure(seed: int) -> None:
    """compile_explainer gives first_failure's reason text (None when the condition holds)."""
    for spec, ctx in conditions_and_contexts(2500, 100 + seed):
        cond = parse_condition(spec)
        assert compile_explainer(cond)(ctx) == first_failure(cond, ctx), (spec, ctx)


def test_path_getter_resolves_like_lookup() -> None:
    """A compiled path finds what lookup finds, and MISSING where lookup finds nothing."""
    rng = random.Random(5)
    for _ in range(2000):
        ctx = random_context(rng)
        for path in [*PATHS, "ticket", "ticket.contact", "a"]:
            found, value = lookup(ctx, path)
            got = path_getter(path)(ctx)
            assert (got is not MISSING) is found and (not found or got is value), (path, ctx)
    assert path_getter("a.b")(["not", "a", "dict"]) is MISSING


def test_equal_values_have_equal_index_keys() -> None:
    """Whenever eq holds between two values, their index keys are equal (the index is safe)."""
    values = [*SCALARS, "leaver", "Leaver", "ǆ", "2024-05-31t08:00:00+00:00", 1.0, 0.0, -0.0]
    for actual in values:
        for expected in values:
            if _equal(actual, expected):
                assert equality_key(actual) == equality_key(expected), (actual, expected)


# --- rules: the indexed, compiled engine against a brute-force reference ----------------


def _rule(i: int, rng: random.Random) -> CompiledRule:
    condition = random_condition(rng)
    if rng.random() < 0.5:  # several eq / in tests on few values: nested index levels
        condition = {"ticket.board": rng.choice(["HR", "service desk", 3]),
                     "ticket.type": {"in": rng.sample(TEXT[:5], 2)},
                     "client.key": rng.choice([*TEXT[:3], None]), **condition}
    data: dict[str, Any] = {
        "id": f"r{i}", "on": rng.choice(KINDS).value, "if": condition,
        "priority": rng.choice([0, 0, 0, 5, 10]), "stop": rng.random() < 0.05,
        "enabled": rng.random() > 0.03,
    }
    if rng.random() < 0.7:
        data["from"] = rng.sample(SOURCES, rng.randint(1, 2))
    text = rng.choice(["{{ ticket.type | default('-') }} seen", "plain text"])
    if rng.random() < 0.02:
        text = "{{ ticket.nothing.here }}"  # a render error whenever the rule matches
    data["comment"] = {"text": text}
    rule = Rule.model_validate(data)
    return CompiledRule(rule=rule, file="gen.yaml", line=i + 1, index=i,
                        condition=parse_condition(rule.if_),
                        templates={"comment.text": compile_template(text, "comment.text")})


def _event(i: int, rng: random.Random) -> Event:
    source = rng.choice(SOURCES)
    return Event(source=source, vendor=rng.choice(SOURCES), kind=rng.choice(KINDS),
                 dedupe_key=f"e{i}", occurred_at=datetime(2024, 5, 6, tzinfo=UTC),
                 client=ClientRef(id="ACME", name="Acme"), data=random_context(rng))


def _reference(rules: RuleSet, event: Event) -> tuple[list[RuleMatch], list[RuleError],
                                                      list[NearMiss], str | None, int]:
    """The engine before compilation and value indexing: every rule of kind and source."""
    ctx = event.context()
    names = {source_key(event.vendor), source_key(event.source)}
    matched, errors, near = [], [], []
    examined, stopped = 0, None
    for compiled in rules.rules:  # rank order
        rule = compiled.rule
        if not rule.enabled or event.kind not in rule.on:
            continue
        if rule.from_ is not None and not names & {source_key(n) for n in rule.from_}:
            continue
        examined += 1
        if not evaluate(compiled.condition, ctx):
            near.append(NearMiss(compiled.id, first_failure(compiled.condition, ctx) or ""))
            continue
        try:
            matched.append(RuleMatch(compiled.id, (build_action(compiled, event, ctx),)))
        except TemplateRenderError as exc:
            errors.append(RuleError(compiled.id, str(exc)))
        if rule.stop:
            stopped = compiled.id
            break
    return matched, errors, near, stopped, examined


@pytest.fixture(scope="module")
def generated() -> tuple[RuleSet, list[Event]]:
    """600 random rules over three kinds and five sources, and 400 random events."""
    rng = random.Random(42)
    return RuleSet([_rule(i, rng) for i in range(600)]), [_event(i, rng) for i in range(400)]


def test_trace_equals_the_reference(generated: tuple[RuleSet, list[Event]]) -> None:
    """explain(trace=True) is the old engine exactly: matches, errors, near misses, count."""
    rules, events = generated
    for event in events:
        matched, errors, near, stopped, examined = _reference(rules, event)
        got = explain(rules, event, trace=True)
        assert (got.matched, got.errors, got.near_misses, got.stopped_by, got.examined) == (
            matched, errors, near, stopped, examined)


def test_indexed_pass_keeps_every_outcome(generated: tuple[RuleSet, list[Event]]) -> None:
    """The pipeline's explain gives the same matches, errors and stop; its near misses are
    the reference's, for the rules it checked, with the same reasons and order."""
    rules, events = generated
    total_checked = total_reference = 0
    for event in events:
        matched, errors, near, stopped, examined = _reference(rules, event)
        got = explain(rules, event)
        assert (got.matched, got.errors, got.stopped_by) == (matched, errors, stopped)
        reasons = dict(near)
        assert all(reasons[m.rule_id] == m.reason for m in got.near_misses)
        order = [m.rule_id for m in near]
        assert [m.rule_id for m in got.near_misses] == [r for r in order if r in
                                                        {m.rule_id for m in got.near_misses}]
        total_checked += got.examined
        total_reference += examined
    assert total_checked < total_reference  # the index did skip rules


def test_evaluate_equals_the_reference(generated: tuple[RuleSet, list[Event]]) -> None:
    """evaluate() returns the reference's actions, or raises for its first render error."""
    rules, events = generated
    raised = 0
    for event in events:
        matched, errors, _near, _stopped, _examined = _reference(rules, event)
        if errors:
            raised += 1
            with pytest.raises(MappingError, match=errors[0].rule_id):
                evaluate_rules(rules, event)
        else:
            assert evaluate_rules(rules, event) == [a for m in matched for a in m.actions]
    assert 0 < raised < len(events)


def _depth(index: Any) -> int:
    return max((1 + _depth(sub) for p in index.postings for sub in p.by_key.values()),
               default=0)


def test_a_rule_the_index_skips_could_never_match(
    generated: tuple[RuleSet, list[Event]],
) -> None:
    """Every candidate of the kind and source that select() leaves out fails its condition."""
    rules, events = generated
    assert max(_depth(i) for by in rules._index.values() for i in by.values()) >= 3
    skipped = 0
    for event in events:
        ctx = event.context()
        chosen = {r.id for r in rules.select(event, ctx)}
        for compiled in rules.candidates(event):
            if compiled.id not in chosen:
                skipped += 1
                assert not evaluate(compiled.condition, ctx), (compiled.rule.if_, ctx)
    assert skipped > 1000


def _ruleset(*conditions: dict[str, Any] | None) -> RuleSet:
    rules = []
    for i, cond in enumerate(conditions):
        rule = Rule.model_validate({"id": f"r{i}", "on": "ticket.created", "if": cond,
                                    "comment": {"text": "x"}})
        rules.append(CompiledRule(rule=rule, file="m.yaml", line=i, index=i,
                                  condition=parse_condition(rule.if_)))
    return RuleSet(rules)


def _selected(rules: RuleSet, data: dict[str, Any]) -> list[str]:
    event = Event(source="cw-prod", vendor="connectwise", kind=EventKind.TICKET_CREATED,
                  dedupe_key="k", occurred_at=datetime(2024, 5, 6, tzinfo=UTC), data=data)
    return [r.id for r in rules.select(event, event.context())]


def test_index_picks_the_most_selective_test() -> None:
    """Per-client rules that all test the same board are indexed by client, not board."""
    rules = _ruleset(
        {"ticket.board": "Service Desk", "ticket.client": "acme"},
        {"ticket.board": "Service Desk", "ticket.client": "globex"},
        {"ticket.board": "Service Desk", "ticket.client": {"in": ["initech", "ACME"]}},
        {"ticket.summary": {"matches": "x"}},
    )
    assert _selected(rules, {"ticket": {"board": "service desk", "client": "Acme"}}) == [
        "r0", "r2", "r3"]
    assert _selected(rules, {"ticket": {"board": "HR", "client": "globex"}}) == ["r1", "r3"]


def test_index_on_missing_and_unhashable_values() -> None:
    """A missing field or a list value selects no indexed rule; unindexed rules stay."""
    rules = _ruleset({"ticket.type": "Leaver"}, {"ticket.type": {"ne": "Leaver"}},
                     {"ticket.tags": ["a", "b"]}, None)
    assert _selected(rules, {}) == ["r1", "r2", "r3"]
    assert _selected(rules, {"ticket": {"type": ["Leaver"], "tags": ["a", "b"]}}) == [
        "r1", "r2", "r3"]
    assert _selected(rules, {"ticket": {"type": "LEAVER"}}) == ["r0", "r1", "r2", "r3"]


def test_index_keys_follow_eq_across_types() -> None:
    """Dates match their ISO text, 1 matches true and 1.0, text matches in any case."""
    rules = _ruleset({"ticket.due": date(2024, 5, 31)}, {"ticket.flag": True},
                     {"ticket.name": {"in": ["STRASSE", 3]}})
    assert _selected(rules, {"ticket": {"due": "2024-05-31"}}) == ["r0"]
    assert _selected(rules, {"ticket": {"flag": 1.0}}) == ["r1"]
    assert _selected(rules, {"ticket": {"name": "strasse"}}) == ["r2"]
    assert _selected(rules, {"ticket": {"name": 3.0}}) == ["r2"]
    assert _selected(rules, {"ticket": {"name": "3"}}) == []


def test_event_context_subject_is_its_model_dump() -> None:
    """The context's subject is exactly ``subject.model_dump()`` (built the cheaper way)."""
    for subject in (SubjectRef(type="ticket", id="7"),
                    SubjectRef(type="alert", id="a-1", source="rmm-eu")):
        event = Event(source="cw", vendor="connectwise", kind=EventKind.TICKET_CREATED,
                      dedupe_key="k", occurred_at=datetime(2024, 5, 6, tzinfo=UTC),
                      subject=subject)
        assert event.context()["subject"] == subject.model_dump()
        assert type(event.context()["subject"]) is dict


def test_long_posting_lists_are_indexed_again() -> None:
    """Rules sharing one key are narrowed by their next eq/in test, keeping rank order."""
    # Given 12 Service Desk rules by type, one by board alone, and one without any eq test
    specs: list[dict[str, Any] | None] = [
        {"ticket.board": "Service Desk", "ticket.type": {"in": [f"T{i}", "shared"]}}
        for i in range(12)
    ]
    rules = _ruleset(*specs, {"ticket.board": "Service Desk"}, {"ticket.n": {"gt": 1}})
    # When an event of type T3 (or the shared type) arrives on that board
    t3 = _selected(rules, {"ticket": {"board": "service desk", "type": "t3"}})
    shared = _selected(rules, {"ticket": {"board": "Service Desk", "type": "Shared"}})
    # Then only the rules that can match are checked, in rank order
    assert t3 == ["r3", "r12", "r13"]
    assert shared == [f"r{i}" for i in range(14)]
    assert _selected(rules, {"ticket": {"board": "HR", "type": "T3"}}) == ["r13"]

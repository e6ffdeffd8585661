"""The pure mapping engine: an indexed, immutable rule set and ``evaluate(rules, event)``.

No I/O here. The loader builds a :class:`RuleSet` once; every event then looks at the
rules indexed under its kind and its vendor / source name (plus rules without ``from``),
in priority order, and each matching rule yields one typed action.

Inside each kind/source bucket rules are indexed again by one of the ``eq`` / ``in``
tests their condition must pass (``client.key: acme``, ``ticket.board: {in: [...]}``):
the event's value at that path picks the rules that can match, and only those (plus the
rules with no such test) have their compiled condition checked. A rule the index skips
fails that test, so it could never have matched: matches, errors, ``stop`` and order are
the same as checking every rule.

Near misses: :func:`explain` reports the rules whose condition was checked and failed
(those the index let through); ``explain(..., trace=True)`` checks every rule of the
event's kind and source, as a dry run wants, and gives every failing rule's reason.

Errors: a rule whose condition matches but whose templates cannot be rendered for this
event (a field the template reads is missing) is reported by :func:`explain` in
``Evaluation.errors``. :func:`evaluate` is all-or-nothing: it raises ``MappingError`` for
the first such rule and returns no actions, so an event is either applied whole or
marked failed and replayed whole once the mapping is fixed.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from operator import attrgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from hub.core.conditions import (
    MISSING,
    Check,
    Condition,
    Explainer,
    Getter,
    compile_condition,
    compile_explainer,
    equality_conjuncts,
    equality_key,
    path_getter,
)
from hub.core.events import Event, EventKind
from hub.core.mapping.actions import Action, Cancel, Comment, Launch, Note, Notify, Tick
from hub.core.mapping.schema import Rule
from hub.core.mapping.templates import Template, TemplateRenderError, render
from hub.errors import MappingError

ANY_SOURCE = "*"


def source_key(name: str) -> str:
    """How ``from`` names and event vendors/sources compare: case-insensitive, ``_`` == ``-``."""
    return name.strip().casefold().replace("_", "-")


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule with its condition and templates compiled (built by the loader).

    Attributes:
        rule: the rule as written.
        file: the mapping file it came from; ``line`` its first line there.
        index: its position in that file's ``rules`` list.
        condition: the compiled ``if``.
        templates: compiled templates by rule field (``launch.inputs.leaver_name``).
        rank: position in evaluation order (priority, then file order); set by RuleSet.
        check: ``condition`` compiled (:func:`~hub.core.conditions.compile_condition`);
            built from ``condition`` when not given.
        explainer: ``condition`` compiled to give its first failing part
            (:func:`~hub.core.conditions.compile_explainer`); built when not given.
    """

    rule: Rule
    file: str
    line: int | None
    index: int
    condition: Condition
    templates: Mapping[str, Template] = field(default_factory=dict)
    rank: int = 0
    check: Check | None = field(default=None, repr=False, compare=False)
    explainer: Explainer | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.check is None:
            object.__setattr__(self, "check", compile_condition(self.condition))
        if self.explainer is None:
            object.__setattr__(self, "explainer", compile_explainer(self.condition))

    def holds(self, ctx: dict[str, Any]) -> bool:
        """True when the rule's condition holds for an event context."""
        assert self.check is not None  # set by __post_init__
        return self.check(ctx)

    def why_not(self, ctx: dict[str, Any]) -> str | None:
        """None when the condition holds, else its first failing part (as a dry run shows)."""
        assert self.explainer is not None  # set by __post_init__
        return self.explainer(ctx)

    @property
    def id(self) -> str:
        """The rule id."""
        return self.rule.id


Bucket = tuple[CompiledRule, ...]
_by_rank = attrgetter("rank")


Conjuncts = list[tuple[str, frozenset[Hashable]]]
NEST_ABOVE = 4
"""A posting list longer than this is indexed again by another ``eq`` / ``in`` test."""


class _Postings(NamedTuple):
    """The rules of a bucket keyed by the value one path must have for them to match."""

    path: str
    get: Getter
    by_key: Mapping[Hashable, _ValueIndex]


@dataclass(frozen=True)
class _ValueIndex:
    """One kind/source bucket: its rules by rank, and the same rules indexed by value.

    Every rule is either under exactly one path of ``postings`` (once per key it
    accepts) or in ``rest`` (no ``eq`` / ``in`` test left to index on). A key's rules
    form an index of their own, on the tests not used yet, when there are more than
    ``NEST_ABOVE`` of them (per-client rules that also name a ticket type).
    """

    rules: Bucket
    postings: tuple[_Postings, ...]
    rest: Bucket

    @classmethod
    def build(cls, rules: Sequence[CompiledRule]) -> _ValueIndex:
        """Index each rule under its most selective ``eq`` / ``in`` test, level by level.

        Selective means: the fewest rules of this bucket share the keys it accepts, so a
        bucket of per-client rules that all also test ``ticket.board`` goes by client.
        """
        return cls._build([(r, equality_conjuncts(r.condition)) for r in rules], nested=False)

    @classmethod
    def _build(cls, entries: list[tuple[CompiledRule, Conjuncts]], *,
               nested: bool) -> _ValueIndex:
        rules = tuple(r for r, _ in entries)
        if (nested and len(entries) <= NEST_ABOVE) or not any(c for _, c in entries):
            return cls(rules=rules, postings=(), rest=rules)
        shared: Counter[tuple[str, Hashable]] = Counter(
            (path, key) for _, conjuncts in entries for path, keys in conjuncts for key in keys
        )
        by_path: dict[str, dict[Hashable, list[tuple[CompiledRule, Conjuncts]]]] = {}
        rest: list[CompiledRule] = []
        for compiled, conjuncts in entries:
            if not conjuncts:
                rest.append(compiled)
                continue
            path, keys = min(conjuncts, key=lambda c: sum(shared[(c[0], k)] for k in c[1]))
            left = [c for c in conjuncts if c[0] != path]  # the next level's options
            postings = by_path.setdefault(path, {})
            for key in keys:
                postings.setdefault(key, []).append((compiled, left))
        return cls(
            rules=rules,
            postings=tuple(
                _Postings(path, path_getter(path), MappingProxyType(
                    {k: cls._build(v, nested=True) for k, v in keyed.items()}))
                for path, keyed in by_path.items()
            ),
            rest=tuple(rest),
        )

    def select(self, ctx: dict[str, Any]) -> Sequence[CompiledRule]:
        """The rules of this bucket that can match ``ctx``, by rank."""
        if not self.postings:
            return self.rest
        found: list[Sequence[CompiledRule]] = [self.rest] if self.rest else []
        for postings in self.postings:
            value = postings.get(ctx)
            if value is MISSING:
                continue
            try:
                hit = postings.by_key.get(equality_key(value))
            except TypeError:  # an unhashable value (a list) equals no indexed scalar
                continue
            if hit is not None:
                rules = hit.select(ctx)
                if rules:
                    found.append(rules)
        if len(found) == 1:
            return found[0]
        return sorted(chain.from_iterable(found), key=_by_rank)


class RuleSet:
    """An immutable, indexed set of rules: kind → source name (or ``*``) → rules by rank.

    Build it once (``RuleSet(compiled_rules)``) and share it between threads.
    """

    __slots__ = ("_by_id", "_digest", "_index", "files", "rules")

    rules: tuple[CompiledRule, ...]
    files: tuple[str, ...]
    _index: Mapping[EventKind, Mapping[str, _ValueIndex]]
    _by_id: Mapping[str, CompiledRule]
    _digest: str

    def __init__(self, rules: Iterable[CompiledRule] = (), files: Sequence[str] = ()) -> None:
        """Rank and index rules given in file order.

        Args:
            rules: compiled rules, in file order (files sorted, rules as written).
            files: the files they were loaded from (for reporting).

        Raises:
            ValueError: two rules share an id (the loader reports this with file and line).
        """
        in_file_order = list(rules)
        ids = [r.id for r in in_file_order]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate rule ids")
        # sorted() is stable: equal priorities keep file order.
        ranked = sorted(in_file_order, key=lambda r: -r.rule.priority)
        ranked = [replace(r, rank=i) for i, r in enumerate(ranked)]
        index: dict[EventKind, dict[str, list[CompiledRule]]] = {}
        for compiled in ranked:
            if not compiled.rule.enabled or compiled.rule.mode == "draft":
                continue  # checked when loaded, never evaluated
            names = [source_key(n) for n in compiled.rule.from_ or [ANY_SOURCE]]
            for kind in dict.fromkeys(compiled.rule.on):
                by_source = index.setdefault(kind, {})
                for name in dict.fromkeys(names):
                    by_source.setdefault(name, []).append(compiled)
        object.__setattr__(self, "rules", tuple(ranked))
        object.__setattr__(self, "_by_id", MappingProxyType({r.id: r for r in ranked}))
        object.__setattr__(self, "files", tuple(files))
        object.__setattr__(
            self,
            "_index",
            MappingProxyType(
                {
                    k: MappingProxyType({s: _ValueIndex.build(b) for s, b in v.items()})
                    for k, v in index.items()
                }
            ),
        )
        canonical = json.dumps(
            [r.rule.model_dump(mode="json", by_alias=True) for r in in_file_order],
            sort_keys=True,
        )
        object.__setattr__(self, "_digest", hashlib.sha256(canonical.encode()).hexdigest())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("RuleSet is immutable")

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules in {len(self.files)} files)"

    @property
    def digest(self) -> str:
        """SHA-256 of the rules as loaded; names the rule set version in logs and audit."""
        return self._digest

    def get(self, rule_id: str) -> CompiledRule:
        """The rule with this id (KeyError when absent)."""
        return self._by_id[rule_id]

    def buckets(self, event: Event) -> list[Bucket]:
        """The index buckets an event looks at: its vendor, its source and ``*``."""
        return [b.rules for b in self._value_indexes(event)]

    def _value_indexes(self, event: Event) -> list[_ValueIndex]:
        by_source = self._index.get(event.kind)
        if not by_source:
            return []
        names = dict.fromkeys((source_key(event.vendor), source_key(event.source), ANY_SOURCE))
        return [by_source[n] for n in names if n in by_source]

    def candidates(self, event: Event) -> Iterator[CompiledRule]:
        """Enabled rules for the event's kind and source, in evaluation order, once each."""
        return _merge([b.rules for b in self._value_indexes(event)])

    def select(self, event: Event, ctx: dict[str, Any]) -> Iterator[CompiledRule]:
        """The candidates that can match: those the value index does not rule out for ``ctx``.

        Args:
            event: the event (its kind, vendor and source pick the buckets).
            ctx: ``event.context()``, whose values the index looks up.
        """
        return _merge([b.select(ctx) for b in self._value_indexes(event)])


def _merge(buckets: Sequence[Sequence[CompiledRule]]) -> Iterator[CompiledRule]:
    """Rank-ordered buckets merged into rank order, each rule once."""
    if len(buckets) == 1:
        yield from buckets[0]
        return
    last = -1
    for compiled in heapq.merge(*buckets, key=_by_rank):
        if compiled.rank != last:  # a rule naming both vendor and source sits in two buckets
            last = compiled.rank
            yield compiled


class RuleMatch(NamedTuple):
    """A rule whose condition held, and the actions it produced."""

    rule_id: str
    actions: tuple[Action, ...]


class RuleError(NamedTuple):
    """A rule that matched but could not produce its action for this event."""

    rule_id: str
    message: str


class NearMiss(NamedTuple):
    """A rule for this kind and source whose condition failed, and the first failing part."""

    rule_id: str
    reason: str


@dataclass(frozen=True)
class Evaluation:
    """Everything a dry run wants to know about one event against a rule set."""

    matched: list[RuleMatch]
    errors: list[RuleError]
    near_misses: list[NearMiss]
    stopped_by: str | None = None
    examined: int = 0

    @property
    def actions(self) -> list[Action]:
        """The actions of every matched rule, in evaluation order."""
        return [a for m in self.matched for a in m.actions]


def explain(rules: RuleSet, event: Event, *, trace: bool = False) -> Evaluation:
    """Evaluate an event and report matches, render errors and near misses.

    Only the rules indexed under the event's kind and vendor / source / ``*`` are
    considered. A matching rule with ``stop: true`` ends the evaluation (even if its own
    templates failed: the event was meant for it).

    Args:
        rules: the rule set.
        event: the event.
        trace: False (the pipeline): the value index skips rules that cannot match, and
            ``near_misses`` / ``examined`` cover the rules whose condition was checked.
            True (dry runs): every rule of the kind and source is checked, and every one
            that failed is a near miss with its first failing part. ``matched``,
            ``errors`` and ``stopped_by`` are the same either way.
    """
    return _run(rules, event, with_reasons=True, every_rule=trace)


def evaluate(rules: RuleSet, event: Event) -> list[Action]:
    """The actions the rules take for an event (what the hub applies).

    Raises:
        MappingError: a matching rule cannot be rendered for this event; no actions are
            returned (all-or-nothing). The message names the rule and the missing field.
    """
    result = _run(rules, event, with_reasons=False, every_rule=False)
    if result.errors:
        first = result.errors[0]
        raise MappingError(f"rule '{first.rule_id}': {first.message}")
    return result.actions


def _run(rules: RuleSet, event: Event, *, with_reasons: bool, every_rule: bool) -> Evaluation:
    ctx = event.context()
    matched: list[RuleMatch] = []
    errors: list[RuleError] = []
    near: list[NearMiss] = []
    examined = 0
    stopped_by = None
    todo = rules.candidates(event) if every_rule else rules.select(event, ctx)
    for compiled in todo:
        examined += 1
        if with_reasons:
            # one pass gives the verdict and, when it fails, the reason
            reason = compiled.explainer(ctx)  # type: ignore[misc]  # set by __post_init__
            if reason is not None:
                near.append(NearMiss(compiled.id, reason))
                continue
        elif not compiled.check(ctx):  # type: ignore[misc]  # set by __post_init__
            continue
        try:
            matched.append(RuleMatch(compiled.id, (build_action(compiled, event, ctx),)))
        except TemplateRenderError as exc:
            errors.append(RuleError(compiled.id, str(exc)))
        if compiled.rule.stop and compiled.rule.mode != "shadow":  # a shadow changes nothing
            stopped_by = compiled.id
            break
    return Evaluation(matched, errors, near, stopped_by, examined)


def _text(compiled: CompiledRule, name: str, ctx: dict[str, Any]) -> str | None:
    template = compiled.templates.get(name)
    return None if template is None else render(template, ctx)


def build_action(compiled: CompiledRule, event: Event, ctx: dict[str, Any]) -> Action:
    """The action of a matching rule, its templates rendered against ``ctx``.

    Raises:
        TemplateRenderError: a template failed, or a launch has no client.
    """
    rule = compiled.rule
    # the hub client the pipeline resolved; a dry run of a bare vendor event shows the
    # vendor's id (the pipeline refuses that default for an unlinked client)
    client_id = (event.hub_client.key if event.hub_client
                 else event.client.id if event.client else None)
    if rule.launch is not None:
        spec = rule.launch
        inputs: dict[str, Any] = {}
        for name, value in spec.inputs.items():
            rendered = _text(compiled, f"launch.inputs.{name}", ctx)
            inputs[name] = rendered if rendered is not None else _constant(value)
        target = _text(compiled, "launch.client", ctx)
        if spec.client is not None and not target:
            raise TemplateRenderError("launch.client: rendered empty", field="launch.client")
        if target is None and client_id is None:
            raise TemplateRenderError(
                "launch.client: the event has no client; set launch.client",
                field="launch.client",
            )
        launch_client = target or client_id
        assert launch_client is not None  # both None raised above
        client_name = (event.hub_client.name if event.hub_client
                       else event.client.name if event.client else None
                       ) if launch_client == client_id else None
        return Launch(rule.id, spec.playbook, launch_client, client_name, inputs, str(spec.notes))
    if rule.tick is not None:
        evidence = _text(compiled, "tick.evidence", ctx)
        return Tick(
            rule.id,
            tuple(rule.tick.playbook),
            rule.tick.step,
            evidence if evidence is not None else default_evidence(event),
            client_id,
        )
    if rule.comment is not None:
        text = _text(compiled, "comment.text", ctx) or ""
        return Comment(rule.id, tuple(rule.comment.playbook or ()), text, client_id)
    if rule.notify is not None:
        return _notify(compiled, ctx, client_id)
    if rule.note is not None:
        return Note(rule.id, _text(compiled, "note.text", ctx) or "", client_id)
    assert rule.cancel is not None  # Rule guarantees exactly one action
    reason = _text(compiled, "cancel.reason", ctx) or ""
    return Cancel(rule.id, tuple(rule.cancel.playbook), reason, client_id)


def _notify(compiled: CompiledRule, ctx: dict[str, Any], client_id: str | None) -> Notify:
    """A notify action: its text, and a subject (given, else the text's first line)."""
    spec = compiled.rule.notify
    assert spec is not None
    text = _text(compiled, "notify.text", ctx) or ""
    subject = _text(compiled, "notify.subject", ctx) or text.strip().split("\n", 1)[0]
    return Notify(compiled.rule.id, tuple(spec.to), tuple(spec.channels or ()), spec.template,
                  subject[:200], text, client_id)


def _constant(value: Any) -> Any:
    # YAML dates become ISO strings so actions stay JSON-ready.
    return value.isoformat() if hasattr(value, "isoformat") else value


def default_evidence(event: Event) -> str:
    """Evidence used when a tick rule gives none: kind, subject and source of the event."""
    subject = f" {event.subject.type} {event.subject.id}" if event.subject else ""
    return f"{event.kind}{subject} from {event.source}"

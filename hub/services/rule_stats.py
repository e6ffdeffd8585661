"""Per-rule counts over stored event results: "why didn't my rule fire?".

Every processed inbox row keeps its trace (``result``: matched rules, errors, what shadow
rules would have done); this adds them up per rule for ``msphub mappings stats``, so the
numbers are the ones ``events show`` explains. Near misses come from a dry run of the
same events against the rules on disk (every rule of the kind and source, with the first
part of its condition that failed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.mapping.engine import NearMiss
from hub.store.models import InboxEvent

OTHERS = "…"  # the near-miss entry standing for "and N more" (not a rule)


@dataclass
class RuleStats:
    """What one rule did to the events of a window.

    Attributes:
        matched: events it matched and acted on (live rules).
        failed: events where it matched but could not apply (a render or action error).
        would_have: events a shadow rule would have acted on.
        near_misses: its failing condition parts, by how often they failed.
    """

    matched: int = 0
    failed: int = 0
    would_have: int = 0
    near_misses: Counter[str] = field(default_factory=Counter)

    def top(self, n: int = 3) -> list[tuple[str, int]]:
        """The ``n`` most frequent near-miss reasons with their counts."""
        return self.near_misses.most_common(n)


@dataclass
class Totals:
    """All rules over one window, and how many events it held."""

    events: int = 0
    rules: dict[str, RuleStats] = field(default_factory=dict)

    def of(self, rule_id: str) -> RuleStats:
        """This rule's counts (zero when it never came up)."""
        return self.rules.setdefault(rule_id, RuleStats())


def count(results: Iterable[Mapping[str, Any] | None], *,
          near_misses: bool = True) -> Totals:
    """Add up event traces per rule; each event counts at most once per rule and figure.

    Args:
        near_misses: also count the near misses the traces hold. The pipeline records only
            the rules whose condition it checked (its index skips the others), so a dry
            run against the rules (:func:`add_near_misses`) gives the fuller answer.
    """
    totals = Totals()
    for result in results:
        add_result(totals, result, near_misses=near_misses)
    return totals


def add_result(totals: Totals, result: Mapping[str, Any] | None, *,
               near_misses: bool = True) -> None:
    """Count one event's trace into ``totals``."""
    totals.events += 1
    if not result:
        return
    for rule_id in set(_ids(result.get("matched"))):
        totals.of(rule_id).matched += 1
    for rule_id in set(_ids(result.get("errors"), "rule_id")):
        totals.of(rule_id).failed += 1
    for shadow_id in {str(s.get("rule_id")) for s in _dicts(result.get("shadow"))
                      if "would" in s}:
        totals.of(shadow_id).would_have += 1
    if near_misses:
        for miss in _dicts(result.get("near_misses")):
            rule_id = str(miss.get("rule_id"))
            if rule_id != OTHERS:
                totals.of(rule_id).near_misses[str(miss.get("reason"))] += 1


def add_near_misses(totals: Totals, misses: Iterable[NearMiss]) -> None:
    """Count the near misses of one event's dry run (``explain(..., trace=True)``)."""
    for miss in misses:
        totals.of(miss.rule_id).near_misses[miss.reason] += 1


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping):
            yield item


def _ids(value: Any, key: str | None = None) -> Iterator[str]:
    for item in value if isinstance(value, list) else []:
        if key is None and isinstance(item, str):
            yield item
        elif key is not None and isinstance(item, Mapping) and item.get(key):
            yield str(item[key])


def stored_rows(session: Session, *, since: datetime, limit: int,
                chunk: int = 500) -> Iterator[InboxEvent]:
    """The newest ``limit`` events received since ``since``, read in chunks so a busy
    week does not load every row at once (pending ones have no trace yet)."""
    stmt = (select(InboxEvent).where(InboxEvent.received_at >= since)
            .order_by(InboxEvent.id.desc()).limit(limit).execution_options(yield_per=chunk))
    yield from session.execute(stmt).scalars()

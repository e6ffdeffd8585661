"""What changing the rules would change: replay events through two rule sets and diff (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from hub.core.events import Event
from hub.core.mapping.actions import Action, effect_key
from hub.core.mapping.engine import RuleSet, explain


@dataclass(frozen=True)
class ActionChange:
    """One action that appears (added) or disappears (removed) for one event.

    ``source`` + ``dedupe_key`` identify the event (unique in the inbox).
    """

    source: str
    dedupe_key: str
    kind: str
    action: Action


@dataclass(frozen=True)
class ReplayError:
    """A rule that matched an event but could not render under one of the rule sets."""

    source: str
    dedupe_key: str
    rule_id: str
    message: str


@dataclass(frozen=True)
class ReplayDiff:
    """The difference between two rule sets over a list of events.

    Actions are compared by effect (type, playbook(s), step, client, inputs, text),
    not by the rule that produced them: renaming or merging rules without changing
    what they do shows no difference.
    """

    # old_errors: render errors the new rules fix; new_errors: ones they introduce
    events: int = 0
    changed_events: int = 0
    added: tuple[ActionChange, ...] = ()
    removed: tuple[ActionChange, ...] = ()
    old_errors: tuple[ReplayError, ...] = ()
    new_errors: tuple[ReplayError, ...] = ()

    @property
    def unchanged(self) -> bool:
        """True when the new rules do exactly what the old ones did (and fail no more)."""
        return not (self.added or self.removed or self.new_errors)

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts by action type: ``{"launch": {"added": 1, "removed": 0}, ...}``."""
        out = {t: {"added": 0, "removed": 0} for t in ("launch", "tick", "comment", "cancel")}
        for change in self.added:
            out[change.action.type]["added"] += 1
        for change in self.removed:
            out[change.action.type]["removed"] += 1
        return out


def diff_actions(old: RuleSet, new: RuleSet, events: Iterable[Event]) -> ReplayDiff:
    """Evaluate each event under both rule sets and list the actions that differ.

    Args:
        old: the rules live now.
        new: the candidate rules (e.g. the working copy of mappings/).
        events: stored events to replay, e.g. the last 30 days of the inbox.

    Returns:
        Added and removed actions per event, and render errors under each rule set.
    """
    count = changed = 0
    added: list[ActionChange] = []
    removed: list[ActionChange] = []
    old_errors: list[ReplayError] = []
    new_errors: list[ReplayError] = []
    for event in events:
        count += 1
        before, after = explain(old, event), explain(new, event)
        was, now = _errors(event, before.errors), _errors(event, after.errors)
        # errors both rule sets make are no change: report only fixed and introduced ones
        old_errors.extend(e for e in was if e not in now)
        new_errors.extend(e for e in now if e not in was)
        plus = _minus(after.actions, before.actions)
        minus = _minus(before.actions, after.actions)
        if plus or minus:
            changed += 1
        added.extend(_change(event, a) for a in plus)
        removed.extend(_change(event, a) for a in minus)
    return ReplayDiff(
        events=count,
        changed_events=changed,
        added=tuple(added),
        removed=tuple(removed),
        old_errors=tuple(old_errors),
        new_errors=tuple(new_errors),
    )


def _minus(these: list[Action], those: list[Action]) -> list[Action]:
    """Actions of ``these`` not matched one-for-one by an equal effect in ``those``."""
    remaining = Counter(effect_key(a) for a in those)
    out: list[Action] = []
    for action in these:
        key = effect_key(action)
        if remaining[key]:
            remaining[key] -= 1
        else:
            out.append(action)
    return out


def _change(event: Event, action: Action) -> ActionChange:
    return ActionChange(event.source, event.dedupe_key, str(event.kind), action)


def _errors(event: Event, errors: Iterable[tuple[str, str]]) -> list[ReplayError]:
    return [ReplayError(event.source, event.dedupe_key, rid, msg) for rid, msg in errors]

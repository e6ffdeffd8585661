"""The pure checklist engine: transitions, order, conditions, skipping, facts and notes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.core.checklists import engine
from hub.core.checklists.engine import (
    Fact,
    NoteIntent,
    Outcome,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    TicketRef,
)
from hub.core.checklists.schema import Playbook, Step
from hub.errors import NotAllowed, NotFound, StepLocked

T0 = datetime(2025, 6, 13, 14, 0, tzinfo=UTC)
ROLES = {"service-desk": "alice", "engineer": "carol", "security": "erin"}

# start ─┬─ left ──┬─ join
#        └─ right ─┘
#        └─ extra (only when needs_extra)
DIAMOND = Playbook.model_validate(
    {
        "id": "diamond",
        "title": "Diamond",
        "version": 3,
        "inputs": [
            {"id": "needs_extra", "title": "Needs extra", "type": "boolean", "default": False},
        ],
        "steps": [
            {"id": "start", "title": "Start here", "role": "service-desk", "due": "4h"},
            {"id": "left", "title": "Left branch", "after": ["start"], "role": "engineer",
             "due": "8h"},
            {"id": "right", "title": "Right branch", "after": ["start"],
             "assignee": "frank", "skippable": "manager"},
            {"id": "join", "title": "Join both", "after": ["left", "right"],
             "role": "security", "skippable": False, "due": "24h"},
            {"id": "extra", "title": "Extra work", "after": ["start"],
             "when": {"needs_extra": True}, "role": "nobody-holds-this"},
        ],
    }
)

STRICT = Playbook.model_validate(
    {
        "id": "strict",
        "title": "Strict",
        "version": 1,
        "strict_order": True,
        "steps": [
            {"id": "one", "title": "One"},
            {"id": "two", "title": "Two"},
            {"id": "three", "title": "Three"},
        ],
    }
)

CONDITIONAL = Playbook.model_validate(
    {
        "id": "conditional",
        "title": "Conditional",
        "version": 1,
        "inputs": [
            {"id": "tier", "title": "Tier", "type": "choice",
             "choices": ["gold", "silver", "bronze"]},
            {"id": "onsite", "title": "On site", "type": "boolean"},
        ],
        "steps": [
            {"id": "always", "title": "Always"},
            {"id": "gold-only", "title": "Gold only", "when": {"tier": "gold"}},
            {"id": "gold-or-silver", "title": "Gold or silver",
             "when": {"tier": {"in": ["gold", "silver"]}}},
            {"id": "visit", "title": "Visit", "when": {"onsite": True}},
            {"id": "remote", "title": "Remote", "when": {"not": {"onsite": True}}},
        ],
    }
)


def _due(rule: str) -> datetime:
    """Test due rule: '<N>h' → N hours after T0 (the engine only calls it, never parses)."""
    return T0 + timedelta(hours=int(rule.removesuffix("h")))


def _assign(step: Step) -> str | None:
    return ROLES.get(step.role) if step.role else None


def launch(
    playbook: Playbook,
    inputs: Mapping[str, Any] | None = None,
    *,
    ticket: TicketRef | None = None,
    now: datetime = T0,
) -> Outcome:
    """Launch ``playbook`` with test assignment and due rules."""
    return engine.launch(playbook, run_id=7, client_id="ACME", inputs=dict(inputs or {}),
                         by="user:alice", now=now, assign=_assign, due=_due, ticket=ticket)


def statuses(run: RunState) -> dict[str, StepStatus]:
    return {s.step_id: s.status for s in run.steps}


def complete(playbook: Playbook, run: RunState, *step_ids: str,
             now: datetime = T0) -> RunState:
    """Complete steps one after the other, returning the final run."""
    for step_id in step_ids:
        run = engine.complete_step(playbook, run, step_id, by="user:bob", now=now).run
    return run


def diamond(**inputs: Any) -> RunState:
    return launch(DIAMOND, {"needs_extra": False, **inputs}).run


# ---------------------------------------------------------------------------- launch


def test_launch_opens_steps_without_prerequisites_and_locks_the_rest() -> None:
    """At launch only steps with no unfinished prerequisites are open."""
    run = diamond()
    assert statuses(run) == {
        "start": StepStatus.OPEN,
        "left": StepStatus.LOCKED,
        "right": StepStatus.LOCKED,
        "join": StepStatus.LOCKED,
        "extra": StepStatus.NOT_APPLICABLE,
    }
    assert run.status is RunStatus.ACTIVE
    assert (run.playbook_id, run.playbook_version, run.client_id) == ("diamond", 3, "ACME")
    assert [s.position for s in run.steps] == [0, 1, 2, 3, 4]
    assert run.launched_at == T0
    assert run.launched_by == "user:alice"


def test_launch_assigns_by_role_named_assignee_wins_and_unknown_role_stays_unassigned() -> None:
    """Role → member, a named assignee overrides, a role nobody holds leaves it unassigned."""
    run = launch(DIAMOND, {"needs_extra": True}).run
    assert {s.step_id: s.assignee for s in run.steps} == {
        "start": "alice",
        "left": "carol",
        "right": "frank",
        "join": "erin",
        "extra": None,
    }


def test_launch_computes_due_dates_only_for_applicable_steps_with_a_rule() -> None:
    """Due dates come from the ``due`` callback; none without a rule or when not applicable."""
    run = diamond()
    assert {s.step_id: s.due_at for s in run.steps} == {
        "start": T0 + timedelta(hours=4),
        "left": T0 + timedelta(hours=8),
        "right": None,
        "join": T0 + timedelta(hours=24),
        "extra": None,
    }


def test_launch_facts_and_notes() -> None:
    """Launch records 'launched' (with inputs, ticket, not-applicable steps) and 'assigned'."""
    ticket = TicketRef("cw-prod", "1234")
    outcome = launch(DIAMOND, {"needs_extra": False}, ticket=ticket)
    launched, assigned = outcome.facts
    assert launched == Fact(
        "launched", "user:alice", T0,
        data={
            "playbook": "diamond",
            "version": 3,
            "client": "ACME",
            "inputs": {"needs_extra": False},
            "ticket": {"source": "cw-prod", "id": "1234"},
            "not_applicable": ["extra"],
        },
    )
    assert assigned == Fact(
        "assigned", "user:alice", T0,
        data={"assignees": {"start": "alice", "left": "carol", "right": "frank",
                            "join": "erin"}},
    )
    assert outcome.notes == (NoteIntent("launched"),)
    assert outcome.run.ticket == ticket


def test_launch_without_any_assignment_records_no_assigned_fact() -> None:
    """No step has a role or assignee: only the 'launched' fact is recorded."""
    outcome = launch(STRICT)
    assert [f.action for f in outcome.facts] == ["launched"]
    assert outcome.facts[0].data["ticket"] is None


def test_run_whose_steps_are_all_not_applicable_completes_at_launch() -> None:
    """Nothing applies: the run is completed at once, with a 'completed' fact and note."""
    playbook = Playbook.model_validate(
        {
            "id": "nothing",
            "title": "Nothing applies",
            "version": 1,
            "inputs": [{"id": "flag", "title": "Flag", "type": "boolean"}],
            "steps": [
                {"id": "a", "title": "A", "when": {"flag": True}},
                {"id": "b", "title": "B", "after": ["a"], "when": {"flag": True}},
            ],
        }
    )
    outcome = launch(playbook, {"flag": False})
    assert outcome.run.status is RunStatus.COMPLETED
    assert outcome.run.completed_at == T0
    assert [f.action for f in outcome.facts] == ["launched", "completed"]
    assert outcome.facts[-1].data == {"steps_finished": 0, "steps": 0}
    assert outcome.notes == (NoteIntent("launched"), NoteIntent("completed"))


# ---------------------------------------------------------------------------- transition table


def _run_in(situation: str) -> RunState:
    run = diamond()
    if situation == "done":
        return complete(DIAMOND, run, "start")
    if situation == "cancelled":
        return engine.cancel_run(run, by="user:alice", reason="client left", now=T0).run
    if situation == "completed":
        return complete(DIAMOND, run, "start", "left")
    return run


@pytest.mark.parametrize(
    ("situation", "step_id", "error", "message"),
    [
        pytest.param("fresh", "start", None, None, id="open-to-done"),
        pytest.param("fresh", "left", StepLocked, "start (Start here)", id="locked"),
        pytest.param("done", "start", NotAllowed, "already done", id="done-again"),
        pytest.param("fresh", "extra", NotAllowed, "does not apply", id="not-applicable"),
        pytest.param("cancelled", "start", NotAllowed, "is cancelled", id="cancelled-run"),
        pytest.param("fresh", "ghost", NotFound, "no step 'ghost'", id="unknown-step"),
    ],
)
def test_complete_step_transition_table(
    situation: str, step_id: str, error: type[Exception] | None, message: str | None
) -> None:
    """complete_step: open → done; everything else is refused with a readable reason."""
    run = _run_in(situation)
    if error is None:
        outcome = engine.complete_step(DIAMOND, run, step_id, by="user:bob", now=T0)
        assert outcome.run.step(step_id).status is StepStatus.DONE
        return
    with pytest.raises(error) as info:
        engine.complete_step(DIAMOND, run, step_id, by="user:bob", now=T0)
    assert message is not None
    assert message in str(info.value)


def test_step_locked_names_every_blocker_by_id_and_title() -> None:
    """StepLocked carries the step, its unfinished prerequisites (id and title) and a reason."""
    # Given start is done and left is done, but right is not
    run = complete(DIAMOND, diamond(), "start", "left")
    # When join is completed
    with pytest.raises(StepLocked) as info:
        engine.complete_step(DIAMOND, run, "join", by="user:bob", now=T0)
    # Then the blocker is right, by id and title
    assert info.value.step == "join"
    assert info.value.blockers == ["right (Right branch)"]
    assert "right (Right branch)" in info.value.reason
    assert "'join'" in info.value.reason


def test_step_locked_lists_all_unfinished_prerequisites() -> None:
    """A step waiting for two steps names both."""
    run = complete(DIAMOND, diamond(), "start")
    with pytest.raises(StepLocked) as info:
        engine.complete_step(DIAMOND, run, "join", by="user:bob", now=T0)
    assert info.value.blockers == ["left (Left branch)", "right (Right branch)"]
    assert engine.blockers(DIAMOND, run, "join") == ["left", "right"]


# ---------------------------------------------------------------------------- order


@pytest.mark.parametrize(
    ("done", "expected"),
    [
        ((), {"start": "open", "left": "locked", "right": "locked", "join": "locked"}),
        (("start",), {"start": "done", "left": "open", "right": "open", "join": "locked"}),
        (("start", "left"), {"start": "done", "left": "done", "right": "open",
                             "join": "locked"}),
        (("start", "right"), {"start": "done", "left": "open", "right": "done",
                              "join": "locked"}),
        (("start", "right", "left"), {"start": "done", "left": "done", "right": "done",
                                      "join": "open"}),
    ],
    ids=["launched", "root-done", "left-done", "right-done", "both-branches-done"],
)
def test_diamond_dependencies_unlock_a_step_when_all_its_prerequisites_finish(
    done: tuple[str, ...], expected: dict[str, str]
) -> None:
    """``after`` with two prerequisites opens the join only when both branches are finished."""
    run = complete(DIAMOND, diamond(), *done)
    assert {k: v.value for k, v in statuses(run).items() if k != "extra"} == expected


def test_skipped_prerequisite_counts_as_finished() -> None:
    """A skipped branch satisfies the join like a done one."""
    # Given start and left are done
    run = complete(DIAMOND, diamond(), "start", "left")
    # When the protected right branch is skipped by a manager
    run = engine.skip_step(DIAMOND, run, "right", by="user:alice", reason="not needed",
                           now=T0, may_skip_protected=True).run
    # Then join opens
    assert run.step("join").status is StepStatus.OPEN


def test_not_applicable_prerequisite_counts_as_satisfied() -> None:
    """A step waiting only for a not-applicable step is open at launch."""
    playbook = Playbook.model_validate(
        {
            "id": "na-prereq",
            "title": "N/A prerequisite",
            "version": 1,
            "inputs": [{"id": "flag", "title": "Flag", "type": "boolean"}],
            "steps": [
                {"id": "maybe", "title": "Maybe", "when": {"flag": True}},
                {"id": "then", "title": "Then", "after": ["maybe"]},
            ],
        }
    )
    run = launch(playbook, {"flag": False}).run
    assert statuses(run) == {"maybe": StepStatus.NOT_APPLICABLE, "then": StepStatus.OPEN}
    assert engine.blockers(playbook, run, "then") == []


@pytest.mark.parametrize(
    ("done", "next_open", "locked"),
    [
        ((), "one", ["two", "three"]),
        (("one",), "two", ["three"]),
        (("one", "two"), "three", []),
    ],
)
def test_strict_order_opens_one_step_at_a_time(
    done: tuple[str, ...], next_open: str, locked: list[str]
) -> None:
    """With ``strict_order`` each step waits for the one before it."""
    run = complete(STRICT, launch(STRICT).run, *done)
    assert [s.step_id for s in run.steps if s.status is StepStatus.OPEN] == [next_open]
    assert [s.step_id for s in run.steps if s.status is StepStatus.LOCKED] == locked


def test_strict_order_refuses_a_later_step_naming_the_previous_one() -> None:
    """Completing the third step of a strict playbook first names the second as blocker."""
    run = launch(STRICT).run
    with pytest.raises(StepLocked) as info:
        engine.complete_step(STRICT, run, "three", by="user:bob", now=T0)
    assert info.value.blockers == ["two (Two)"]


def test_strict_order_adds_to_after() -> None:
    """``strict_order`` and ``after`` combine: a step waits for both."""
    playbook = Playbook.model_validate(
        {
            "id": "mixed",
            "title": "Mixed",
            "version": 1,
            "strict_order": True,
            "steps": [
                {"id": "a", "title": "A"},
                {"id": "b", "title": "B"},
                {"id": "c", "title": "C", "after": ["a"]},
            ],
        }
    )
    assert playbook.prerequisites("c") == ["a", "b"]
    run = complete(playbook, launch(playbook).run, "a")
    assert statuses(run)["c"] is StepStatus.LOCKED
    assert engine.blockers(playbook, run, "c") == ["b"]


STRICT_WITH_CONDITION = Playbook.model_validate(
    {
        "id": "strict-cond",
        "title": "Strict with a conditional middle step",
        "version": 1,
        "strict_order": True,
        "inputs": [{"id": "flag", "title": "Flag", "type": "boolean"}],
        "steps": [
            {"id": "first", "title": "First"},
            {"id": "middle", "title": "Middle", "when": {"flag": True}},
            {"id": "last", "title": "Last"},
        ],
    }
)


def test_strict_order_looks_through_a_not_applicable_step_to_the_earlier_ones() -> None:
    """Strict order: with the middle step not applicable, the last still waits for the first."""
    # Given a strict playbook whose middle step does not apply
    run = launch(STRICT_WITH_CONDITION, {"flag": False}).run
    # Then only the first step is open
    assert statuses(run) == {
        "first": StepStatus.OPEN,
        "middle": StepStatus.NOT_APPLICABLE,
        "last": StepStatus.LOCKED,
    }
    # And completing the last names the first (not the n/a middle) as blocker
    with pytest.raises(StepLocked) as info:
        engine.complete_step(STRICT_WITH_CONDITION, run, "last", by="user:bob", now=T0)
    assert info.value.blockers == ["first (First)"]


def test_after_looks_through_a_not_applicable_prerequisite_to_its_own_prerequisites() -> None:
    """c after b (n/a) after a: c waits for a; once a is done, c opens."""
    playbook = Playbook.model_validate(
        {
            "id": "chain",
            "title": "Chain",
            "version": 1,
            "inputs": [{"id": "flag", "title": "Flag", "type": "boolean"}],
            "steps": [
                {"id": "a", "title": "A"},
                {"id": "b", "title": "B", "after": ["a"], "when": {"flag": True}},
                {"id": "c", "title": "C", "after": ["b"]},
            ],
        }
    )
    # Given b does not apply
    run = launch(playbook, {"flag": False}).run
    # Then c is locked behind a
    assert statuses(run)["c"] is StepStatus.LOCKED
    assert engine.blockers(playbook, run, "c") == ["a"]
    # When a is done, c opens
    run = complete(playbook, run, "a")
    assert statuses(run)["c"] is StepStatus.OPEN


def test_strict_order_with_a_not_applicable_step_opens_the_next_once_the_earlier_is_done() -> None:
    """Strict order: after the first step is done, the step past the not-applicable one opens."""
    run = launch(STRICT_WITH_CONDITION, {"flag": False}).run
    run = complete(STRICT_WITH_CONDITION, run, "first")
    assert statuses(run)["last"] is StepStatus.OPEN


# ---------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("inputs", "applicable"),
    [
        ({"tier": "gold", "onsite": True}, {"gold-only", "gold-or-silver", "visit"}),
        ({"tier": "silver", "onsite": False}, {"gold-or-silver", "remote"}),
        ({"tier": "bronze", "onsite": False}, {"remote"}),
        ({"tier": "GOLD", "onsite": False}, {"gold-only", "gold-or-silver", "remote"}),
    ],
    ids=["gold-onsite", "silver-remote", "bronze-remote", "equality-ignores-case"],
)
def test_when_conditions_over_inputs_decide_applicability(
    inputs: dict[str, Any], applicable: set[str]
) -> None:
    """``when`` (equality, in, boolean, not) makes a step not applicable when false."""
    run = launch(CONDITIONAL, inputs).run
    expected = {
        s.id: StepStatus.OPEN if s.id in applicable | {"always"} else StepStatus.NOT_APPLICABLE
        for s in CONDITIONAL.steps
    }
    assert statuses(run) == expected


def test_when_on_a_missing_input_is_false_and_not_of_it_is_true() -> None:
    """An input that was not given never matches equality; its negation holds."""
    run = launch(CONDITIONAL, {"tier": "gold"}).run
    assert statuses(run)["visit"] is StepStatus.NOT_APPLICABLE
    assert statuses(run)["remote"] is StepStatus.OPEN


def test_not_applicable_steps_get_no_assignee_and_no_due_date() -> None:
    """A not-applicable step is neither assigned nor due."""
    playbook = Playbook.model_validate(
        {
            "id": "na-assign",
            "title": "N/A assignment",
            "version": 1,
            "inputs": [{"id": "flag", "title": "Flag", "type": "boolean"}],
            "steps": [
                {"id": "a", "title": "A"},
                {"id": "b", "title": "B", "role": "engineer", "assignee": "zed", "due": "4h",
                 "when": {"flag": True}},
            ],
        }
    )
    outcome = launch(playbook, {"flag": False})
    step = outcome.run.step("b")
    assert (step.status, step.assignee, step.due_at) == (StepStatus.NOT_APPLICABLE, None, None)
    assert "assigned" not in [f.action for f in outcome.facts]


# ---------------------------------------------------------------------------- completion


def test_run_completes_when_every_applicable_step_is_done_or_skipped() -> None:
    """The last applicable step finishing completes the run, with a fact and a note."""
    # Given every step but the join is finished (right skipped, extra not applicable)
    run = complete(DIAMOND, diamond(), "start", "left")
    run = engine.skip_step(DIAMOND, run, "right", by="user:alice", reason="n/a", now=T0,
                           may_skip_protected=True).run
    assert run.status is RunStatus.ACTIVE
    later = T0 + timedelta(hours=2)
    # When the join is completed
    outcome = engine.complete_step(DIAMOND, run, "join", by="user:erin", now=later,
                                   evidence="report.pdf")
    # Then the run is completed at that moment
    assert outcome.run.status is RunStatus.COMPLETED
    assert outcome.run.completed_at == later
    assert [f.action for f in outcome.facts] == ["step_done", "completed"]
    assert outcome.facts[1] == Fact("completed", "user:erin", later,
                                    data={"steps_finished": 4, "steps": 4})
    assert outcome.notes == (NoteIntent("step_done", "join"), NoteIntent("completed"))
    assert outcome.run.progress() == (4, 4)


def test_step_done_fact_carries_evidence_and_note() -> None:
    """Completing a step records who, when, evidence and note on the step and in the fact."""
    later = T0 + timedelta(minutes=30)
    outcome = engine.complete_step(DIAMOND, diamond(), "start", by="rule:backup-alert",
                                   now=later, evidence="alert 42: backup ok", note="auto")
    step = outcome.run.step("start")
    assert (step.status, step.done_by, step.done_at, step.evidence, step.note) == (
        StepStatus.DONE, "rule:backup-alert", later, "alert 42: backup ok", "auto")
    assert outcome.facts == (
        Fact("step_done", "rule:backup-alert", later, "start",
             data={"evidence": "alert 42: backup ok", "note": "auto"}),
    )
    assert outcome.notes == (NoteIntent("step_done", "start"),)


def test_step_done_fact_without_evidence_has_empty_data() -> None:
    """No evidence and no note: the fact's data is empty (no null keys)."""
    outcome = engine.complete_step(DIAMOND, diamond(), "start", by="user:bob", now=T0)
    assert outcome.facts[0].data == {}


def test_completed_run_refuses_further_changes() -> None:
    """Once completed, steps can no longer change."""
    playbook = Playbook.model_validate(
        {"id": "one", "title": "One", "version": 1,
         "steps": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]}
    )
    run = complete(playbook, launch(playbook).run, "a", "b")
    assert run.status is RunStatus.COMPLETED
    with pytest.raises(NotAllowed, match="is completed"):
        engine.skip_step(playbook, run, "a", by="user:bob", reason="x", now=T0)
    with pytest.raises(NotAllowed, match="only active runs"):
        engine.cancel_run(run, by="user:bob", reason="x", now=T0)


# ---------------------------------------------------------------------------- skipping


@pytest.mark.parametrize(
    ("step_id", "may_skip_protected", "reason", "error", "message"),
    [
        pytest.param("left", False, "client declined", None, None, id="skippable"),
        pytest.param("right", False, "client declined", NotAllowed, "protected",
                     id="manager-step-by-technician"),
        pytest.param("right", True, "client declined", None, None,
                     id="manager-step-by-manager"),
        pytest.param("join", True, "client declined", NotAllowed, "never be skipped",
                     id="never-even-for-manager"),
        pytest.param("left", False, "", NotAllowed, "reason is required", id="empty-reason"),
        pytest.param("left", False, "   ", NotAllowed, "reason is required",
                     id="blank-reason"),
        pytest.param("extra", True, "x", NotAllowed, "does not apply", id="not-applicable"),
        pytest.param("start", False, "x", NotAllowed, "already done", id="already-done"),
    ],
)
def test_skip_step_table(
    step_id: str, may_skip_protected: bool, reason: str,
    error: type[Exception] | None, message: str | None,
) -> None:
    """skip_step honours skippable true / 'manager' / false and needs a reason."""
    run = complete(DIAMOND, diamond(), "start")
    if error is None:
        outcome = engine.skip_step(DIAMOND, run, step_id, by="user:alice", reason=reason,
                                   now=T0, may_skip_protected=may_skip_protected)
        step = outcome.run.step(step_id)
        assert (step.status, step.skip_reason, step.done_by) == (
            StepStatus.SKIPPED, reason, "user:alice")
        return
    with pytest.raises(error) as info:
        engine.skip_step(DIAMOND, run, step_id, by="user:alice", reason=reason, now=T0,
                         may_skip_protected=may_skip_protected)
    assert message is not None
    assert message in str(info.value)


def test_skip_of_a_locked_step_is_refused_with_step_locked() -> None:
    """Skipping does not bypass order: a locked step cannot be skipped."""
    with pytest.raises(StepLocked) as info:
        engine.skip_step(DIAMOND, diamond(), "left", by="user:alice", reason="x", now=T0)
    assert info.value.blockers == ["start (Start here)"]


def test_skip_produces_a_fact_with_the_stripped_reason_and_a_note() -> None:
    """step_skipped fact and note; the reason is stored stripped."""
    run = complete(DIAMOND, diamond(), "start")
    outcome = engine.skip_step(DIAMOND, run, "left", by="user:alice",
                               reason="  client declined  ", now=T0)
    assert outcome.run.step("left").skip_reason == "client declined"
    assert outcome.facts == (
        Fact("step_skipped", "user:alice", T0, "left", data={"reason": "client declined"}),
    )
    assert outcome.notes == (NoteIntent("step_skipped", "left"),)


# ---------------------------------------------------------------- cancel, comment, reassign


def test_cancel_run_records_reason_fact_and_note() -> None:
    """Cancelling an active run sets status, time and reason, and tells the ticket."""
    later = T0 + timedelta(days=1)
    outcome = engine.cancel_run(diamond(), by="user:alice", reason="client left", now=later)
    assert outcome.run.status is RunStatus.CANCELLED
    assert outcome.run.completed_at == later
    assert outcome.run.cancel_reason == "client left"
    assert outcome.facts == (
        Fact("cancelled", "user:alice", later, data={"reason": "client left"}),
    )
    assert outcome.notes == (NoteIntent("cancelled", text="client left"),)


def test_cancel_without_reason() -> None:
    """A reason is optional when cancelling; none is stored."""
    outcome = engine.cancel_run(diamond(), by="user:alice", reason="", now=T0)
    assert outcome.run.cancel_reason is None
    assert outcome.facts[0].data == {}
    assert outcome.notes == (NoteIntent("cancelled", text=None),)


def test_cancelled_run_cannot_be_cancelled_again() -> None:
    """Cancel is refused on a run that is no longer active."""
    run = _run_in("cancelled")
    with pytest.raises(NotAllowed, match="is cancelled"):
        engine.cancel_run(run, by="user:alice", reason="again", now=T0)


def test_comment_leaves_the_run_unchanged_and_produces_a_fact_and_note() -> None:
    """A comment is audited and written back; the run state does not change."""
    run = diamond()
    outcome = engine.comment(run, by="user:bob", text="called the client", now=T0)
    assert outcome.run == run
    assert outcome.facts == (Fact("commented", "user:bob", T0,
                                  data={"text": "called the client"}),)
    assert outcome.notes == (NoteIntent("comment", text="called the client"),)


@pytest.mark.parametrize("assignee", ["dan", None])
def test_reassign_changes_one_step_and_records_an_assigned_fact(assignee: str | None) -> None:
    """Reassign gives a step to another technician (or nobody); no note is sent."""
    run = diamond()
    outcome = engine.reassign(run, "left", assignee=assignee, by="user:alice", now=T0)
    assert outcome.run.step("left").assignee == assignee
    others = [s for s in outcome.run.steps if s.step_id != "left"]
    assert others == [s for s in run.steps if s.step_id != "left"]
    assert outcome.facts == (Fact("assigned", "user:alice", T0, "left",
                                  data={"assignee": assignee}),)
    assert outcome.notes == ()


def test_reassign_of_a_finished_step_is_refused() -> None:
    """A done step keeps the person who did it."""
    run = complete(DIAMOND, diamond(), "start")
    with pytest.raises(NotAllowed, match="already done"):
        engine.reassign(run, "start", assignee="dan", by="user:alice", now=T0)


def test_reassign_on_a_cancelled_run_is_refused() -> None:
    """A closed run's steps can no longer change, including their assignee."""
    run = _run_in("cancelled")
    with pytest.raises(NotAllowed):
        engine.reassign(run, "left", assignee="dan", by="user:alice", now=T0)


# ---------------------------------------------------------------------------- overdue


@pytest.mark.parametrize(
    ("offset", "overdue"),
    [
        (timedelta(hours=3, minutes=59), []),
        (timedelta(hours=4), []),  # exactly at the due time is not late yet
        (timedelta(hours=4, seconds=1), ["start"]),
        (timedelta(hours=9), ["start", "left"]),
        (timedelta(days=2), ["start", "left", "join"]),
    ],
)
def test_overdue_is_derived_from_due_at_and_now(offset: timedelta, overdue: list[str]) -> None:
    """Unfinished steps past their due time are overdue (locked ones too)."""
    run = diamond()
    assert [s.step_id for s in run.overdue(T0 + offset)] == overdue
    assert [s.step_id for s in run.steps if s.is_overdue(T0 + offset)] == overdue


def test_finished_steps_are_never_overdue() -> None:
    """A step done before or after its due time is not overdue."""
    late = T0 + timedelta(hours=5)
    run = complete(DIAMOND, diamond(), "start", now=late)
    assert not run.step("start").is_overdue(T0 + timedelta(days=10))
    assert [s.step_id for s in run.overdue(T0 + timedelta(hours=9))] == ["left"]


def test_a_cancelled_run_has_no_overdue_steps() -> None:
    """Work that was cancelled cannot be late."""
    run = _run_in("cancelled")
    assert run.overdue(T0 + timedelta(days=30)) == []


def test_step_without_due_date_is_never_overdue() -> None:
    """No due rule, no due date, never overdue."""
    step = StepState("x", "X", StepStatus.OPEN, 0)
    assert not step.is_overdue(datetime(2999, 1, 1, tzinfo=UTC))


# ---------------------------------------------------------------------------- purity


def test_transitions_never_mutate_their_input_state() -> None:
    """Every transition returns a new run; the run and inputs passed in are unchanged."""
    inputs = {"needs_extra": False}
    inputs_before = copy.deepcopy(inputs)
    run = launch(DIAMOND, inputs).run
    assert inputs == inputs_before
    snapshots: list[tuple[RunState, RunState]] = []

    def keep(state: RunState) -> RunState:
        snapshots.append((state, copy.deepcopy(state)))
        return state

    # Given a chain of transitions, each applied to the previous result
    run = engine.complete_step(DIAMOND, keep(run), "start", by="u", now=T0).run
    run = engine.reassign(keep(run), "left", assignee="dan", by="u", now=T0).run
    run = engine.comment(keep(run), by="u", text="hi", now=T0).run
    run = engine.skip_step(DIAMOND, keep(run), "left", by="u", reason="r", now=T0).run
    run = engine.complete_step(DIAMOND, keep(run), "right", by="u", now=T0).run
    run = engine.complete_step(DIAMOND, keep(run), "join", by="u", now=T0).run
    assert run.status is RunStatus.COMPLETED
    engine.cancel_run(keep(diamond()), by="u", reason="r", now=T0)
    # When refused transitions are attempted, they change nothing either
    with pytest.raises(NotAllowed):
        engine.complete_step(DIAMOND, keep(run), "start", by="u", now=T0)
    # Then every state handed to the engine still equals its deep copy
    for state, before in snapshots:
        assert state == before

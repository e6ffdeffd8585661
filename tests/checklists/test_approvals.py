"""Sign-offs in the pure engine: who may approve, four-eyes, rejection reopening steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from hub.core.checklists import approvals, engine
from hub.core.checklists.approvals import ApprovalRefused
from hub.core.checklists.engine import RunState, RunStatus, StepStatus
from hub.core.checklists.schema import Playbook
from hub.errors import NotAllowed, StepLocked

T0 = datetime(2025, 6, 13, 14, 0, tzinfo=UTC)
MANAGER = {"service-manager"}

# revoke → wipe → (records) → sign-off approving revoke and wipe
OFFBOARD = Playbook.model_validate({
    "id": "leaver", "title": "Leaver", "version": 1, "strict_order": True,
    "steps": [
        {"id": "revoke", "title": "Revoke access", "role": "service-desk"},
        {"id": "wipe", "title": "Wipe devices", "role": "engineer"},
        {"id": "records", "title": "Update records", "role": "service-desk"},
        {"id": "signoff", "title": "Final confirmation", "role": "service-manager",
         "approval": {"approves": ["revoke", "wipe"]}},
    ],
})


def _launch(playbook: Playbook = OFFBOARD) -> RunState:
    return engine.launch(playbook, run_id=7, client_id="acme", inputs={}, by="user:max",
                         now=T0, assign=lambda s: None, due=lambda r: T0).run


def _work(run: RunState, *steps: tuple[str, str], playbook: Playbook = OFFBOARD) -> RunState:
    for step_id, who in steps:
        run = engine.complete_step(playbook, run, step_id, by=who, now=T0).run
    return run


def _ready() -> RunState:
    return _work(_launch(), ("revoke", "user:alice"), ("wipe", "user:carol"),
                 ("records", "user:bob"))


def _status(run: RunState) -> dict[str, StepStatus]:
    return {s.step_id: s.status for s in run.steps}


def test_approval_steps_cannot_be_skipped_by_default() -> None:
    """Skipping a sign-off would bypass it: unskippable unless the author says otherwise."""
    assert OFFBOARD.step("signoff").skippable is False
    with pytest.raises(NotAllowed, match="can never be skipped"):
        engine.skip_step(OFFBOARD, _ready(), "signoff", by="user:max", reason="hurry", now=T0,
                         may_skip_protected=True)


def test_opening_an_approval_requests_it() -> None:
    """The transition that opens a sign-off records approval_requested (role, steps)."""
    run = _work(_launch(), ("revoke", "user:alice"), ("wipe", "user:carol"))
    outcome = engine.complete_step(OFFBOARD, run, "records", by="user:bob", now=T0)
    requested = [f for f in outcome.facts if f.action == "approval_requested"]
    assert len(requested) == 1
    assert requested[0].step_id == "signoff"
    assert requested[0].actor == "user:bob"
    assert requested[0].data == {"role": "service-manager", "approves": ["revoke", "wipe"],
                                 "four_eyes": True}


def test_completing_an_approval_step_is_refused() -> None:
    """A sign-off is approved, never 'marked done' (not even by a rule's tick)."""
    with pytest.raises(NotAllowed, match="sign-off: it is completed by approving it"):
        engine.complete_step(OFFBOARD, _ready(), "signoff", by="user:dan", now=T0)


def test_a_technician_without_the_role_is_refused() -> None:
    """Holding another team role is not enough."""
    with pytest.raises(ApprovalRefused) as caught:
        approvals.approve_step(OFFBOARD, _ready(), "signoff", by="user:bob",
                               roles={"service-desk", "engineer"}, now=T0)
    assert caught.value.why == "role"
    assert caught.value.role == "service-manager"
    assert "'service-manager' role" in caught.value.reason


def test_the_person_who_did_an_approved_step_is_refused() -> None:
    """Four-eyes: alice revoked access, so she may not sign it off, even as a manager."""
    with pytest.raises(ApprovalRefused) as caught:
        approvals.approve_step(OFFBOARD, _ready(), "signoff", by="user:alice", roles=MANAGER,
                               now=T0)
    assert caught.value.why == "four_eyes"
    assert "user:alice did revoke" in caught.value.reason


def test_a_step_outside_the_approved_ones_does_not_count_for_four_eyes() -> None:
    """bob only updated the records, which the sign-off does not approve."""
    outcome = approvals.approve_step(OFFBOARD, _ready(), "signoff", by="user:bob",
                                     roles=MANAGER, now=T0, comment="checked the logs")
    assert outcome.run.status is RunStatus.COMPLETED


def test_a_manager_approves_and_the_run_completes() -> None:
    """The sign-off is done by the approver; the facts say what it approved."""
    outcome = approvals.approve_step(OFFBOARD, _ready(), "signoff", by="user:dan",
                                     roles=MANAGER, now=T0 + timedelta(hours=1),
                                     comment="all revoked")
    step = outcome.run.step("signoff")
    assert (step.status, step.done_by, step.evidence) == (StepStatus.DONE, "user:dan",
                                                          "all revoked")
    assert [f.action for f in outcome.facts] == ["step_approved", "completed"]
    assert outcome.facts[0].data == {"approves": ["revoke", "wipe"], "comment": "all revoked"}
    assert [n.kind for n in outcome.notes] == ["step_approved", "completed"]


def test_four_eyes_can_be_turned_off() -> None:
    """four_eyes: false lets the doer approve (a one-person MSP)."""
    solo = Playbook.model_validate({**OFFBOARD.model_dump(), "steps": [
        *OFFBOARD.model_dump()["steps"][:3],
        {"id": "signoff", "title": "Final confirmation", "role": "service-manager",
         "approval": {"approves": ["revoke", "wipe"], "four_eyes": False}}]})
    run = _work(_launch(solo), ("revoke", "user:alice"), ("wipe", "user:alice"),
                ("records", "user:alice"), playbook=solo)
    outcome = approvals.approve_step(solo, run, "signoff", by="user:alice", roles=MANAGER,
                                     now=T0)
    assert outcome.run.status is RunStatus.COMPLETED


def test_a_locked_approval_cannot_be_approved() -> None:
    """Before the steps it approves are finished, the sign-off is locked."""
    run = _work(_launch(), ("revoke", "user:alice"))
    with pytest.raises(StepLocked):
        approvals.approve_step(OFFBOARD, run, "signoff", by="user:dan", roles=MANAGER, now=T0)


def test_rejection_reopens_the_named_steps_and_locks_the_sign_off() -> None:
    """Rejecting with a reason reopens 'wipe' (its result cleared, kept in the facts)."""
    outcome = approvals.reject_step(OFFBOARD, _ready(), "signoff", by="user:dan",
                                    roles=MANAGER, reason="laptop 2 not wiped",
                                    reopen=["wipe"], now=T0)
    run = outcome.run
    assert _status(run) == {"revoke": StepStatus.DONE, "wipe": StepStatus.OPEN,
                            "records": StepStatus.DONE, "signoff": StepStatus.LOCKED}
    wiped = run.step("wipe")
    assert (wiped.done_by, wiped.done_at, wiped.evidence) == (None, None, None)
    assert run.step("signoff").note == "Rejected by user:dan: laptop 2 not wiped"
    assert [(f.action, f.step_id) for f in outcome.facts] == [
        ("step_rejected", "signoff"), ("step_reopened", "wipe")]
    assert outcome.facts[0].data == {"reason": "laptop 2 not wiped", "reopened": ["wipe"]}
    assert [n.kind for n in outcome.notes] == ["step_rejected"]
    # When the reopened step is done again, the sign-off is requested again
    again = engine.complete_step(OFFBOARD, run, "wipe", by="user:carol", now=T0)
    assert _status(again.run)["signoff"] is StepStatus.OPEN
    assert [f.action for f in again.facts] == ["step_done", "approval_requested"]


def test_rejection_reopens_every_approved_step_by_default() -> None:
    """No steps named: every finished approved step is reopened."""
    run = approvals.reject_step(OFFBOARD, _ready(), "signoff", by="user:dan", roles=MANAGER,
                                reason="redo", reopen=None, now=T0).run
    assert _status(run)["revoke"] is StepStatus.OPEN
    assert _status(run)["wipe"] is StepStatus.LOCKED  # strict order: waits for revoke again


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"reason": "  "}, NotAllowed, "a reason is required"),
    ({"reopen": ["records"]}, NotAllowed, "cannot be reopened by rejecting 'signoff'"),
    ({"roles": {"engineer"}}, ApprovalRefused, "'service-manager' role"),
    ({"by": "user:carol"}, ApprovalRefused, "four-eyes: user:carol did wipe"),
])
def test_refused_rejections(kwargs: dict[str, Any], error: type[Exception],
                            message: str) -> None:
    """A rejection needs a reason, the role, and steps the sign-off may reopen."""
    args: dict[str, Any] = {"by": "user:dan", "roles": MANAGER, "reason": "redo",
                            "reopen": None, "now": T0, **kwargs}
    with pytest.raises(error, match=message):
        approvals.reject_step(OFFBOARD, _ready(), "signoff", **args)


def test_approving_a_normal_step_is_refused() -> None:
    """Only approval steps are approved."""
    with pytest.raises(NotAllowed, match="not an approval step"):
        approvals.approve_step(OFFBOARD, _launch(), "revoke", by="user:dan", roles=MANAGER,
                               now=T0)


def test_default_approves_is_everything_the_step_waits_for() -> None:
    """Without 'approves', a sign-off approves every step before it (transitively)."""
    pb = Playbook.model_validate({"id": "p", "title": "P", "version": 1, "steps": [
        {"id": "a", "title": "A"}, {"id": "b", "title": "B", "after": ["a"]},
        {"id": "c", "title": "C"},
        {"id": "ok", "title": "OK", "after": ["b"], "approval": {"role": "service-manager"}}]})
    assert pb.approved_by("ok") == ["a", "b"]
    assert pb.reopenable("ok") == ["a", "b"]


@pytest.mark.parametrize(("approval", "extra", "message"), [
    ({"role": "sm", "approves": ["later"]}, {}, "'later' is not a step this approval waits"),
    ({"role": "sm", "approves": ["a"], "reopen": ["b"]}, {}, "'b' is not one of the approved"),
    ({"role": "sm"}, {"after": []}, "must wait for the steps it approves"),
    ({"approves": ["a"]}, {"role": None}, "name the team role that approves"),
])
def test_bad_approval_declarations_are_refused(approval: dict[str, Any],
                                               extra: dict[str, Any], message: str) -> None:
    """Approving a later step, reopening a non-approved one, or no role is caught at load."""
    step = {"id": "ok", "title": "OK", "after": ["a", "b"], "approval": approval, **extra}
    with pytest.raises(ValidationError, match=message):
        Playbook.model_validate({"id": "p", "title": "P", "version": 1, "steps": [
            {"id": "a", "title": "A"}, {"id": "b", "title": "B"}, step,
            {"id": "later", "title": "Later", "after": ["ok"]}]})

"""Sign-offs and evidence forms through the REST API: who may approve (team role, four-eyes),
rejection reopening steps, evidence checked with 422s and carried into the record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.services.tokens import Role, create_token
from hub.store.db import transaction
from hub.store.models import AuditEntry, OutboxNote
from tests.api.conftest import START, Api

SIGNOFF = "access-removal-signoff"
MAILBOX = {"converted_to": "shared mailbox", "delegate": "line.manager@client.example",
           "before_licence": True}


def _token(api: Api, name: str, role: Role = Role.TECHNICIAN) -> dict[str, str]:
    """A bearer header for another token (its name is the team member it acts as)."""
    with transaction(api.ctx.sessions) as session:
        token = create_token(session, name=name, role=role, now=START)
    return {"Authorization": f"Bearer {token}"}


def _post(api: Api, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return api.http.post(path, headers=headers, json=body)


def _steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in run["steps"]}


def _work_until_signoff(api: Api, run_id: int) -> list[str]:
    """alice (technician) completes every open step, in order, until the sign-off opens."""
    done: list[str] = []
    for _ in range(40):  # bounded: one pass per step
        run = api.get(f"/api/runs/{run_id}").json()
        steps = _steps(run)
        if steps[SIGNOFF]["status"] == "open":
            return done
        step = next(s for s in run["steps"] if s["status"] == "open")
        body: dict[str, Any] = {"evidence": f"did {step['step_id']}"}
        if step["step_id"] == "convert-mailbox":
            body["fields"] = MAILBOX
        response = api.post(f"/api/runs/{run_id}/steps/{step['step_id']}/complete",
                            Role.TECHNICIAN, body)
        assert response.status_code == 200, response.text
        done.append(step["step_id"])
    raise AssertionError("the sign-off never opened")


def test_signoff_refuses_a_technician_and_the_doer_and_accepts_a_manager(api: Api) -> None:
    """The issue's 'done when': a technician without the role and the person who did the
    approved steps are refused (403, saying why); a service manager approves."""
    # Given an offboarding worked by alice up to its sign-off
    run_id = api.launch(ticket={"source": "cw-prod", "id": 5150})["id"]
    _work_until_signoff(api, run_id)
    signoff = _steps(api.get(f"/api/runs/{run_id}").json())[SIGNOFF]
    assert signoff["approval"]["role"] == "service-manager"
    assert signoff["approval"]["four_eyes"] is True
    assert "disable-sign-in" in signoff["approval"]["approves"]
    path = f"/api/runs/{run_id}/steps/{SIGNOFF}/approve"
    # When bob, a technician who is not a service manager, approves
    bob = _post(api, path, _token(api, "bob"), {"comment": "looks fine"})
    # Then he is refused for the role
    assert bob.status_code == 403
    assert bob.json()["error"] == "forbidden"
    assert bob.json()["why"] == "role"
    assert bob.json()["needed_team_role"] == "service-manager"
    assert "'service-manager' role" in bob.json()["detail"]
    # When alice, a service manager who did the revocations, approves her own work
    alice = api.post(path, Role.TECHNICIAN, {})
    # Then four-eyes refuses her, naming a step she did
    assert alice.status_code == 403
    assert alice.json()["why"] == "four_eyes"
    assert "user:alice did disable-sign-in" in alice.json()["detail"]
    # When marking the sign-off "done" instead
    done = api.post(f"/api/runs/{run_id}/steps/{SIGNOFF}/complete", Role.MANAGER, {})
    assert done.status_code == 409
    assert "sign-off" in done.json()["detail"]
    # When max, the other service manager, approves
    ok = api.post(path, Role.MANAGER, {"comment": "checked the Entra sign-in logs"})
    # Then the sign-off is done by him and the run moves on
    assert ok.status_code == 200, ok.text
    step = _steps(ok.json())[SIGNOFF]
    assert (step["status"], step["done_by"]) == ("done", "user:max")
    assert step["evidence"] == "checked the Entra sign-in logs"
    assert _steps(ok.json())["confirm-to-manager"]["status"] == "open"
    # And the audit trail has the request and the approval
    trail = api.get(f"/api/runs/{run_id}/audit").json()
    actions = [(e["action"], e["step_id"]) for e in trail]
    assert ("approval_requested", SIGNOFF) in actions
    assert ("step_approved", SIGNOFF) in actions
    # And the ticket gets a note saying who approved
    with api.ctx.sessions() as session:
        notes = session.execute(select(OutboxNote.text).where(
            OutboxNote.run_id == run_id, OutboxNote.kind == "step_approved")).scalars().all()
    assert len(notes) == 1 and "approved by user:max" in notes[0]


def test_rejection_reopens_the_named_steps_with_the_reason(api: Api) -> None:
    """Rejecting reopens the named steps (others stay done), locks the sign-off until
    they are done again, and then asks for it again."""
    # Given an offboarding at its sign-off
    run_id = api.launch()["id"]
    _work_until_signoff(api, run_id)
    path = f"/api/runs/{run_id}/steps/{SIGNOFF}/reject"
    # When a rejection names no reason, or a step outside the sign-off
    assert api.post(path, Role.MANAGER, {"reason": " "}).status_code == 422
    outside = api.post(path, Role.MANAGER, {"reason": "x", "reopen": ["confirm-leaver"]})
    assert outside.status_code == 409
    assert "cannot be reopened" in outside.json()["detail"]
    # When bob (not a service manager) rejects
    assert _post(api, path, _token(api, "bob"), {"reason": "no"}).status_code == 403
    # When max rejects, reopening the MFA step
    rejected = api.post(path, Role.MANAGER, {"reason": "FIDO key still registered",
                                             "reopen": ["remove-mfa-methods"]})
    # Then that step is open again with its result cleared; the others stay done
    assert rejected.status_code == 200, rejected.text
    steps = _steps(rejected.json())
    assert steps["remove-mfa-methods"]["status"] == "open"
    assert steps["remove-mfa-methods"]["done_by"] is None
    assert steps["disable-sign-in"]["status"] == "done"
    assert steps[SIGNOFF]["status"] == "locked"
    assert steps[SIGNOFF]["note"] == "Rejected by user:max: FIDO key still registered"
    assert "remove-mfa-methods" in steps[SIGNOFF]["blockers"]
    # And the audit trail says why
    trail = api.get(f"/api/runs/{run_id}/audit").json()
    rejection = next(e for e in trail if e["action"] == "step_rejected")
    assert rejection["data"] == {"reason": "FIDO key still registered",
                                 "reopened": ["remove-mfa-methods"]}
    assert any(e["action"] == "step_reopened" and e["step_id"] == "remove-mfa-methods"
               for e in trail)
    # When alice does the step again
    again = api.post(f"/api/runs/{run_id}/steps/remove-mfa-methods/complete", Role.TECHNICIAN,
                     {"evidence": "no methods left"})
    # Then the sign-off is open and requested again
    assert _steps(again.json())[SIGNOFF]["status"] == "open"
    trail = api.get(f"/api/runs/{run_id}/audit").json()
    assert [e["action"] for e in trail].count("approval_requested") == 2


def test_a_viewer_cannot_sign_off(api: Api) -> None:
    """Signing off changes a run: a viewer is refused before any team check."""
    run_id = api.launch()["id"]
    refused = api.post(f"/api/runs/{run_id}/steps/{SIGNOFF}/approve", Role.VIEWER, {})
    assert refused.status_code == 403
    assert "'technician' role or higher" in refused.json()["detail"]


def test_approving_an_ordinary_or_locked_step_is_refused(api: Api) -> None:
    """Only an open approval step can be approved."""
    run_id = api.launch()["id"]
    plain = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/approve", Role.MANAGER, {})
    assert plain.status_code == 409
    assert "not an approval step" in plain.json()["detail"]
    locked = api.post(f"/api/runs/{run_id}/steps/{SIGNOFF}/approve", Role.MANAGER, {})
    assert locked.status_code == 409
    assert locked.json()["error"] == "step_locked"


def _to_mailbox(api: Api) -> int:
    """An offboarding whose next open step is the mailbox conversion."""
    run_id = api.launch()["id"]
    for _ in range(40):
        run = api.get(f"/api/runs/{run_id}").json()
        step = next(s for s in run["steps"] if s["status"] == "open")
        if step["step_id"] == "convert-mailbox":
            return run_id
        api.post(f"/api/runs/{run_id}/steps/{step['step_id']}/complete", Role.TECHNICIAN,
                 {"evidence": "ok"}).raise_for_status()
    raise AssertionError("convert-mailbox never opened")


def test_evidence_form_problems_are_422_with_each_field(api: Api) -> None:
    """Missing, unticked, ill-typed and unknown fields are listed, each with its field."""
    run_id = _to_mailbox(api)
    path = f"/api/runs/{run_id}/steps/convert-mailbox/complete"
    form = _steps(api.get(f"/api/runs/{run_id}").json())["convert-mailbox"]["evidence_fields"]
    assert [f["id"] for f in form] == ["converted_to", "delegate", "before_licence"]
    # When completed with no form at all
    empty = api.post(path, Role.TECHNICIAN, {"evidence": "done"})
    assert empty.status_code == 422
    body = empty.json()
    assert body["error"] == "invalid_evidence"
    assert body["step"] == "convert-mailbox"
    assert [e["field"] for e in body["errors"]] == [
        "fields.converted_to", "fields.delegate", "fields.before_licence"]
    assert 'must be ticked: "I converted the mailbox before removing the licence"' in \
        body["detail"]
    # When a choice is not one of the choices and a key is misspelt
    bad = api.post(path, Role.TECHNICIAN, {"fields": {**MAILBOX, "converted_to": "pst",
                                                      "delgate": "x"}})
    assert bad.status_code == 422
    messages = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert messages["fields.converted_to"].startswith("must be one of: shared mailbox")
    assert "unknown field" in messages["fields.delgate"]
    # When a field holds an object instead of a value
    nested = api.post(path, Role.TECHNICIAN, {"fields": {**MAILBOX, "delegate": {"a": 1}}})
    assert nested.status_code == 422
    # And nothing changed
    assert _steps(api.get(f"/api/runs/{run_id}").json())["convert-mailbox"]["status"] == "open"


def test_evidence_is_kept_in_the_fact_the_step_and_the_completion_record(api: Api) -> None:
    """Good values are in the step_done fact (typed), the step's evidence (labelled) and,
    at the end, the completion record written back to the ticket."""
    run_id = _to_mailbox(api)
    done = api.post(f"/api/runs/{run_id}/steps/convert-mailbox/complete", Role.TECHNICIAN,
                    {"evidence": "see ticket", "fields": MAILBOX})
    assert done.status_code == 200, done.text
    evidence = _steps(done.json())["convert-mailbox"]["evidence"]
    assert evidence == ("see ticket\nThe mailbox is now: shared mailbox; Full Access granted "
                        "to (name or email): line.manager@client.example; confirmed \"I "
                        "converted the mailbox before removing the licence\"")
    with api.ctx.sessions() as session:
        fact = session.execute(select(AuditEntry).where(
            AuditEntry.run_id == run_id, AuditEntry.step_id == "convert-mailbox",
            AuditEntry.action == "step_done")).scalar_one()
        assert fact.data["fields"] == MAILBOX
        assert fact.data["evidence"] == "see ticket"


def test_the_completion_record_carries_evidence_and_the_approver(api: Api) -> None:
    """The whole offboarding: the written-back record lists the form's values and who
    signed off."""
    run_id = api.launch(ticket={"source": "cw-prod", "id": 5151})["id"]
    _work_until_signoff(api, run_id)
    api.post(f"/api/runs/{run_id}/steps/{SIGNOFF}/approve", Role.MANAGER,
             {"comment": "checked"}).raise_for_status()
    for _ in range(10):
        run = api.get(f"/api/runs/{run_id}").json()
        if run["status"] != "active":
            break
        step = next(s for s in run["steps"] if s["status"] == "open")
        api.post(f"/api/runs/{run_id}/steps/{step['step_id']}/complete", Role.TECHNICIAN,
                 {"evidence": "ok"}).raise_for_status()
    assert api.get(f"/api/runs/{run_id}").json()["status"] == "completed"
    with api.ctx.sessions() as session:
        record = session.execute(select(OutboxNote.text).where(
            OutboxNote.run_id == run_id, OutboxNote.kind == "completed")).scalar_one()
    assert "The mailbox is now: shared mailbox" in record
    assert "Service manager signs off the access removal — approved by user:max" in record

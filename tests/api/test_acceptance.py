"""Acceptance: a leaver checklist worked end to end through the API, then the audit tampered."""

from __future__ import annotations

import itertools

from sqlalchemy import text

from hub.services.tokens import Role
from tests.api.conftest import Api

SIGNOFF = "access-removal-signoff"
MAILBOX = {"converted_to": "shared mailbox", "delegate": "Jane's manager",
           "before_licence": True}


def test_offboarding_end_to_end_and_tamper_detection(api: Api) -> None:
    """Order is enforced, the run completes, and an edited audit row is pinpointed."""
    # Given a leaver run launched by a manager through the API, from a PSA ticket
    response = api.post("/api/runs", Role.MANAGER, {
        "playbook": "user-offboarding", "client": "ACME", "client_name": "Acme Ltd",
        "inputs": {"leaver_name": "Jane Doe", "last_day": "2025-03-07",
                   "forward_to": "manager@acme.example"},
        "ticket": {"source": "cw-prod", "id": 48213},
    })
    assert response.status_code == 201, response.text
    run = response.json()
    run_id = run["id"]
    assert response.headers["Location"] == f"/api/runs/{run_id}"
    assert run["status"] == "active"
    assert run["launched_by"] == "user:max"
    assert run["ticket"] == {"source": "cw-prod", "id": "48213"}
    steps = {s["step_id"]: s for s in run["steps"]}
    assert steps["confirm-leaver"]["status"] == "open"
    assert steps["reset-password"]["status"] == "locked"
    assert steps["reset-password"]["blockers"] == ["disable-sign-in"]

    # When a technician completes a step that is still locked
    locked = api.post(f"/api/runs/{run_id}/steps/reset-password/complete", Role.TECHNICIAN,
                      {"evidence": "too early"})

    # Then it is refused with 409, naming what it waits for
    assert locked.status_code == 409
    body = locked.json()
    assert body["error"] == "step_locked"
    assert body["blockers"] == ["disable-sign-in (Block sign-in)"]
    assert "disable-sign-in" in body["detail"]

    # When every applicable step is completed in order (the mailbox conversion with its
    # evidence form), and the access-removal sign-off approved by the other service manager
    applicable = [s["step_id"] for s in run["steps"] if s["status"] != "not_applicable"]
    assert len(applicable) == run["progress"]["total"]
    for step_id in applicable:
        if step_id == SIGNOFF:
            done = api.post(f"/api/runs/{run_id}/steps/{step_id}/approve", Role.MANAGER,
                            {"comment": f"evidence for {step_id}"})
        else:
            body = {"evidence": f"evidence for {step_id}", "note": "done by the book"}
            if step_id == "convert-mailbox":
                body["fields"] = MAILBOX
            done = api.post(f"/api/runs/{run_id}/steps/{step_id}/complete", Role.TECHNICIAN,
                            body)
        assert done.status_code == 200, (step_id, done.text)
        api.clock.advance(minutes=5)

    # Then the run is completed, every step done by the technician
    final = api.get(f"/api/runs/{run_id}").json()
    assert final["status"] == "completed"
    assert final["completed_at"] is not None
    assert final["progress"] == {"done": len(applicable), "total": len(applicable)}
    for step in final["steps"]:
        if step["step_id"] in applicable:
            assert step["status"] == "done"
            assert step["done_by"] == ("user:max" if step["step_id"] == SIGNOFF
                                       else "user:alice")
            assert step["evidence"].startswith(f"evidence for {step['step_id']}")

    # And the run's audit trail is a chain: launched, assigned, each step, completed
    trail = api.get(f"/api/runs/{run_id}/audit").json()
    actions = [e["action"] for e in trail]
    assert actions[:2] == ["launched", "assigned"]
    assert actions[-1] == "completed"
    assert actions.count("step_done") == len(applicable) - 1
    assert actions.count("step_approved") == 1
    for before, after in itertools.pairwise(trail):
        assert after["prev_hash"] == before["hash"]

    # And the whole chain verifies
    verified = api.get("/api/audit/verify", Role.ADMIN)
    assert verified.status_code == 200
    assert verified.json() == {"ok": True, "checked": len(trail), "entry_id": None,
                               "problem": None}

    # When someone edits one audit row's data directly in the database
    tampered = next(e for e in trail if e["action"] == "step_done"
                    and e["step_id"] == "revoke-sessions")
    cast = "CAST(:data AS JSONB)" if api.ctx.engine.dialect.name == "postgresql" else ":data"
    with api.ctx.engine.begin() as conn:
        changed = conn.execute(text(f"UPDATE audit_entries SET data = {cast} WHERE id = :id"),
                               {"data": '{"evidence": "nothing to see here"}',
                                "id": tampered["id"]})
        assert changed.rowcount == 1

    # Then verification fails and names exactly that entry
    broken = api.get("/api/audit/verify", Role.ADMIN).json()
    assert broken["ok"] is False
    assert broken["entry_id"] == tampered["id"]
    assert broken["checked"] == tampered["id"] - 1
    assert "altered" in broken["problem"]

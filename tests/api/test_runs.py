"""/api/runs: launching, listing with filters, reading and working on runs."""

from __future__ import annotations

from typing import Any

from hub.services.tokens import Role
from tests.api.conftest import Api


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


def _steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in run["steps"]}


def test_launch_returns_the_run_with_location_and_assignees(api: Api) -> None:
    """201, Location header, assignees from the team (per-client overrides), due dates."""
    response = api.post("/api/runs", Role.MANAGER, {
        "playbook": "user-offboarding", "client": "ACME", "client_name": "Acme Ltd",
        "inputs": {"leaver_name": "Jane Doe", "last_day": "2025-03-07",
                   "has_company_device": "false"}})
    assert response.status_code == 201
    run = response.json()
    assert response.headers["Location"] == f"/api/runs/{run['id']}"
    assert (run["playbook"], run["version"], run["client"], run["client_name"]) == (
        "user-offboarding", 3, "ACME", "Acme Ltd")
    assert run["inputs"]["has_company_device"] is False
    steps = _steps(run)
    # ACME's engineer is erin (client override); service-desk falls back to alice
    assert steps["disable-remote-access"]["assignee"] == "erin"
    assert steps["confirm-leaver"]["assignee"] == "alice"
    assert steps["confirm-leaver"]["due_at"] == "2025-03-03T14:00:00Z"
    assert steps["secure-company-device"]["status"] == "not_applicable"
    assert steps["set-forwarding"]["status"] == "not_applicable"
    assert run["progress"] == {"done": 0, "total": 16}  # with the access-removal sign-off


def test_same_ticket_cannot_launch_the_same_playbook_twice(api: Api) -> None:
    """A second launch from one ticket is 409 naming the existing run."""
    # Given a run launched from ticket cw-prod/1001
    first = api.launch(ticket={"source": "cw-prod", "id": "1001"})
    # When the same ticket launches the same playbook again
    again = api.post("/api/runs", Role.MANAGER, {
        "playbook": "user-offboarding", "client": "ACME",
        "inputs": {"leaver_name": "Jane Doe", "last_day": "2025-03-07"},
        "ticket": {"source": "cw-prod", "id": 1001}})
    # Then 409 with the existing run id, and no second run exists
    assert again.status_code == 409
    assert again.json()["error"] == "duplicate_run"
    assert again.json()["run_id"] == first["id"]
    assert _ids(api.get("/api/runs")) == [first["id"]]


def test_list_filters_by_client_playbook_status_and_assignee(api: Api) -> None:
    """Each filter narrows the list; runs come newest first."""
    # Given leaver runs for ACME and Contoso Dental (19300), and an onboarding for ACME
    acme = api.launch(client="ACME")["id"]
    contoso = api.launch(client="19300", client_name="Contoso Dental")["id"]
    onboarding = api.launch("user-onboarding", "ACME", inputs={
        "new_user_name": "Sam Lee", "start_date": "2025-03-10", "job_title": "Nurse",
        "manager": "Pat Kay"})["id"]
    api.post(f"/api/runs/{onboarding}/cancel", Role.MANAGER, {"reason": "start postponed"})

    # Then: no filter lists them all, newest first
    assert _ids(api.get("/api/runs")) == [onboarding, contoso, acme]
    # Client
    assert _ids(api.get("/api/runs", params={"client": "ACME"})) == [onboarding, acme]
    assert _ids(api.get("/api/runs", params={"client": "nobody"})) == []
    # Playbook
    assert _ids(api.get("/api/runs", params={"playbook": "user-offboarding"})) == [contoso, acme]
    # Status
    assert _ids(api.get("/api/runs", params={"status": "cancelled"})) == [onboarding]
    assert _ids(api.get("/api/runs", params={"status": "active"})) == [contoso, acme]
    # Assignee: Contoso's service desk is bob first; ACME's engineer is erin
    assert _ids(api.get("/api/runs", params={"assignee": "bob", "status": "active"})) == [
        contoso]
    assert _ids(api.get("/api/runs", params={"assignee": "erin", "status": "active"})) == [
        acme]
    # Combined, and paged
    assert _ids(api.get("/api/runs", params={"client": "ACME", "status": "active"})) == [acme]
    assert _ids(api.get("/api/runs", params={"limit": 1, "offset": 1})) == [contoso]


def test_overdue_filter_follows_the_clock(api: Api) -> None:
    """Nothing is overdue at launch; 4 h past the last day (17:00 local) every active leaver
    run is."""
    # Given two leaver runs, one of them finished up to the first step
    a = api.launch(client="ACME")["id"]
    b = api.launch(client="19300")["id"]
    api.post(f"/api/runs/{a}/steps/confirm-leaver/complete", Role.TECHNICIAN, {})
    # Then at launch time nothing is overdue
    assert _ids(api.get("/api/runs", params={"overdue": "true"})) == []
    assert _ids(api.get("/api/runs", params={"overdue": "false"})) == [b, a]
    # When the clock passes 4 hours after 17:00 on the last day (2025-03-07; ACME is in New
    # York, 22:00 UTC; launched 2025-03-03 10:00 UTC)
    api.clock.advance(days=4, hours=16, minutes=1)
    # Then both are overdue, with a count in the summary and flags on the steps
    runs = api.get("/api/runs", params={"overdue": "true"}).json()
    assert [r["id"] for r in runs] == [b, a]
    by_id = {r["id"]: r for r in runs}
    # every 4 h step of b (secure-company-device and the sign-off included)
    assert by_id[b]["overdue"] == 16
    assert by_id[a]["overdue"] == 15  # a's first step was done in time
    assert _ids(api.get("/api/runs", params={"overdue": "false"})) == []
    steps = _steps(api.get(f"/api/runs/{a}").json())
    assert steps["confirm-leaver"]["overdue"] is False
    assert steps["disable-sign-in"]["overdue"] is True
    assert steps["delete-account"]["overdue"] is False  # due in 30 days


def test_detail_shows_blockers_evidence_and_done_by(api: Api) -> None:
    """A completed step carries who/when/evidence/note; locked steps name their blockers."""
    run_id = api.launch()["id"]
    api.clock.advance(minutes=20)
    run = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
                   {"evidence": "HR called back on 0161 555 0100", "note": "genuine"}).json()
    steps = _steps(run)
    done = steps["confirm-leaver"]
    assert (done["status"], done["done_by"], done["done_at"], done["evidence"], done["note"]) == (
        "done", "user:alice", "2025-03-03T10:20:00Z", "HR called back on 0161 555 0100",
        "genuine")
    assert steps["disable-sign-in"]["status"] == "open"
    assert steps["disable-sign-in"]["blockers"] == []
    assert steps["reset-password"]["blockers"] == ["disable-sign-in"]
    assert run["progress"]["done"] == 1
    assert api.get(f"/api/runs/{run_id}").json() == run


def test_assign_comment_and_their_audit_entries(api: Api) -> None:
    """Reassigning and commenting change the run and are audited as the caller."""
    # Given a live run
    run_id = api.launch()["id"]
    # When a technician gives the first step to bob and comments
    assigned = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/assign", Role.TECHNICIAN,
                        {"assignee": "bob"})
    commented = api.post(f"/api/runs/{run_id}/comments", Role.TECHNICIAN,
                         {"text": "HR will call back at 3pm"})
    # Then the step is bob's, and both facts are in the run's audit trail
    assert assigned.status_code == 200
    assert _steps(assigned.json())["confirm-leaver"]["assignee"] == "bob"
    assert commented.status_code == 200
    trail = api.get(f"/api/runs/{run_id}/audit").json()
    assert [(e["action"], e["actor"], e["step_id"]) for e in trail[-2:]] == [
        ("assigned", "user:alice", "confirm-leaver"), ("commented", "user:alice", None)]
    assert trail[-1]["data"] == {"text": "HR will call back at 3pm"}
    assert set(trail[0]) == {"id", "at", "actor", "action", "run_id", "step_id", "event_id",
                             "data", "hash", "prev_hash"}
    # When the step is unassigned, then it has no assignee
    cleared = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/assign", Role.TECHNICIAN,
                       {"assignee": None})
    assert _steps(cleared.json())["confirm-leaver"]["assignee"] is None


def test_assigning_someone_outside_the_team_is_refused(api: Api) -> None:
    """Only members of config/team.yaml can be given a step."""
    run_id = api.launch()["id"]
    response = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/assign", Role.TECHNICIAN,
                        {"assignee": "mallory"})
    assert response.status_code == 409
    assert "mallory" in response.json()["detail"]


def test_finished_and_cancelled_things_cannot_change(api: Api) -> None:
    """Completing a done step, or anything on a cancelled run, is 409 with the reason."""
    run_id = api.launch()["id"]
    api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN, {})
    again = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN, {})
    assert again.status_code == 409
    assert "already done" in again.json()["detail"]
    assert api.post(f"/api/runs/{run_id}/cancel", Role.MANAGER).status_code == 200
    after = api.post(f"/api/runs/{run_id}/steps/disable-sign-in/complete", Role.TECHNICIAN, {})
    assert after.status_code == 409
    assert "cancelled" in after.json()["detail"]
    twice = api.post(f"/api/runs/{run_id}/cancel", Role.MANAGER, {})
    assert twice.status_code == 409


def test_unknown_run_and_step_are_404(api: Api) -> None:
    """Missing runs and steps are 404 with a message, on reads and writes."""
    run_id = api.launch()["id"]
    for response in (
        api.get("/api/runs/999"),
        api.get("/api/runs/999/audit"),
        api.post("/api/runs/999/steps/x/complete", Role.TECHNICIAN, {}),
        api.post(f"/api/runs/{run_id}/steps/no-such-step/complete", Role.TECHNICIAN, {}),
        api.post(f"/api/runs/{run_id}/steps/no-such-step/assign", Role.TECHNICIAN,
                 {"assignee": "bob"}),
        api.get("/api/playbooks/no-such-playbook"),
    ):
        assert response.status_code == 404, response.request.url
        assert response.json()["error"] == "not_found"
        assert response.json()["detail"]

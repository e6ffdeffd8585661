"""Authentication (bearer tokens) and the role each endpoint needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.services.tokens import Role, revoke_token
from hub.store.db import transaction
from hub.store.models import ApiToken, AuditEntry
from tests.api.conftest import START, TOKEN_NAMES, Api

ROLES = [Role.VIEWER, Role.TECHNICIAN, Role.MANAGER, Role.ADMIN]

# (method, path, body, the least role that may call it); {run} is a live offboarding run.
ENDPOINTS = [
    ("GET", "/api/playbooks", None, Role.VIEWER),
    ("GET", "/api/playbooks/user-offboarding", None, Role.VIEWER),
    ("GET", "/api/runs", None, Role.VIEWER),
    ("GET", "/api/runs/{run}", None, Role.VIEWER),
    ("GET", "/api/runs/{run}/audit", None, Role.VIEWER),
    ("POST", "/api/runs/{run}/steps/confirm-leaver/assign", {"assignee": "bob"},
     Role.TECHNICIAN),
    ("POST", "/api/runs/{run}/comments", {"text": "called HR"}, Role.TECHNICIAN),
    ("POST", "/api/runs/{run}/steps/convert-mailbox/skip", {"reason": "no mailbox"},
     Role.TECHNICIAN),
    ("POST", "/api/runs/{run}/steps/confirm-leaver/complete", {"evidence": "HR call"},
     Role.TECHNICIAN),
    ("POST", "/api/runs", {"playbook": "user-offboarding", "client": "ACME",
                           "inputs": {"leaver_name": "X", "last_day": "2025-03-07"}},
     Role.MANAGER),
    ("POST", "/api/runs/{run}/cancel", {"reason": "request withdrawn"}, Role.MANAGER),
    ("GET", "/api/audit/verify", None, Role.ADMIN),
]

PROTECTED_PLAYBOOK = """\
id: change-window
title: Change window
version: 1
steps:
  - id: announce
    title: Announce the change
  - id: cab-approval
    title: Get change-board approval
    skippable: manager
  - id: backup
    title: Take a backup first
    skippable: false
"""


def _audit_count(api: Api) -> int:
    with api.ctx.sessions() as session:
        return int(session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


@pytest.mark.parametrize("method,path,body,needed", ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_each_endpoint_needs_its_role(api: Api, method: str, path: str, body: object,
                                      needed: Role) -> None:
    """Roles below the needed one get 403 naming it; the needed role and above get through."""
    # Given a live run
    url = path.format(run=api.launch()["id"])
    for role in ROLES:
        # When each role calls the endpoint (lowest first, so denials see the fresh run)
        response = api.http.request(method, url, headers=api.auth(role), json=body)
        # Then it is refused exactly for the roles below the needed one
        if ROLES.index(role) < ROLES.index(needed):
            assert response.status_code == 403, (role, response.text)
            assert response.json()["error"] == "forbidden"
            assert f"'{needed.value}'" in response.json()["detail"]
        else:
            assert response.status_code not in (401, 403), (role, response.text)


def test_viewer_cannot_change_anything(api: Api) -> None:
    """Every mutating call by a viewer is 403 and leaves no audit entry."""
    # Given a live run and the audit trail as it is
    run_id = api.launch()["id"]
    before = _audit_count(api)
    # When a viewer tries every change
    for method, path, body, _needed in ENDPOINTS:
        if method == "POST":
            response = api.post(path.format(run=run_id), Role.VIEWER, body)
            # Then each is refused
            assert response.status_code == 403, path
    # And nothing was recorded
    assert _audit_count(api) == before
    assert api.get(f"/api/runs/{run_id}").json()["status"] == "active"


def test_technician_cannot_cancel_a_run(api: Api) -> None:
    """Cancelling needs a manager; the manager's cancel is recorded as theirs."""
    # Given a live run
    run_id = api.launch()["id"]
    # When a technician cancels it
    refused = api.post(f"/api/runs/{run_id}/cancel", Role.TECHNICIAN, {"reason": "dup"})
    # Then 403, and the run stays active
    assert refused.status_code == 403
    assert "manager" in refused.json()["detail"]
    # When the manager cancels it
    done = api.post(f"/api/runs/{run_id}/cancel", Role.MANAGER, {"reason": "dup"})
    # Then it is cancelled, with the reason and the manager as actor
    assert done.status_code == 200
    assert done.json()["status"] == "cancelled"
    assert done.json()["cancel_reason"] == "dup"
    assert api.get(f"/api/runs/{run_id}/audit").json()[-1]["actor"] == "user:max"


def test_protected_steps_need_a_manager_to_skip(make_api: Callable[..., Api],
                                                tmp_path: Path) -> None:
    """`skippable: manager` steps: 403 for a technician, fine for a manager; `false`: never."""
    # Given a playbook with an ordinary, a manager-only and a never-skippable step
    playbooks = tmp_path / "protected-playbooks"
    playbooks.mkdir()
    (playbooks / "change-window.yaml").write_text(PROTECTED_PLAYBOOK)
    api = make_api(playbooks)
    run_id = api.launch("change-window", "ACME", inputs={})["id"]
    url = f"/api/runs/{run_id}/steps/{{}}/skip"
    reason = {"reason": "covered by the weekly change"}

    # When a technician skips the ordinary step, then it is skipped
    ok = api.post(url.format("announce"), Role.TECHNICIAN, reason)
    assert ok.status_code == 200, ok.text
    assert {s["step_id"]: s["status"] for s in ok.json()["steps"]}["announce"] == "skipped"

    # When a technician skips the protected step, then 403 says a manager is needed
    refused = api.post(url.format("cab-approval"), Role.TECHNICIAN, reason)
    assert refused.status_code == 403
    assert "protected" in refused.json()["detail"]
    assert refused.json()["needed_role"] == "manager"

    # When anyone skips the never-skippable step, then 409 explains it can never be skipped
    for role in (Role.TECHNICIAN, Role.MANAGER, Role.ADMIN):
        never = api.post(url.format("backup"), role, reason)
        assert never.status_code == 409
        assert never.json()["error"] == "not_allowed"
        assert "never be skipped" in never.json()["detail"]

    # When the manager skips the protected step, then it is skipped with the reason
    skipped = api.post(url.format("cab-approval"), Role.MANAGER, reason)
    assert skipped.status_code == 200
    step = {s["step_id"]: s for s in skipped.json()["steps"]}["cab-approval"]
    assert (step["status"], step["skip_reason"], step["done_by"]) == (
        "skipped", "covered by the weekly change", "user:max")


def test_shipped_offboarding_revocation_steps_cannot_be_skipped(api: Api) -> None:
    """The leaver playbook's access-revocation steps are `skippable: false`: 409 even for admin."""
    run_id = api.launch()["id"]
    for role in (Role.TECHNICIAN, Role.ADMIN):
        response = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/skip", role,
                            {"reason": "HR confirmed in person"})
        assert response.status_code == 409
        assert "never be skipped" in response.json()["detail"]


@pytest.mark.parametrize("headers,invalid", [
    ({}, False),
    ({"Authorization": "Bearer msh_not-a-real-token"}, True),
    ({"Authorization": "Bearer "}, False),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, False),
    ({"Authorization": "Bearer " + "x" * 5000}, True),
], ids=["missing", "unknown", "empty", "basic", "huge"])
def test_missing_or_bad_token_is_401_with_a_bearer_challenge(
        api: Api, headers: dict[str, str], invalid: bool) -> None:
    """No usable token: 401, ``WWW-Authenticate: Bearer``, a JSON message."""
    response = api.http.get("/api/runs", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert ('error="invalid_token"' in response.headers["WWW-Authenticate"]) is invalid
    assert response.json()["error"] == "unauthorized"


def test_revoked_token_is_refused(api: Api) -> None:
    """A token works until it is revoked, then gets 401."""
    # Given a working viewer token
    assert api.get("/api/runs").status_code == 200
    # When it is revoked
    with transaction(api.ctx.sessions) as session:
        assert revoke_token(session, TOKEN_NAMES[Role.VIEWER], now=START)
    # Then it is refused
    assert api.get("/api/runs").status_code == 401


def test_last_used_is_refreshed_at_most_once_a_minute(api: Api) -> None:
    """Reads do not write the token row on every request, only once it is 60 s stale."""

    def last_used() -> object:
        with api.ctx.sessions() as session:
            return session.execute(select(ApiToken.last_used_at)
                                   .where(ApiToken.name == "vera")).scalar_one()

    # Given a token never used
    assert last_used() is None
    # When it is used, then its last use is recorded
    api.get("/api/runs")
    assert last_used() == START
    # When it is used again 30 s later, then the row is not rewritten
    api.clock.advance(seconds=30)
    api.get("/api/runs")
    assert last_used() == START
    # When it is used 61 s after the recorded use, then it is refreshed
    api.clock.advance(seconds=31)
    api.get("/api/runs")
    assert last_used() == api.clock.now

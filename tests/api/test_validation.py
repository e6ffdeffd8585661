"""Malformed input gets a 4xx that says what is wrong, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from hub.services.tokens import Role
from tests.api.conftest import OFFBOARDING_INPUTS, Api

GOOD = {"playbook": "user-offboarding", "client": "ACME", "inputs": OFFBOARDING_INPUTS}


def _launch(api: Api, body: Any) -> Any:
    return api.post("/api/runs", Role.MANAGER, body)


@pytest.mark.parametrize("body,field,words", [
    ({}, "body.playbook", "required"),
    ({"playbook": "user-offboarding"}, "body.client", "required"),
    ({"playbook": 42, "client": "ACME"}, "body.playbook", "string"),
    ({"playbook": "user-offboarding", "client": ["ACME"]}, "body.client", "string"),
    ({**GOOD, "inputs": ["Jane Doe"]}, "body.inputs", "dictionary"),
    ({**GOOD, "input": {}}, "body.input", "unknown field"),
    ({**GOOD, "client": "   "}, "body.client", "empty"),
    ({**GOOD, "client": "x" * 201}, "body.client", "200"),
    ({**GOOD, "client": "AC\x00ME"}, "body.client", "NUL"),
    ({**GOOD, "inputs": {"leaver_name": "Ja\x00ne", "last_day": "2025-03-07"}},
     "body.inputs", "NUL"),
    ({**GOOD, "ticket": {"source": "cw-prod"}}, "body.ticket.id", "required"),
    ({**GOOD, "ticket": "cw-prod/1"}, "body.ticket", "object"),
    (["not", "an", "object"], "body", "object"),
], ids=["empty", "no-client", "playbook-int", "client-list", "inputs-list", "typo-field",
        "blank-client", "long-client", "nul-client", "nul-input", "ticket-no-id",
        "ticket-string", "body-list"])
def test_launch_body_errors_name_the_field(api: Api, body: Any, field: str, words: str) -> None:
    """Missing fields, wrong types and unknown fields are 422 naming the field."""
    response = _launch(api, body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "invalid_request"
    fields = [e["field"] for e in payload["errors"]]
    assert field in fields
    assert field in payload["detail"]
    assert words.lower() in payload["detail"].lower()


@pytest.mark.parametrize("inputs,status,words", [
    ({"leaver_name": "Jane Doe", "last_day": "2025-03-07", "favourite_colour": "blue"},
     422, "unknown input(s): favourite_colour"),
    ({"last_day": "2025-03-07"}, 422, "input 'leaver_name' (Leaver's full name) is required"),
    ({"leaver_name": "Jane Doe", "last_day": "next friday"}, 422, "last_day"),
    ({"leaver_name": "Jane Doe", "last_day": "2025-03-07", "leaver_email": "jane"},
     422, "email"),
    ({"leaver_name": "Jane Doe", "last_day": "2025-03-07", "convert_mailbox": "maybe"},
     422, "true or false"),
], ids=["unknown-input", "missing-required", "bad-date", "bad-email", "bad-boolean"])
def test_launch_input_errors_say_which_input(api: Api, inputs: dict[str, Any], status: int,
                                             words: str) -> None:
    """The playbook's input checks come back as 422 with the engine's message."""
    response = _launch(api, {**GOOD, "inputs": inputs})
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_inputs"
    assert words in response.json()["detail"]
    assert api.get("/api/runs").json() == []  # nothing half-launched


def test_unknown_playbook_is_404(api: Api) -> None:
    """Launching a playbook that does not exist names it."""
    response = _launch(api, {**GOOD, "playbook": "user-offboardign"})
    assert response.status_code == 404
    assert "user-offboardign" in response.json()["detail"]


def test_malformed_json_is_422(api: Api) -> None:
    """A body that is not JSON says so."""
    response = api.http.post("/api/runs", headers={**api.auth(Role.MANAGER),
                                                   "Content-Type": "application/json"},
                             content=b'{"playbook": "user-offboarding", ')
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": None},
                                  {"reason": 5}, None],
                         ids=["missing", "empty", "spaces", "null", "number", "no-body"])
def test_skip_needs_a_reason(api: Api, body: Any) -> None:
    """Skipping without a real reason is 422 on ``body.reason`` (or the missing body)."""
    run_id = api.launch()["id"]
    response = api.post(f"/api/runs/{run_id}/steps/convert-mailbox/skip", Role.TECHNICIAN, body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] in ("body.reason", "body")


@pytest.mark.parametrize("path,body,field", [
    ("/api/runs/{run}/comments", {}, "body.text"),
    ("/api/runs/{run}/comments", {"text": " "}, "body.text"),
    ("/api/runs/{run}/steps/confirm-leaver/assign", {}, "body.assignee"),
    ("/api/runs/{run}/steps/confirm-leaver/assign", {"assignee": ""}, "body.assignee"),
    ("/api/runs/{run}/steps/confirm-leaver/complete", {"evidence": 12}, "body.evidence"),
    ("/api/runs/{run}/steps/confirm-leaver/complete", {"proof": "x"}, "body.proof"),
    ("/api/runs/{run}/cancel", {"reason": ["a"]}, "body.reason"),
], ids=["comment-missing", "comment-blank", "assign-missing", "assign-empty",
        "evidence-int", "complete-typo", "cancel-list"])
def test_work_bodies_are_checked(api: Api, path: str, body: Any, field: str) -> None:
    """Every mutating body names its faulty field."""
    run_id = api.launch()["id"]
    response = api.post(path.format(run=run_id), Role.MANAGER, body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("path,field", [
    ("/api/runs/abc", "path.run_id"),
    ("/api/runs/0", "path.run_id"),
    ("/api/runs/99999999999999999999999", "path.run_id"),
    ("/api/runs?limit=0", "query.limit"),
    ("/api/runs?limit=100000", "query.limit"),
    ("/api/runs?offset=-1", "query.offset"),
    ("/api/runs?offset=99999999999999999999999", "query.offset"),
    ("/api/runs?overdue=maybe", "query.overdue"),
    ("/api/runs?status=paused", "query.status"),
    ("/api/runs?client=AC%00ME", "query.client"),
], ids=["run-text", "run-zero", "run-huge", "limit-zero", "limit-huge", "offset-negative",
        "offset-huge", "overdue-word", "status-unknown", "client-nul"])
def test_bad_path_and_query_values_are_422(api: Api, path: str, field: str) -> None:
    """Ids and filters out of range or of the wrong type are 422, not a database error."""
    response = api.get(path)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_unknown_route_and_wrong_method_are_json(api: Api) -> None:
    """404 and 405 from routing use the same JSON error shape."""
    missing = api.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "http_404"
    wrong = api.http.delete("/api/runs", headers=api.auth(Role.ADMIN))
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "http_405"


def test_oversized_bodies_are_413(api: Api) -> None:
    """Bodies over 1 MiB are refused, whether announced by Content-Length or streamed."""
    big = b'{"playbook": "user-offboarding", "client": "' + b"x" * 2_000_000 + b'"}'
    headers = {**api.auth(Role.MANAGER), "Content-Type": "application/json"}
    declared = api.http.post("/api/runs", headers=headers, content=big)
    assert declared.status_code == 413
    assert declared.json()["error"] == "too_large"
    streamed = api.http.post("/api/runs", headers=headers,
                             content=(big[i:i + 65536] for i in range(0, len(big), 65536)))
    assert streamed.status_code == 413
    assert api.get("/api/runs").json() == []

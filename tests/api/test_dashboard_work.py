"""The dashboard's forms: my work, completing in place, and the run page's actions.

Every form goes through the API's services, role checks and messages, and carries a
CSRF token bound to the signed-in credential.
"""

from __future__ import annotations

import re

from markupsafe import escape

from connectors.connectwise import ConnectWiseConnector
from connectors.connectwise.config import ConnectWiseConfig
from hub.services.sources import Source, SourceSpec
from hub.services.tokens import Role
from tests.api.conftest import Api


def _sign_in(api: Api, role: Role) -> None:
    """Sign the TestClient in as ``role`` (the token's cookie stays on the client)."""
    api.http.cookies.clear()
    response = api.http.get("/", params={"token": api.tokens[role]}, follow_redirects=False)
    assert response.status_code == 303


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def test_my_work_lists_open_steps_by_due_date(api: Api) -> None:
    """Open steps of the signed-in member, soonest due first; locked steps are not listed."""
    # Given two runs where alice (service desk for ACME) has the first step
    first = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.clock.advance(hours=1)
    second = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    _sign_in(api, Role.TECHNICIAN)  # token "alice"
    # When she opens her work
    html = api.http.get("/work").text
    # Then both runs' first steps are there, the earlier due first, and no locked step
    rows = re.findall(r'id="w-(\d+)-([a-z-]+)"', html)
    assert rows[:2] == [(str(first), "confirm-leaver"), (str(second), "confirm-leaver")]
    assert all(step != "disable-sign-in" for _, step in rows)
    assert "Acme Ltd" in html
    # And another member's work is a select away
    bob = api.http.get("/work", params={"member": "bob"}).text
    assert "Nothing open for Bob Jones" in bob


def test_completing_in_place_records_evidence_and_note(api: Api) -> None:
    """The form on my work completes the step with evidence and note, then returns there."""
    # Given alice's open step
    run_id = api.launch(client="ACME")["id"]
    _sign_in(api, Role.TECHNICIAN)
    csrf = _csrf(api.http.get("/work").text)
    # When she completes it in place
    response = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/complete", data={
        "csrf": csrf, "next": "/work", "evidence": "Called HR back", "note": "all good"},
        follow_redirects=False)
    # Then she is sent back to her work, where the step is gone
    assert response.status_code == 303
    assert response.headers["location"] == "/work"
    assert f'id="w-{run_id}-confirm-leaver"' not in api.http.get("/work").text
    # And the run records who did it, the evidence and the note, and the audit has it
    run = api.get(f"/api/runs/{run_id}").json()
    step = next(s for s in run["steps"] if s["step_id"] == "confirm-leaver")
    assert (step["status"], step["done_by"]) == ("done", "user:alice")
    assert (step["evidence"], step["note"]) == ("Called HR back", "all good")
    page = api.http.get(f"/runs/{run_id}").text
    assert "step done" in page and "Called HR back" in page


def test_forms_without_a_valid_csrf_token_are_refused(api: Api) -> None:
    """A missing, altered or other credential's CSRF token changes nothing (403)."""
    run_id = api.launch(client="ACME")["id"]
    _sign_in(api, Role.MANAGER)
    manager_csrf = _csrf(api.http.get(f"/runs/{run_id}").text)
    _sign_in(api, Role.TECHNICIAN)
    for token in ("", "0" * 64, manager_csrf):
        response = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/complete",
                                 data={"csrf": token}, follow_redirects=False)
        assert response.status_code == 403
        assert "This form has expired" in response.text
    step = api.get(f"/api/runs/{run_id}").json()["steps"][0]
    assert step["status"] == "open"


def test_locked_step_is_refused_with_the_api_message(api: Api) -> None:
    """Completing a locked step shows the StepLocked reason the API gives, with 409."""
    run_id = api.launch(client="ACME")["id"]
    api_reply = api.post(f"/api/runs/{run_id}/steps/disable-sign-in/complete",
                         Role.TECHNICIAN, {})
    assert api_reply.status_code == 409
    reason = api_reply.json()["detail"]
    assert "confirm-leaver" in reason
    _sign_in(api, Role.TECHNICIAN)
    csrf = _csrf(api.http.get(f"/runs/{run_id}").text)
    page = api.http.post(f"/runs/{run_id}/steps/disable-sign-in/complete",
                         data={"csrf": csrf}, follow_redirects=False)
    assert page.status_code == 409
    assert str(escape(reason)) in page.text
    assert 'role="alert"' in page.text


def test_roles_as_in_the_api(api: Api) -> None:
    """A viewer sees no forms and is refused with the API's 403; cancelling needs a manager."""
    run_id = api.launch(client="ACME")["id"]
    # Given a viewer: the run page has no forms, but a CSRF token for sign-out
    _sign_in(api, Role.VIEWER)
    html = api.http.get(f"/runs/{run_id}").text
    assert "/steps/confirm-leaver/complete" not in html
    response = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/complete",
                             data={"csrf": _csrf(html)}, follow_redirects=False)
    assert response.status_code == 403
    api_reply = api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.VIEWER, {})
    assert str(escape(api_reply.json()["detail"])) in response.text
    # And a technician may work on steps but has no cancel form, and is refused one
    _sign_in(api, Role.TECHNICIAN)
    html = api.http.get(f"/runs/{run_id}").text
    assert "/steps/confirm-leaver/complete" in html and f"/runs/{run_id}/cancel" not in html
    refused = api.http.post(f"/runs/{run_id}/cancel", data={"csrf": _csrf(html)},
                            follow_redirects=False)
    assert refused.status_code == 403
    assert str(escape("cancelling a run needs the 'manager' role")) in refused.text
    # And a manager cancels it with a reason
    _sign_in(api, Role.MANAGER)
    html = api.http.get(f"/runs/{run_id}").text
    done = api.http.post(f"/runs/{run_id}/cancel", data={"csrf": _csrf(html),
                                                          "reason": "client withdrew"},
                         follow_redirects=False)
    assert done.status_code == 303
    run = api.get(f"/api/runs/{run_id}").json()
    assert (run["status"], run["cancel_reason"]) == ("cancelled", "client withdrew")


def test_skip_assign_and_comment(api: Api) -> None:
    """Skip needs a reason (the API's validation), assign picks a member, comments audit."""
    run_id = api.launch(client="ACME")["id"]
    _sign_in(api, Role.TECHNICIAN)
    csrf = _csrf(api.http.get(f"/runs/{run_id}").text)
    # When a step is skipped without a reason, then it is refused (422) and stays open
    empty = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/skip",
                          data={"csrf": csrf, "reason": ""}, follow_redirects=False)
    assert empty.status_code == 422
    # And a step that cannot be skipped is refused with the engine's reason
    refused = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/skip",
                            data={"csrf": csrf, "reason": "not needed"},
                            follow_redirects=False)
    assert refused.status_code == 409
    # When a step is given to bob, then the run shows him on it
    moved = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/assign",
                          data={"csrf": csrf, "assignee": "bob"}, follow_redirects=False)
    assert moved.status_code == 303
    step = api.get(f"/api/runs/{run_id}").json()["steps"][0]
    assert step["assignee"] == "bob"
    # And an unknown member is refused with the service's message
    nobody = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/assign",
                           data={"csrf": csrf, "assignee": "mallory"}, follow_redirects=False)
    assert nobody.status_code == 409
    assert "is not a member of the team" in nobody.text
    # When a comment is added, then the audit trail shows it
    said = api.http.post(f"/runs/{run_id}/comment", data={"csrf": csrf, "text": "Rang HR"},
                         follow_redirects=False)
    assert said.status_code == 303 and said.headers["location"].endswith("#audit")
    assert "Rang HR" in api.http.get(f"/runs/{run_id}").text


def test_ticket_is_a_deep_link_into_the_psa(api: Api) -> None:
    """A run launched from a ConnectWise ticket links to that ticket in the PSA's web UI."""
    # Given a ConnectWise source on the NA cloud (typed as its UI host) and a run for a ticket
    config = ConnectWiseConfig.model_validate({
        "site": "na.myconnectwise.net", "company_id": "example", "public_key": "pub",
        "private_key": "priv", "client_id": "6f0f3c2e-0000-4000-8000-000000000000"})
    connector = ConnectWiseConnector("cw-prod", config)
    api.rt.sources.items["cw-prod"] = Source("cw-prod", SourceSpec(vendor="connectwise"),
                                             connector)
    try:
        run_id = api.launch(client="ACME", ticket={"source": "cw-prod", "id": "4711"})["id"]
        other = api.launch(client="BETA", ticket={"source": "halo", "id": "9"})["id"]
        # When the run page is opened
        html = api.get(f"/runs/{run_id}").text
        # Then the ticket links to the UI host (not the api-* host) with the record id
        expected = ("https://na.myconnectwise.net/v4_6_release/services/system_io/Service/"
                    "fv_sr100_request.rsp?service_recid=4711&amp;companyName=example")
        assert f'href="{expected}"' in html
        assert 'rel="noopener noreferrer"' in html
        # And a ticket of a source the hub does not know stays plain text
        assert "halo #9" in api.get(f"/runs/{other}").text
        assert connector.ticket_url("not-a-number") is None
    finally:
        connector.close()

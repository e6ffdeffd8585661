"""The dashboard's sign-offs and evidence forms: the run page offers approve/reject only to
who may (and says why not to others), my work lists the sign-offs waiting for the person,
and the complete form carries the step's typed evidence fields — with the API's rules and
messages."""

from __future__ import annotations

import re

from markupsafe import escape

from hub.services.tokens import Role, create_token
from hub.store.db import transaction
from tests.api.conftest import START, Api
from tests.api.test_approvals import MAILBOX, SIGNOFF, _to_mailbox, _work_until_signoff


def _sign_in(api: Api, token: str) -> None:
    api.http.cookies.clear()
    response = api.http.get("/", params={"token": token}, follow_redirects=False)
    assert response.status_code == 303


def _token(api: Api, name: str) -> str:
    with transaction(api.ctx.sessions) as session:
        return create_token(session, name=name, role=Role.TECHNICIAN, now=START)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def _approve_action(run_id: int) -> str:
    return f'action="/runs/{run_id}/steps/{SIGNOFF}/approve"'


def test_run_page_offers_the_sign_off_only_to_who_may(api: Api) -> None:
    """alice (did the steps) and bob (no role) see why not; max sees approve and reject."""
    # Given an offboarding worked by alice up to its sign-off
    run_id = api.launch()["id"]
    _work_until_signoff(api, run_id)
    # When alice opens the run page
    _sign_in(api, api.tokens[Role.TECHNICIAN])
    html = api.http.get(f"/runs/{run_id}").text
    # Then the sign-off says who approves it, and why she may not
    assert "Sign-off by <strong>service-manager</strong>" in html
    assert _approve_action(run_id) not in html
    assert str(escape("four-eyes: user:alice did disable-sign-in")) in html
    # When bob opens it
    _sign_in(api, _token(api, "bob"))
    html = api.http.get(f"/runs/{run_id}").text
    assert _approve_action(run_id) not in html
    assert str(escape("'service-manager' role")) in html
    # When max opens it
    _sign_in(api, api.tokens[Role.MANAGER])
    html = api.http.get(f"/runs/{run_id}").text
    # Then he can approve or reject, choosing the steps to reopen
    assert _approve_action(run_id) in html
    assert f'action="/runs/{run_id}/steps/{SIGNOFF}/reject"' in html
    assert 'name="reopen.remove-mfa-methods"' in html
    # and no "Mark done" form is offered for the sign-off
    assert f'action="/runs/{run_id}/steps/{SIGNOFF}/complete"' not in html


def test_approving_and_rejecting_from_the_run_page(api: Api) -> None:
    """The forms go through the run service: a refusal re-renders with the API's message,
    a rejection reopens the ticked steps, an approval finishes the sign-off."""
    run_id = api.launch()["id"]
    _work_until_signoff(api, run_id)
    # When alice posts the approve form anyway (a stale page)
    _sign_in(api, api.tokens[Role.TECHNICIAN])
    csrf = _csrf(api.http.get(f"/runs/{run_id}").text)
    refused = api.http.post(f"/runs/{run_id}/steps/{SIGNOFF}/approve",
                            data={"csrf": csrf, "comment": "mine"})
    # Then the page is shown again with the 403 and the four-eyes reason
    assert refused.status_code == 403
    assert str(escape("four-eyes: user:alice did disable-sign-in")) in refused.text
    # When max rejects, ticking the MFA step
    _sign_in(api, api.tokens[Role.MANAGER])
    csrf = _csrf(api.http.get(f"/runs/{run_id}").text)
    rejected = api.http.post(f"/runs/{run_id}/steps/{SIGNOFF}/reject", data={
        "csrf": csrf, "reason": "FIDO key left", "reopen.remove-mfa-methods": "yes"},
        follow_redirects=False)
    assert rejected.status_code == 303
    run = api.get(f"/api/runs/{run_id}").json()
    steps = {s["step_id"]: s for s in run["steps"]}
    assert steps["remove-mfa-methods"]["status"] == "open"
    assert steps["reset-password"]["status"] == "done"
    html = api.http.get(f"/runs/{run_id}").text
    assert "Rejected by user:max: FIDO key left" in html
    # When alice redoes it and max approves from the page
    api.post(f"/api/runs/{run_id}/steps/remove-mfa-methods/complete", Role.TECHNICIAN,
             {"evidence": "none left"}).raise_for_status()
    csrf = _csrf(api.http.get(f"/runs/{run_id}").text)
    approved = api.http.post(f"/runs/{run_id}/steps/{SIGNOFF}/approve",
                             data={"csrf": csrf, "comment": "checked again"},
                             follow_redirects=False)
    assert approved.status_code == 303
    signoff = next(s for s in api.get(f"/api/runs/{run_id}").json()["steps"]
                   if s["step_id"] == SIGNOFF)
    assert (signoff["status"], signoff["done_by"]) == ("done", "user:max")


def test_my_work_lists_the_sign_offs_waiting_for_me(api: Api) -> None:
    """max sees the open sign-off he may approve and approves it in place; alice, who did
    the steps, does not get it in her list."""
    run_id = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    _work_until_signoff(api, run_id)
    row = f'id="a-{run_id}-{SIGNOFF}"'
    _sign_in(api, api.tokens[Role.TECHNICIAN])
    assert row not in api.http.get("/work").text
    _sign_in(api, api.tokens[Role.MANAGER])
    html = api.http.get("/work").text
    assert "Waiting for your approval" in html
    assert row in html
    # When he approves from there
    approved = api.http.post(f"/runs/{run_id}/steps/{SIGNOFF}/approve", data={
        "csrf": _csrf(html), "next": "/work", "comment": "ok"}, follow_redirects=False)
    # Then he is back on his work, and it is no longer waiting
    assert approved.status_code == 303
    assert approved.headers["location"] == "/work"
    after = api.http.get("/work").text
    assert row not in after
    assert "No sign-off is waiting for you." in after


def test_complete_form_has_the_evidence_fields_and_checks_them(api: Api) -> None:
    """The run page's complete form shows typed inputs; missing values are refused with the
    field's message; good ones are shown as the step's evidence."""
    run_id = _to_mailbox(api)
    _sign_in(api, api.tokens[Role.TECHNICIAN])
    html = api.http.get(f"/runs/{run_id}").text
    assert 'name="f.converted_to"' in html and "<option value=\"shared mailbox\">" in html
    assert 'type="checkbox" id="fx-convert-mailbox-before_licence" name="f.before_licence"' \
        in html
    assert "I converted the mailbox before removing the licence" in html
    # When completed without ticking the confirmation
    csrf = _csrf(html)
    path = f"/runs/{run_id}/steps/convert-mailbox/complete"
    form = {"csrf": csrf, "f.converted_to": "shared mailbox", "f.delegate": "Pat"}
    refused = api.http.post(path, data=form)
    assert refused.status_code == 422
    assert str(escape('before_licence: must be ticked: "I converted the mailbox before '
                      'removing the licence"')) in refused.text
    # When completed with every field
    done = api.http.post(path, data={**form, "f.before_licence": "yes"},
                         follow_redirects=False)
    assert done.status_code == 303
    page = api.http.get(f"/runs/{run_id}").text
    assert "The mailbox is now: shared mailbox; Full Access granted to (name or email): Pat" \
        in page
    assert MAILBOX["converted_to"] in page

"""The web dashboard: sign-in, the multi-client overview and the run page."""

from __future__ import annotations

import re

from hub.services.tokens import Role
from tests.api.conftest import Api

XSS = "<script>alert('pwned')</script>"


def _sign_in(api: Api, role: Role = Role.VIEWER) -> None:
    """Sign the TestClient in through ``?token=`` (the cookie stays on the client)."""
    response = api.http.get("/", params={"token": api.tokens[role]}, follow_redirects=False)
    assert response.status_code == 303


def test_without_a_token_the_sign_in_page_is_shown(api: Api) -> None:
    """No token: 401 with a sign-in form, and nothing about the runs."""
    api.launch(client_name="Acme Ltd")
    response = api.http.get("/")
    assert response.status_code == 401
    assert 'action="/login"' in response.text
    assert "Acme Ltd" not in response.text


def test_token_in_the_url_becomes_an_httponly_cookie(api: Api) -> None:
    """``?token=`` is accepted once, kept in an HttpOnly cookie, and removed from the URL."""
    # When the dashboard is opened with a token in the URL (and a filter)
    response = api.http.get("/", params={"token": api.tokens[Role.VIEWER], "client": "ACME"},
                            follow_redirects=False)
    # Then it redirects to the same page without the token, setting the cookie
    assert response.status_code == 303
    assert response.headers["location"] == "/?client=ACME"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("msphub_token=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    # And the cookie alone signs the next request in
    assert api.http.get("/").status_code == 200


def test_bad_token_in_the_url_or_cookie_shows_the_sign_in_page(api: Api) -> None:
    """An invalid token never signs in; a stale cookie is cleared."""
    bad_url = api.http.get("/", params={"token": "msh_wrong"}, follow_redirects=False)
    assert bad_url.status_code == 401
    assert "not valid" in bad_url.text
    api.http.cookies.set("msphub_token", "msh_stale")
    stale = api.http.get("/")
    assert stale.status_code == 401
    assert 'msphub_token=""' in stale.headers["set-cookie"]


def test_sign_in_form_and_sign_out(api: Api) -> None:
    """The form sets the cookie and returns to the page asked for; sign-out clears it."""
    # Given a run page asked for without a token
    run_id = api.launch()["id"]
    # When the sign-in form is posted with a valid token
    response = api.http.post("/login", data={"token": api.tokens[Role.TECHNICIAN],
                                              "next": f"/runs/{run_id}"},
                             follow_redirects=False)
    # Then it redirects back there, signed in
    assert response.status_code == 303
    assert response.headers["location"] == f"/runs/{run_id}"
    assert api.http.get(f"/runs/{run_id}").status_code == 200
    # And an off-site "next" is ignored
    offsite = api.http.post("/login", data={"token": api.tokens[Role.VIEWER],
                                            "next": "//evil.example/"}, follow_redirects=False)
    assert offsite.headers["location"] == "/"
    # And a wrong token is refused
    wrong = api.http.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401
    # When signing out without the page's CSRF token, then nothing happens
    assert api.http.post("/logout", follow_redirects=False).status_code == 403
    # When signing out from the page's form, then the cookie is cleared
    page = api.http.get("/").text
    csrf = re.search(r'action="/logout">\s*<input type="hidden" name="csrf" value="([0-9a-f]+)"',
                     page)
    assert csrf is not None
    out = api.http.post("/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303
    assert 'msphub_token=""' in out.headers["set-cookie"]
    api.http.cookies.clear()
    assert api.http.get("/").status_code == 401


def test_run_page_shows_steps_evidence_and_audit(api: Api) -> None:
    """Every step with its state, assignee, due time, evidence; and the audit trail."""
    # Given a run with one step done with evidence
    run_id = api.launch(client_name="Acme Ltd")["id"]
    api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
             {"evidence": "Called HR back on the number in Hudu"})
    # When its page is opened
    page = api.http.get(f"/runs/{run_id}", headers=api.auth(Role.VIEWER))
    # Then it shows the steps, states, people, evidence, and the audit trail
    assert page.status_code == 200
    html = page.text
    for text in ("Leaver (user offboarding)", "Acme Ltd", "Block sign-in",
                 "Reset the password to a long random value", "Called HR back on the number",
                 "Alice Smith", "Erin Walsh", "user:alice", "user:max", "launched", "step done",
                 "Waits for: Block sign-in", "Mon 03 Mar, 14:00", "Revoke access"):
        assert text in html, text
    assert "s-not_applicable" in html  # set-forwarding does not apply


def test_unknown_run_page_is_404(api: Api) -> None:
    """A run that does not exist gives a 404 page."""
    page = api.http.get("/runs/4242", headers=api.auth(Role.VIEWER))
    assert page.status_code == 404
    assert "Run 4242 not found" in page.text


def test_everything_is_escaped(api: Api) -> None:
    """A client name, input or evidence holding HTML is shown as text, never run."""
    # Given a run whose client name, inputs and evidence contain a script tag
    run_id = api.launch(client="XSS", client_name=XSS,
                        inputs={"leaver_name": XSS, "last_day": "2025-03-07"})["id"]
    api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
             {"evidence": XSS, "note": XSS})
    api.post(f"/api/runs/{run_id}/comments", Role.TECHNICIAN, {"text": XSS})
    # When the overview and the run page are rendered
    for path in ("/", f"/runs/{run_id}"):
        html = api.http.get(path, headers=api.auth(Role.VIEWER)).text
        # Then the markup appears escaped and never raw
        assert "<script>" not in html, path
        assert "&lt;script&gt;" in html, path

"""The completion record and its share links: signed, expiring, revocable, every view audited."""

from __future__ import annotations

import re
import string

from markupsafe import escape

from hub.services.tokens import Role
from tests.api.conftest import Api


def _sign_in(api: Api, role: Role) -> None:
    api.http.cookies.clear()
    response = api.http.get("/", params={"token": api.tokens[role]}, follow_redirects=False)
    assert response.status_code == 303


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match is not None
    return match.group(1)


def _share(api: Api, run_id: int, days: str = "30") -> str:
    """Create a link as the manager; returns its path (/shared/…)."""
    _sign_in(api, Role.MANAGER)
    page = api.http.get(f"/runs/{run_id}/record").text
    made = api.http.post(f"/runs/{run_id}/share", data={"csrf": _csrf(page), "days": days})
    assert made.status_code == 201, made.text
    match = re.search(r'class="share-url">https?://[^/]+(/shared/[^<]+)</code>', made.text)
    assert match is not None
    return match.group(1)


def _audit_actions(api: Api, run_id: int) -> list[str]:
    return [e["action"] for e in api.get(f"/api/runs/{run_id}/audit").json()]


def test_record_page_lists_every_step_with_evidence(api: Api) -> None:
    """Signed-in people get a printable record: steps, outcomes, who, evidence, inputs."""
    run_id = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.post(f"/api/runs/{run_id}/steps/confirm-leaver/complete", Role.TECHNICIAN,
             {"evidence": "Called HR back"})
    _sign_in(api, Role.VIEWER)
    page = api.http.get(f"/runs/{run_id}/record")
    assert page.status_code == 200
    for text in ("Completion record for", "Acme Ltd", "Called HR back", "user:alice",
                 "Jane Doe"):
        assert text in page.text, text
    assert "Share with the client" not in page.text  # a viewer cannot share
    assert "@media print" in api.http.get("/static/dashboard.css").text


def test_shared_link_shows_that_run_only_and_each_view_is_audited(api: Api) -> None:
    """The client's link needs no sign-in, shows that run's record and no other data."""
    # Given two runs and a link to the first
    shared = api.launch(client="ACME", client_name="Acme Ltd")["id"]
    api.launch(client="BETA", client_name="Beta Builders")
    path = _share(api, shared)
    assert "share_link_created" in _audit_actions(api, shared)
    # When someone without any cookie opens it
    api.http.cookies.clear()
    page = api.http.get(path)
    # Then they see that run's record and nothing that leads elsewhere in the hub
    assert page.status_code == 200
    assert "Acme Ltd" in page.text and "Beta Builders" not in page.text
    assert 'href="/runs/' not in page.text and 'href="/ops' not in page.text
    assert "Share with the client" not in page.text
    # And the view is an audit fact of that run
    api.http.get(path)
    assert _audit_actions(api, shared).count("shared_record_viewed") == 2
    # And the page sends no referrer off-site and is not cached
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"


def test_altered_expired_and_revoked_links_are_refused(api: Api) -> None:
    """An altered token fails the signature; expiry and revocation come from the row."""
    run_id = api.launch(client="ACME")["id"]
    path = _share(api, run_id, days="1")
    # An altered token
    api.http.cookies.clear()
    token = path.rsplit("/", 1)[1]
    # The last character of a base64 signature has spare bits: the spellings that differ
    # only there decode to the same signature, and they are refused all the same.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet.index(token[-1])
    for spare in range(4):
        altered = token[:-1] + alphabet[(last & ~3) | spare]
        if altered != token:
            refused = api.http.get(f"/shared/{altered}")
            assert refused.status_code == 403 and "not valid" in refused.text
    middle = len(token) // 2
    altered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]
    assert api.http.get(f"/shared/{altered}").status_code == 403
    # An expired one
    api.clock.advance(days=1, seconds=1)
    expired = api.http.get(path)
    assert expired.status_code == 403 and "expired" in expired.text
    # A revoked one
    live = _share(api, run_id)
    page = api.http.get(f"/runs/{run_id}/record").text
    link_id = re.findall(r"/share/(\d+)/revoke", page)[0]
    gone = api.http.post(f"/runs/{run_id}/share/{link_id}/revoke", data={"csrf": _csrf(page)})
    assert gone.status_code == 200
    api.http.cookies.clear()
    revoked = api.http.get(live)
    assert revoked.status_code == 403 and "revoked" in revoked.text
    assert "share_link_revoked" in _audit_actions(api, run_id)


def test_only_a_manager_shares(api: Api) -> None:
    """A technician posting the share form is refused with the API's kind of message."""
    run_id = api.launch(client="ACME")["id"]
    _sign_in(api, Role.TECHNICIAN)
    page = api.http.get(f"/runs/{run_id}").text  # the record has no form for a technician
    refused = api.http.post(f"/runs/{run_id}/share", data={"csrf": _csrf(page), "days": "30"})
    assert refused.status_code == 403
    assert str(escape("sharing a run's record needs the 'manager' role")) in refused.text
    no_csrf = api.http.post(f"/runs/{run_id}/share", data={"days": "30"})
    assert no_csrf.status_code == 403 and "This form has expired" in no_csrf.text
    _sign_in(api, Role.MANAGER)
    page = api.http.get(f"/runs/{run_id}/record").text
    too_long = api.http.post(f"/runs/{run_id}/share", data={"csrf": _csrf(page), "days": "999"})
    assert too_long.status_code == 409 and "365 days" in too_long.text

"""The clients page's suggested links: fetched on demand from the sources (here the Datto
RMM sandbox), listed with confidence and reasons, accepted with a CSRF form that links
the record as ``msphub clients link`` does."""

from __future__ import annotations

import html as htmllib
from typing import Any

from markupsafe import escape

from hub.services.tokens import Role
from tests.api.conftest import Api
from tests.api.test_clients_suggestions import rmm, uids  # noqa: F401  (fixtures)
from tests.api.test_dashboard_ops import _csrf, _sign_in


def _rows(page: str) -> dict[str, str]:
    """Suggestion rows by record name."""
    table = page.split('<table class="suggested">')[1].split("</table>")[0]
    rows = {}
    for row in table.split("<tr")[2:]:
        name = htmllib.unescape(row.split("<td>", 1)[1].split("<div", 1)[0]).strip()
        rows[name] = row
    return rows


def test_manager_finds_and_accepts_a_suggested_link(api: Api, uids: dict[str, str]) -> None:  # noqa: F811
    """Likely links first with confidence and reasons; the ambiguous one is a choice; the
    unrelated ones are only counted; accepting links the site and it leaves the list."""
    # Given a manager on the clients page: the suggestions are not read until asked for
    _sign_in(api, Role.MANAGER)
    page = api.http.get("/ops/clients").text
    assert "Find suggested links" in page and 'class="suggested"' not in page
    # When she asks for them
    found = api.http.get("/ops/clients/suggestions")
    assert found.status_code == 200, found.text
    rows = _rows(found.text)
    # Then the confident ones have an Accept button naming the client, with the reasons
    hq = rows["Acme Manufacturing - HQ"]
    service = {p["vendor_name"]: p for p in
               api.get("/api/clients/suggestions", Role.MANAGER).json()["proposals"]}
    best = service["Acme Manufacturing - HQ"]
    assert f'<td class="num">{round(best["confidence"] * 100)}%' in hq
    assert ">Accept</button>" in hq and 'name="client" value="acme"' in hq
    assert f'name="vendor_id" value="{uids["Acme Manufacturing - HQ"]}"' in hq
    for reason in best["reasons"]:  # the service's reasons, each shown
        assert f"<div>{escape(reason)}</div>" in hq
    # And the ambiguous "Acme" is a choice between the two Acme clients, not an Accept
    acme = rows["Acme"]
    assert ">Accept</button>" not in acme and "ambiguous" in acme
    assert 'value="acme"' in acme and 'value="acme-logistics"' in acme
    # And records no client comes close to are not listed
    assert "Wayne Enterprises" not in rows and "Globe Express" not in rows
    assert "Read datto:" in found.text
    # When she accepts Globex Corp.
    globex = rows["Globex Corp."]
    response = api.http.post("/ops/clients/link", data={
        "csrf": _csrf(found.text), "back": "suggestions", "kind": "",
        "client": "globex", "source": "datto", "type": "site",
        "vendor_id": uids["Globex Corp."], "vendor_name": "Globex Corp."},
        follow_redirects=False)
    assert 'name="client" value="globex"' in globex
    # Then the site is linked, as the API shows, and the suggestions (read again) drop it
    assert response.status_code == 303
    assert response.headers["location"] == "/ops/clients/suggestions"
    links = api.get("/api/clients/globex").json()["links"]
    assert ("datto", "site", uids["Globex Corp."]) in {
        (x["source"], x["type"], x["vendor_id"]) for x in links}
    again = _rows(api.http.get(response.headers["location"]).text)
    assert "Globex Corp." not in again and "Acme Manufacturing - HQ" in again


def test_only_rmm_or_psa_and_who_may(api: Api, uids: dict[str, str]) -> None:  # noqa: F811
    """kind=psa reads no Datto site; a technician may not fetch or accept; no CSRF, no link."""
    _sign_in(api, Role.MANAGER)
    psa = api.http.get("/ops/clients/suggestions", params={"kind": "psa"}).text
    assert "Read no source that lists its records" in psa and "Acme Manufacturing - HQ" not in psa
    assert '<option value="psa" selected>' in psa
    no_csrf = api.http.post("/ops/clients/link", data={
        "client": "globex", "source": "datto", "type": "site",
        "vendor_id": uids["Globex Corp."]}, follow_redirects=False)
    assert no_csrf.status_code == 403
    assert api.get("/api/clients/globex").json()["links"] == [
        x for x in api.get("/api/clients/globex").json()["links"] if x["source"] != "datto"]
    _sign_in(api, Role.TECHNICIAN)
    assert api.http.get("/ops/clients/suggestions").status_code == 403


def test_a_source_that_cannot_be_read_is_named(
        api: Api, uids: dict[str, str], rmm: Any) -> None:  # noqa: F811
    """Refused credentials: the page still opens, naming the source and the error."""
    rmm.sandbox.fail_next(5, status=403)
    _sign_in(api, Role.MANAGER)
    page = api.http.get("/ops/clients/suggestions")
    assert page.status_code == 200
    assert "Source datto could not be read: AuthFailed" in page.text
    assert 'class="suggested"' not in page.text and "Read no source" in page.text

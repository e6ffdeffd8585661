"""Sign-in with named users: argon2 hashes, signed HttpOnly session cookies, roles, CLI."""

from __future__ import annotations

import re

from hub.cli.app import app as cli_typer
from hub.services import users
from hub.services.tokens import Role
from hub.settings import get_settings
from hub.store.db import transaction
from hub.store.models import User
from tests.api.conftest import Api
from tests.cli.conftest import Cli, cli  # noqa: F401  (the CLI fixture, for the users commands)

PASSWORD = "correct horse battery staple"


def _add(api: Api, name: str, role: Role, password: str = PASSWORD) -> None:
    with transaction(api.ctx.sessions) as session:
        users.add_user(session, name, role, password, now=api.clock())


def _login(api: Api, name: str, password: str = PASSWORD, next_: str = "/") -> str:
    """Post the sign-in form; returns the Set-Cookie header (asserting a 303)."""
    response = api.http.post("/login", data={"username": name, "password": password,
                                              "next": next_}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["set-cookie"]


def test_password_is_stored_as_argon2id(api: Api) -> None:
    """The table holds an argon2id hash, never the password; rules refuse weak ones."""
    _add(api, "sam", Role.TECHNICIAN)
    with api.ctx.sessions() as session:
        row = session.query(User).one()
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
    with transaction(api.ctx.sessions) as session:
        for bad_name, bad_password, message in (
                ("sam", PASSWORD, "already exists"), ("new", "short", "at least 12"),
                ("has space", PASSWORD, "user name")):
            try:
                users.add_user(session, bad_name, Role.VIEWER, bad_password, now=api.clock())
            except users.NotAllowed as exc:
                assert message in exc.reason
            else:
                raise AssertionError(f"{bad_name!r} was accepted")


def test_sign_in_sets_a_signed_httponly_session(api: Api) -> None:
    """Name and password give a signed HttpOnly session; the user works with their role."""
    # Given a technician user who is a team member (alice)
    _add(api, "alice", Role.TECHNICIAN)
    run_id = api.launch(client="ACME")["id"]
    # When she signs in
    cookie = _login(api, "alice", next_=f"/runs/{run_id}")
    # Then the session cookie is HttpOnly, SameSite=Lax, and signs the pages in
    assert cookie.startswith("msphub_session=")
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    page = api.http.get(f"/runs/{run_id}")
    assert page.status_code == 200 and "alice" in page.text
    # And her forms work (CSRF bound to the session), recorded as user:alice
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert csrf is not None
    done = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/complete",
                         data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert done.status_code == 303
    step = api.get(f"/api/runs/{run_id}").json()["steps"][0]
    assert (step["status"], step["done_by"]) == ("done", "user:alice")


def test_wrong_password_unknown_user_and_viewer_role(api: Api) -> None:
    """A wrong password or unknown name gets the same refusal; a viewer user only reads."""
    _add(api, "vic", Role.VIEWER)
    for name, password in (("vic", "wrong password!"), ("nobody", PASSWORD)):
        response = api.http.post("/login", data={"username": name, "password": password},
                                 follow_redirects=False)
        assert response.status_code == 401
        assert "do not match" in response.text
    _login(api, "vic")
    run_id = api.launch(client="ACME")["id"]
    page = api.http.get(f"/runs/{run_id}").text
    assert "/steps/confirm-leaver/complete" not in page
    assert api.http.get("/ops/events").status_code == 403


def test_altered_or_outdated_sessions_are_refused(api: Api) -> None:
    """A tampered cookie, or one from before a password change, shows the sign-in page."""
    # Given a signed-in manager
    _add(api, "mia", Role.MANAGER)
    _login(api, "mia")
    value = api.http.cookies["msphub_session"]
    assert api.http.get("/").status_code == 200
    # When the cookie is altered, then it is refused and cleared
    api.http.cookies.clear()
    api.http.cookies.set("msphub_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    refused = api.http.get("/")
    assert refused.status_code == 401
    assert "session has ended" in refused.text
    # When her password changes, then the old (valid, signed) session is refused
    api.http.cookies.clear()
    api.http.cookies.set("msphub_session", value)
    assert api.http.get("/").status_code == 200
    api.clock.advance(minutes=1)
    with transaction(api.ctx.sessions) as session:
        users.set_password(session, "mia", "another long password", now=api.clock())
    assert api.http.get("/").status_code == 401
    # And signing in with the new password works, and sign-out clears the session
    api.http.cookies.clear()
    _login(api, "mia", "another long password")
    assert api.http.get("/").status_code == 200
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', api.http.get("/").text)
    assert csrf is not None
    out = api.http.post("/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert 'msphub_session=""' in out.headers["set-cookie"]


def test_users_cli_add_passwd_list(cli: Cli) -> None:  # noqa: F811
    """msphub users add | passwd | list, with passwords read from standard input."""
    get_settings.cache_clear()
    added = cli.runner.invoke(cli_typer, ["users", "add", "sam", "--role", "technician",
                                          "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "user 'sam' (technician) created" in added.output
    short = cli.runner.invoke(cli_typer, ["users", "add", "tim", "--role", "viewer",
                                          "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12" in short.output
    changed = cli.runner.invoke(cli_typer, ["users", "passwd", "sam", "--password-stdin"],
                                input="a brand new password\n")
    assert changed.exit_code == 0 and "sessions have ended" in changed.output
    missing = cli.runner.invoke(cli_typer, ["users", "passwd", "zed", "--password-stdin"],
                                input=PASSWORD + "\n")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    listed = cli("users", "list")
    assert listed.exit_code == 0
    assert "sam" in listed.output and "technician" in listed.output
    assert "tim" not in listed.output


def test_a_refused_user_is_named_as_a_user(api: Api) -> None:
    """The API's role message, naming the signed-in user rather than a token."""
    _add(api, "vic", Role.VIEWER)
    run_id = api.launch(client="ACME")["id"]
    _login(api, "vic")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', api.http.get(f"/runs/{run_id}").text)
    assert csrf is not None
    refused = api.http.post(f"/runs/{run_id}/steps/confirm-leaver/complete",
                            data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert refused.status_code == 403
    assert "user &#39;vic&#39; has &#39;viewer&#39;" in refused.text

"""Tests for the team file: loading, validation errors and role resolution."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from hub.config.calendars import load_calendars
from hub.config.team import load_team
from hub.core.calendars import DEFAULT_CALENDAR, Calendar
from hub.core.team import Member, Team
from hub.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

TEAM_YAML = """
members:
  - id: alice
    name: Alice Smith
    email: alice@msp.example
  - id: bob
    name: Bob Jones
  - id: carol
    name: Carol Nguyen
    calendar: default
  - id: erin
    name: Erin Walsh
roles:
  service-desk: [alice, bob]
  engineer: carol
clients:
  ACME:
    name: Acme Ltd
    calendar: uk-office
    roles:
      engineer: erin
  19300:
    roles:
      service-desk: [bob, alice]
"""

CALENDARS = {
    "default": DEFAULT_CALENDAR,
    "uk-office": Calendar(name="uk-office", timezone="Europe/London"),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return load_team(write(tmp_path, TEAM_YAML), CALENDARS)


@pytest.mark.parametrize(
    ("role", "client_id", "primary", "members"),
    [
        pytest.param("service-desk", None, "alice", ["alice", "bob"], id="global-list"),
        pytest.param("engineer", None, "carol", ["carol"], id="global-single"),
        pytest.param("engineer", "ACME", "erin", ["erin"], id="client-override"),
        pytest.param("service-desk", "ACME", "alice", ["alice", "bob"], id="client-falls-back"),
        pytest.param("engineer", "UNKNOWN", "carol", ["carol"], id="unknown-client"),
        pytest.param("service-desk", "19300", "bob", ["bob", "alice"], id="numeric-client-id"),
        pytest.param("security", None, None, [], id="unknown-role"),
        pytest.param("security", "ACME", None, [], id="unknown-role-for-client"),
    ],
)
def test_role_resolution(team: Team, role: str, client_id: str | None, primary: str | None,
                         members: list[str]) -> None:
    """A client override wins; otherwise the global primary; an unknown role gives None."""
    assert team.resolve(role, client_id) == primary
    assert team.members_for(role, client_id) == members


@pytest.mark.parametrize(
    ("client_id", "calendar"),
    [("ACME", "uk-office"), ("19300", "default"), ("OTHER", "default"), (None, "default")],
)
def test_calendar_for_client(team: Team, client_id: str | None, calendar: str) -> None:
    """A client's calendar is its override, else `default`."""
    assert team.calendar_for(client_id) == calendar


def test_member_lookup(team: Team) -> None:
    """member(id) returns the technician, or None for an id outside the team."""
    assert team.member("alice") == Member(id="alice", name="Alice Smith",
                                          email="alice@msp.example")
    assert team.member("zed") is None


@pytest.mark.parametrize("text", [None, "", "# nothing configured yet\n"])
def test_missing_or_empty_file_gives_empty_team(tmp_path: Path, text: str | None) -> None:
    """No team file (or an empty one): every role resolves to None, nothing fails."""
    path = tmp_path / "team.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    team = load_team(path)
    assert team == Team()
    assert team.resolve("engineer", "ACME") is None
    assert team.calendar_for("ACME") == "default"


def test_shipped_example_loads_against_shipped_calendars() -> None:
    """config/team.yaml is valid against config/calendars.yaml and overrides ACME."""
    calendars = load_calendars(REPO / "config" / "calendars.yaml")
    team = load_team(REPO / "config" / "team.yaml", calendars)
    for role in ("service-desk", "engineer", "senior-engineer", "security", "account-manager",
                 "service-manager"):
        assert team.resolve(role, None) is not None, role
    assert team.resolve("engineer", "ACME") != team.resolve("engineer", None)
    assert team.calendar_for("ACME") in calendars


def test_env_reference_is_expanded(tmp_path: Path) -> None:
    """`${VAR}` in the team file is replaced from the env mapping passed in."""
    path = write(tmp_path, """
        members:
          - {id: alice, name: Alice, email: "${ALICE_EMAIL}"}
    """)
    team = load_team(path, env={"ALICE_EMAIL": "a@msp.example"})
    assert team.members[0].email == "a@msp.example"


def test_calendars_are_only_checked_when_given(tmp_path: Path) -> None:
    """Without a calendars mapping, calendar names are accepted as written."""
    path = write(tmp_path, "clients:\n  ACME:\n    calendar: nowhere\n")
    assert load_team(path).calendar_for("ACME") == "nowhere"


MEMBERS = "members:\n  - {id: alice, name: Alice}\n  - {id: bob, name: Bob}\n"


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        pytest.param("members:\n  - id: alice\n    name: [Alice\n", 4, None,
                     "YAML syntax error", id="broken-yaml"),
        pytest.param(MEMBERS + "roles:\n  engineer: carol\n", 5, "roles.engineer",
                     "unknown member 'carol'", id="unknown-member-in-role"),
        pytest.param(MEMBERS + "roles:\n  engineer: alcie\n", 5, "roles.engineer",
                     "unknown member 'alcie' (did you mean 'alice'?)", id="misspelt-member"),
        pytest.param(MEMBERS + "roles:\n  service-desk:\n    - alice\n    - carl\n", 7,
                     "roles.service-desk.1", "unknown member 'carl'", id="unknown-member-in-list"),
        pytest.param(MEMBERS + "clients:\n  ACME:\n    roles:\n      engineer: zed\n", 7,
                     "clients.ACME.roles.engineer", "unknown member 'zed'",
                     id="unknown-member-in-client"),
        pytest.param(MEMBERS + "  - {id: alice, name: Alice Again}\n", 4, "members.2.id",
                     "duplicate member id 'alice'", id="duplicate-id"),
        pytest.param(MEMBERS + "clients:\n  ACME:\n    calendar: mars\n", 6,
                     "clients.ACME.calendar", "unknown calendar 'mars'",
                     id="unknown-client-calendar"),
        pytest.param("members:\n  - id: alice\n    name: Alice\n    calendar: mars\n", 4,
                     "members.0.calendar", "unknown calendar 'mars'",
                     id="unknown-member-calendar"),
        pytest.param("members:\n  - id: alice smith\n    name: Alice\n", 2, "members.0.id",
                     "invalid member id", id="id-with-space"),
        pytest.param("members:\n  - id: alice\n    name: Alice\n    email: alice\n", 4,
                     "members.0.email", "invalid email", id="bad-email"),
        pytest.param(MEMBERS + "roles:\n  engineer: []\n", 5, "roles.engineer",
                     "at least one member", id="empty-role"),
        pytest.param(MEMBERS + "rolez: {}\n", 4, "rolez",
                     "unknown key 'rolez' (did you mean 'roles'?) (allowed here: ", id="typo-key"),
        pytest.param("members:\n  - {id: alice}\n", 2, "members.0.name", "required",
                     id="missing-name"),
    ],
)
def test_loader_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int,
                                              key: str | None, message: str) -> None:
    """Every loader error is a ConfigError pointing at the file, line and key at fault."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_team(path, CALENDARS)
    error = info.value
    assert error.file == str(path)
    assert error.line == line
    assert error.key == key
    assert message in error.message


def test_team_built_in_code_is_validated_too() -> None:
    """Constructing a Team directly applies the same reference checks as the loader."""
    with pytest.raises(ValueError, match="unknown member 'bob'"):
        Team.model_validate({"members": [{"id": "alice", "name": "Alice"}],
                             "roles": {"engineer": "bob"}})

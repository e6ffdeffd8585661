"""`msphub playbooks check` refuses a step whose role or assignee config/team.yaml lacks,
with file, line and a suggestion (a misspelt role used to launch the step unassigned)."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from hub.config.playbooks import PlaybookSource, check_files
from hub.config.team import load_roster
from tests.cli.conftest import NEW_STARTER, REPO, Cli, one_line


def _library(cli: Cli, text: str) -> Path:
    library = cli.playbooks_dir.parent / "library"
    library.mkdir()
    (library / "new-starter.yaml").write_text(text, encoding="utf-8")
    return library


def test_a_misspelt_role_fails_check_with_line_and_suggestion(cli: Cli) -> None:
    """`role: enginer` is refused, naming the team file and the role it is close to."""
    # Given a playbook whose second step names a role the team does not have
    text = NEW_STARTER.replace("role: engineer", "role: enginer", 1)
    line = text.splitlines().index("    role: enginer") + 1
    library = _library(cli, text)
    # When the library is checked
    result = cli("playbooks", "check", str(library))
    # Then it fails at that line, suggesting the role that exists
    assert result.exit_code == 1
    errors = one_line(result.stderr)
    assert (f"{library / 'new-starter.yaml'}:{line} [steps.1.role]: step 'build-laptop': role "
            f"'enginer' is not in {REPO / 'config' / 'team.yaml'} (did you mean 'engineer'?)"
            ) in errors
    assert "OK" not in result.stdout


def test_an_unknown_assignee_fails_check(cli: Cli) -> None:
    """`assignee: dann` is not a member: refused with the member it is close to."""
    library = _library(cli, NEW_STARTER.replace("assignee: dan", "assignee: dann"))
    result = cli("playbooks", "check", str(library))
    assert result.exit_code == 1
    assert "[steps.2.assignee]: step 'review': assignee 'dann' is not a member in " \
           in one_line(result.stderr)
    assert "(did you mean 'dan'?)" in one_line(result.stderr)


def test_shipped_playbooks_name_only_roles_of_the_shipped_team() -> None:
    """The shipped library passes against the shipped config/team.yaml."""
    roster = load_roster(REPO / "config" / "team.yaml", env={})
    assert roster is not None and "engineer" in roster.roles
    good, errors = check_files([REPO / "playbooks"], roster)
    assert errors == [] and good


def test_without_a_team_file_roles_are_not_checked(tmp_path: Path) -> None:
    """No team.yaml: every role-based step is unassigned by design, nothing to check."""
    assert load_roster(tmp_path / "team.yaml") is None
    (tmp_path / "p.yaml").write_text(NEW_STARTER.replace("role: engineer", "role: anyone"))
    good, errors = check_files([tmp_path / "p.yaml"], None)
    assert errors == [] and len(good) == 1


def test_a_role_only_a_client_override_assigns_is_known(tmp_path: Path) -> None:
    """A role assigned in a client's overrides only is still a role of the team."""
    team = tmp_path / "team.yaml"
    team.write_text("members:\n  - {id: ann, name: Ann}\nclients:\n  ACME:\n"
                    "    roles: {onsite: ann}\n")
    roster = load_roster(team)
    assert roster is not None and roster.roles == {"onsite"} and roster.members == {"ann"}


def test_the_running_library_warns_about_unknown_staff(tmp_path: Path) -> None:
    """Given a roster, the live library logs each step that would launch unassigned."""
    (tmp_path / "p.yaml").write_text(NEW_STARTER.replace("role: engineer", "role: enginer", 1))
    roster = load_roster(REPO / "config" / "team.yaml", env={})

    with capture_logs() as logs:
        source = PlaybookSource(tmp_path, roster=roster)

    assert "new-starter" in source()
    warnings = [e for e in logs if e["event"] == "playbook_unknown_staff"]
    assert [(w["key"], w["log_level"]) for w in warnings] == [("steps.1.role", "warning")]
    assert "did you mean 'engineer'?" in warnings[0]["reason"]

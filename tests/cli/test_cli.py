"""The ``msphub`` command line, driven through typer's CliRunner with MSPHUB_* variables."""

from __future__ import annotations

import re
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from hub.store.db import make_engine
from hub.store.migrate import head_revision
from tests.cli.conftest import FRIDAY_AFTERNOON, NEW_STARTER, REPO, Cli, one_line

# ---------------------------------------------------------------------------- db


def test_db_upgrade_migrates_to_head(cli: Cli) -> None:
    """`db upgrade` creates the database and reports the head revision; again is a no-op."""
    engine = make_engine(f"sqlite:///{cli.db_file.as_posix()}")
    head = head_revision(engine)
    engine.dispose()
    first = cli("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert f"database at revision {head}" in first.stdout
    assert cli.db_file.exists()
    again = cli("db", "upgrade")
    assert again.exit_code == 0, again.output
    assert f"database at revision {head}" in again.stdout


# ---------------------------------------------------------------------------- playbooks


def test_playbooks_check_accepts_the_shipped_library(cli: Cli) -> None:
    """The shipped playbooks validate: exit 0 with a count."""
    result = cli("playbooks", "check", str(REPO / "playbooks"))
    assert result.exit_code == 0, result.output
    count = len(list((REPO / "playbooks").glob("*.yaml")))
    assert re.search(rf"OK {count} playbooks, \d+ steps", result.stdout)


def test_playbooks_check_defaults_to_the_configured_directory(cli: Cli) -> None:
    """Without arguments the MSPHUB_PLAYBOOKS_DIR library is checked."""
    result = cli("playbooks", "check")
    assert result.exit_code == 0, result.output
    assert "OK 1 playbooks, 4 steps" in result.stdout


def test_playbooks_check_reports_a_broken_file_with_file_and_line(cli: Cli) -> None:
    """A broken file: exit 1, and the error names file:line [field]."""
    # Given a copy of the shipped library with one broken file
    library = cli.playbooks_dir.parent / "library"
    shutil.copytree(REPO / "playbooks", library)
    broken = library / "zz-broken.yaml"
    broken.write_text(NEW_STARTER.replace("id: new-starter", "id: broken")
                      .replace("due: 4h", "due: whenever"), encoding="utf-8")
    line = NEW_STARTER.splitlines().index("    due: 4h") + 1
    # When the library is checked
    result = cli("playbooks", "check", str(library))
    # Then the command fails naming the file, line and field
    assert result.exit_code == 1
    errors = one_line(result.stderr)
    assert f"{broken}:{line} [steps.3.due]: invalid due rule 'whenever'" in errors
    assert "1 invalid playbook file(s)" in errors
    assert "OK" not in result.stdout


def test_playbooks_check_of_a_missing_path_fails(cli: Cli, tmp_path: Path) -> None:
    """A path that does not exist is an error, not an empty success."""
    result = cli("playbooks", "check", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "no such file or directory" in result.stderr


def test_a_broken_library_names_the_field_when_any_command_loads_it(cli: Cli) -> None:
    """Commands that load the library report the file, line and field of a broken playbook."""
    (cli.playbooks_dir / "new-starter.yaml").write_text(
        NEW_STARTER.replace("due: 4h", "due: whenever"), encoding="utf-8")
    result = cli("runs", "list")
    assert result.exit_code == 1
    assert "[steps.3.due]" in result.stderr


# ---------------------------------------------------------------------------- runs


def test_run_lifecycle_launch_list_show_complete(cli: Cli) -> None:
    """Launch a run, see it listed and shown, be refused out of order, then finish it."""
    # Given a run launched from a ticket, without a laptop
    launched = cli("runs", "launch", "new-starter", "--client", "ACME", "--client-name",
                   "Acme Ltd", "-i", "starter=Jo Starter", "-i", "laptop=no",
                   "--ticket", "cw-prod:1234", "--actor", "user:alice")
    assert launched.exit_code == 0, launched.output
    assert "launched run 1 (new-starter) for ACME" in launched.stdout

    # Then it is listed with its version, client, status, progress and ticket
    listed = one_line(cli("runs", "list").stdout)
    assert re.search(r"1 .*new-starter v1 .*Acme Ltd .*active .*0/3 .*2025-06-13 19:00 "
                     r".*cw-prod#1234", listed), listed
    assert "new-starter" not in cli("runs", "list", "--status", "completed").stdout

    # And shown with every step, its status and assignee (ACME's engineer is erin)
    shown = one_line(cli("runs", "show", "1").stdout)
    assert "Run 1 New starter (v1) for Acme Ltd — active, 0/3 steps" in shown
    assert "ticket: cw-prod#1234" in shown
    assert re.search(r"Check the request \(intake\) .*open .*alice", shown)
    assert re.search(r"Build the laptop \(build-laptop\) .*not_applicable", shown)
    assert re.search(r"Manager review \(review\) .*locked .*dan", shown)
    assert re.search(r"Hand over \(handover\) .*locked .*erin", shown)

    # When the last step is completed first
    refused = cli("runs", "complete", "1", "handover")
    # Then it is refused naming the blockers
    assert refused.exit_code == 1
    assert ("step 'handover' is locked until these steps are done: "
            "intake (Check the request), review (Manager review)") in one_line(refused.stderr)

    # When the steps are completed in order
    for step in ("intake", "review"):
        done = cli("runs", "complete", "1", step, "--evidence", f"{step} proof",
                   "--actor", "user:bob")
        assert done.exit_code == 0, done.output
        assert f"run 1: step '{step}' done; run is active" in done.stdout
    final = cli("runs", "complete", "1", "handover", "--actor", "user:erin")
    # Then the run is completed
    assert final.exit_code == 0, final.output
    assert "run 1: step 'handover' done; run is completed" in final.stdout
    shown = one_line(cli("runs", "show", "1").stdout)
    assert "completed, 3/3 steps" in shown
    assert re.search(r"\(intake\) .*done .*user:bob .*intake proof", shown)
    assert "1" in cli("runs", "list", "--status", "completed").stdout


def test_runs_skip_and_cancel(cli: Cli) -> None:
    """`runs skip` needs a reason and records it; `runs cancel` closes the run."""
    assert cli("runs", "launch", "new-starter", "--client", "19300",
               "-i", "starter=Jo").exit_code == 0
    assert cli("runs", "complete", "1", "intake").exit_code == 0
    # A protected step may be skipped from the CLI (an operator), a never-skippable one not
    skipped = cli("runs", "skip", "1", "review", "--reason", "known starter")
    assert skipped.exit_code == 0, skipped.output
    assert "run 1: step 'review' skipped" in skipped.stdout
    no_reason = cli("runs", "skip", "1", "build-laptop", "--reason", "")
    assert no_reason.exit_code == 1
    assert "a reason is required" in no_reason.stderr
    never = cli("runs", "skip", "1", "handover", "--reason", "in a hurry")
    assert never.exit_code == 1
    assert "step 'handover' can never be skipped" in never.stderr
    assert "known starter" in cli("runs", "show", "1").stdout
    cancelled = cli("runs", "cancel", "1", "--reason", "offer withdrawn")
    assert cancelled.exit_code == 0, cancelled.output
    assert "run 1 cancelled" in cancelled.stdout
    again = cli("runs", "complete", "1", "build-laptop")
    assert again.exit_code == 1
    assert "run 1 is cancelled" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "show", "42"], "run 42 does not exist"),
        (["runs", "launch", "nope", "--client", "ACME"], "playbook 'nope' does not exist"),
        (["runs", "launch", "new-starter", "--client", "ACME"],
         "input 'starter' (Starter's name) is required"),
        (["runs", "launch", "new-starter", "--client", "ACME", "-i", "starter=Jo",
          "-i", "laptop=perhaps"], "input 'laptop' must be true or false"),
        (["runs", "launch", "new-starter", "--client", "ACME", "-i", "starter"],
         "--input takes name=value, got 'starter'"),
        (["runs", "launch", "new-starter", "--client", "ACME", "--ticket", "1234"],
         "--ticket takes source:id"),
        (["runs", "complete", "1", "ghost"], "NOTFOUND"),
    ],
)
def test_runs_errors_exit_1_with_one_readable_line(
    cli: Cli, args: list[str], message: str
) -> None:
    """Expected errors print 'error: …' on stderr and exit 1, without a traceback."""
    if message == "NOTFOUND":
        assert cli("runs", "launch", "new-starter", "--client", "ACME",
                   "-i", "starter=Jo").exit_code == 0
        message = "run 1 has no step 'ghost'"
    result = cli(*args)
    assert result.exit_code == 1
    assert f"error: {message}" in one_line(result.stderr)
    assert "Traceback" not in result.output


def test_runs_list_overdue_follows_the_clock(cli: Cli) -> None:
    """`runs list --overdue` shows a run once its step is past due."""
    assert cli("runs", "launch", "new-starter", "--client", "ACME",
               "-i", "starter=Jo").exit_code == 0
    assert "new-starter" not in cli("runs", "list", "--overdue").stdout
    # When time passes the Monday 13:00 New York deadline of the intake step
    cli.clock.move_to(FRIDAY_AFTERNOON + timedelta(days=3, hours=1))
    assert "new-starter v1" in cli("runs", "list", "--overdue").stdout
    assert "overdue" in cli("runs", "show", "1").stdout


# ---------------------------------------------------------------------------- tokens


def test_token_is_printed_once_and_never_listed(cli: Cli) -> None:
    """`tokens create` prints the token once; `tokens list` shows only its prefix."""
    # When a token is created
    created = cli("tokens", "create", "--role", "viewer", "--name", "x")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    # Then stdout holds exactly the token and stderr the explanation
    assert re.fullmatch(r"msh_[A-Za-z0-9_-]{40,}", token)
    assert "token 'x' (viewer) created; it is shown only now" in created.stderr
    # And listing shows the name, role and prefix, never the token
    listed = cli("tokens", "list")
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output
    assert token[len("msh_"):] not in listed.output
    assert re.search(r"x .*viewer .*" + re.escape(token[:10]), one_line(listed.stdout))
    # And a second token with the same name is refused
    dupe = cli("tokens", "create", "--role", "admin", "--name", "x")
    assert dupe.exit_code == 1
    assert "a token named 'x' already exists" in dupe.stderr
    assert "msh_" not in dupe.stdout


def test_token_role_must_be_known(cli: Cli) -> None:
    """An unknown role is a usage error (exit 2)."""
    result = cli("tokens", "create", "--role", "root", "--name", "x")
    assert result.exit_code == 2


# ---------------------------------------------------------------------------- audit


def test_audit_verify_detects_a_tampered_sqlite_database(cli: Cli) -> None:
    """`audit verify` passes on an intact trail and names the entry altered behind its back."""
    # Given some audited activity
    assert cli("runs", "launch", "new-starter", "--client", "ACME",
               "-i", "starter=Jo").exit_code == 0
    assert cli("runs", "complete", "1", "intake", "--evidence", "ok").exit_code == 0
    intact = cli("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert "OK audit chain intact: 3 entries verified" in intact.stdout
    # When a row is edited directly in the SQLite file
    conn = sqlite3.connect(cli.db_file)
    try:
        with conn:
            conn.execute("UPDATE audit_entries SET actor = 'user:mallory' WHERE id = 2")
    finally:
        conn.close()
    # Then verify fails naming that entry
    broken = cli("audit", "verify")
    assert broken.exit_code == 1
    assert ("audit chain broken at entry 2: content was altered "
            "(1 entries verified before it)") in one_line(broken.stderr)


def test_audit_verify_detects_a_deleted_row(cli: Cli) -> None:
    """A row deleted from the middle of the trail is reported missing."""
    assert cli("runs", "launch", "new-starter", "--client", "ACME",
               "-i", "starter=Jo").exit_code == 0
    assert cli("runs", "complete", "1", "intake").exit_code == 0
    conn = sqlite3.connect(cli.db_file)
    try:
        with conn:
            conn.execute("DELETE FROM audit_entries WHERE id = 2")
    finally:
        conn.close()
    broken = cli("audit", "verify")
    assert broken.exit_code == 1
    assert "audit chain broken at entry 2: entry 2 is missing (removed)" in one_line(
        broken.stderr)

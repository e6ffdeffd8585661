"""`msphub runs complete --field`, `runs approve` and `runs reject`: the same rules as the API
(evidence forms checked, sign-offs by the approving team role, four-eyes)."""

from __future__ import annotations

from textwrap import dedent

from tests.cli.conftest import Cli, one_line

PATCHING = dedent(
    """\
    id: patching
    title: Patching
    version: 1
    steps:
      - id: patch
        title: Patch the servers
        role: engineer
        evidence_fields:
          - {id: compliance, label: Devices patched, type: number, min: 0, max: 100, unit: "%"}
          - {id: checked, label: I rebooted every server, type: confirm}
      - id: signoff
        title: Sign off the patching
        after: [patch]
        approval: {role: service-manager}
    """
)


def _launch(cli: Cli) -> None:
    (cli.playbooks_dir / "patching.yaml").write_text(PATCHING, encoding="utf-8")
    assert cli("runs", "launch", "patching", "--client", "ACME").exit_code == 0


def test_complete_checks_the_evidence_form(cli: Cli) -> None:
    """Every problem is listed; good values complete the step and show as its evidence."""
    _launch(cli)
    refused = cli("runs", "complete", "1", "patch", "--field", "compliance=120",
                  "--actor", "user:carol")
    assert refused.exit_code == 1
    message = one_line(refused.stderr)
    assert "compliance: must be at most 100%" in message
    assert 'checked: must be ticked: "I rebooted every server"' in message
    bad = cli("runs", "complete", "1", "patch", "--field", "compliance")
    assert bad.exit_code == 1 and "--field takes name=value" in one_line(bad.stderr)
    done = cli("runs", "complete", "1", "patch", "-f", "compliance=98%", "-f", "checked=yes",
               "--actor", "user:carol")
    assert done.exit_code == 0, done.output
    shown = one_line(cli("runs", "show", "1").stdout)
    assert "Devices patched: 98%" in shown


def test_approve_and_reject_follow_the_team_roles_and_four_eyes(cli: Cli) -> None:
    """carol (engineer) may not approve; alice rejects, reopening the step; after carol
    redoes it, max approves; marking the sign-off done is refused."""
    _launch(cli)
    cli("runs", "complete", "1", "patch", "-f", "compliance=90", "-f", "checked=yes",
        "--actor", "user:carol")
    not_a_manager = cli("runs", "approve", "1", "signoff", "--actor", "user:carol")
    assert not_a_manager.exit_code == 1
    assert "'service-manager' role" in one_line(not_a_manager.stderr)
    not_a_person = cli("runs", "approve", "1", "signoff", "--actor", "rule:x")
    assert not_a_person.exit_code == 1
    assert "user:<team member id>" in one_line(not_a_person.stderr)
    marked = cli("runs", "complete", "1", "signoff", "--actor", "user:alice")
    assert marked.exit_code == 1 and "sign-off" in one_line(marked.stderr)
    rejected = cli("runs", "reject", "1", "signoff", "--reason", "two servers not rebooted",
                   "--actor", "user:alice")
    assert rejected.exit_code == 0, rejected.output
    assert "open now: patch" in rejected.stdout
    cli("runs", "complete", "1", "patch", "-f", "compliance=100", "-f", "checked=yes",
        "--actor", "user:carol")
    approved = cli("runs", "approve", "1", "signoff", "--actor", "user:max",
                   "--comment", "verified in the RMM")
    assert approved.exit_code == 0, approved.output
    assert "run 1: step 'signoff' approved; run is completed" in approved.stdout

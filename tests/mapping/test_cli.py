"""`msphub mappings` commands through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from hub.cli.mappings import mappings_app as app

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["--mappings-dir", str(REPO / "mappings"), "--playbooks-dir", str(REPO / "playbooks")]
PLAYBOOKS = ["--playbooks-dir", str(REPO / "playbooks")]
SAMPLES = REPO / "mappings" / "samples"

runner = CliRunner()

BROKEN = """\
rules:
  - id: leaver
    on: ticket.created
    if:
      ticket.board: {within: [HR]}
    launch: {playbook: user-offboarding, inputs: {leaver_name: x, last_day: "2024-01-01"}}
  - id: ticker
    on: alert.resolved
    tick: {playbook: client-onboarding, step: verify-backupz}
"""


def test_check_ok_on_shipped_files() -> None:
    """check prints the rule and file counts and exits 0."""
    result = runner.invoke(app, ["check", *SHIPPED])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK ") and " rules in 6 files" in result.output


def test_check_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    """check lists each problem as file:line [key]: message, then a count."""
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = runner.invoke(app, ["check", str(path), *PLAYBOOKS])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{path}:5 [rules.0.if.ticket.board.within]: rule 'leaver': "
                               "unknown operator 'within'")
    assert lines[1].startswith(f"{path}:9 [rules.1.tick.step]: rule 'ticker': playbook "
                               "'client-onboarding' has no step 'verify-backupz'")
    assert lines[2] == "2 errors in 1 file"


def test_check_missing_path(tmp_path: Path) -> None:
    """A path that does not exist is an error, not silently zero rules."""
    result = runner.invoke(app, ["check", str(tmp_path / "nope.yaml"), *PLAYBOOKS])
    assert result.exit_code == 1 and "no such file or directory" in result.output


def test_check_with_broken_playbooks(tmp_path: Path) -> None:
    """Mappings cannot be checked against broken playbooks: say so, exit 1."""
    (tmp_path / "bad.yaml").write_text("id: x\n")
    result = runner.invoke(app, ["check", "--playbooks-dir", str(tmp_path)])
    assert result.exit_code == 1 and "playbooks are invalid" in result.output


def test_schema_is_valid_json_schema() -> None:
    """schema prints a JSON Schema whose `if` is the shared condition schema."""
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    rule = schema["$defs"]["Rule"]["properties"]
    assert rule["if"]["$ref"] == "#/$defs/condition"
    assert {"on", "from", "launch", "tick", "comment", "cancel", "stop", "priority"} <= set(rule)
    assert "exists" in json.dumps(schema["$defs"]["condition"])


def test_dry_run_human_output() -> None:
    """test prints the matching rule with its action, and the near misses with reasons."""
    result = runner.invoke(app, ["test", str(SAMPLES / "ticket-created-leaver.json"), *SHIPPED])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MATCH leaver-ticket-starts-offboarding" in out
    assert "launch user-offboarding for client ACME (Acme Manufacturing), notes: each" in out
    assert "leaver_name: 'John Smith'" in out
    assert "MISS  starter-ticket-starts-onboarding: none of: ticket.type in" in out


def test_dry_run_json_output() -> None:
    """--json prints matches, actions, near misses and errors for machines."""
    result = runner.invoke(
        app, ["test", str(SAMPLES / "alert-raised-ransomware.json"), "--json", *SHIPPED]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["event"]["kind"] == "alert.raised"
    (match,) = data["matched"]
    assert match["rule_id"] == "ransomware-alert-starts-incident"
    assert match["file"].endswith("security.yaml") and match["line"] > 0
    assert match["actions"][0]["inputs"]["incident_type"] == "ransomware"
    assert data["stopped_by"] == "ransomware-alert-starts-incident"
    assert data["errors"] == [] and data["near_misses"] == []


def test_dry_run_render_error_exits_1() -> None:
    """A matching rule that cannot render for the event is shown and fails the command."""
    sample = SAMPLES / "ticket-created-new-starter-missing-name.json"
    result = runner.invoke(app, ["test", str(sample), *SHIPPED])
    assert result.exit_code == 1
    assert ("ERROR starter-ticket-starts-onboarding: launch.inputs.new_user_name: "
            "'ticket.custom_fields.New Starter Name' is missing from the event") in result.output


def test_dry_run_accepts_a_list_of_events(tmp_path: Path) -> None:
    """An event file may hold a JSON list; --json then prints a list."""
    events = [json.loads((SAMPLES / name).read_text())
              for name in ("device-added.json", "alert-resolved-patch.json")]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    result = runner.invoke(app, ["test", str(path), "--json", "--mappings", str(REPO / "mappings"),
                                 *PLAYBOOKS])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [len(d["matched"]) for d in data] == [1, 0]
    assert data[1]["near_misses"][0]["reason"] == "alert.category == 'backup' (got 'patch')"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a valid event"),
        ('{"source": "x"}', "not a valid event"),
    ],
)
def test_dry_run_bad_event_file_exits_2(tmp_path: Path, content: str, message: str) -> None:
    """An unreadable or invalid event is a usage error (exit 2) with the reason."""
    path = tmp_path / "e.json"
    path.write_text(content)
    result = runner.invoke(app, ["test", str(path), *SHIPPED])
    assert result.exit_code == 2 and message in result.output


def test_dry_run_with_broken_mappings_exits_1(tmp_path: Path) -> None:
    """The dry run refuses to run against invalid mapping files and lists the errors."""
    (tmp_path / "m.yaml").write_text(BROKEN)
    result = runner.invoke(app, ["test", str(SAMPLES / "device-added.json"),
                                 "--mappings-dir", str(tmp_path), *PLAYBOOKS])
    assert result.exit_code == 1
    assert "unknown operator 'within'" in result.output
    assert "the mapping files are invalid" in result.output

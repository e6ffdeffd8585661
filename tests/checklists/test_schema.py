"""Playbook files: loader errors name file, line and field; inputs; the JSON Schema."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from textwrap import dedent
from typing import Any

import jsonschema
import pytest
import yaml

from hub.config.playbooks import check_files, load_library, parse_playbook
from hub.core.checklists.schema import Playbook, coerce_inputs, playbook_json_schema
from hub.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "playbooks").glob("*.yaml"))

# A valid playbook; each error case below replaces one marked line (line numbers are stable).
VALID = dedent(
    """\
    id: sample
    title: Sample
    version: 1
    inputs:
      - id: tier
        title: Tier
        type: choice
        choices: [gold, silver]
    steps:
      - id: first
        title: First
        due: 4h
      - id: second
        title: Second
        after: [first]
        when: {tier: gold}
    """
)


def _replace(line_no: int, new: str) -> str:
    lines = VALID.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


def _insert_after(line_no: int, new: str) -> str:
    lines = VALID.splitlines()
    lines.insert(line_no, new)
    return "\n".join(lines) + "\n"


def test_the_sample_is_valid() -> None:
    """The base document of the error table parses (so each case tests one error)."""
    playbook = parse_playbook(VALID, "sample.yaml")
    assert [s.id for s in playbook.steps] == ["first", "second"]


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        pytest.param(_insert_after(3, "colour: red"), 4, "colour",
                     "unknown key 'colour' (allowed here: category, description, id, inputs,",
                     id="unknown-top-level-key"),
        pytest.param(_insert_after(11, "    colour: red"), 12, "steps.0.colour",
                     "unknown key 'colour' (allowed here: after,", id="unknown-step-key"),
        pytest.param(_replace(13, "  - id: Second Step"), 13, "steps.1.id",
                     "'Second Step' is not a valid id: use lower-case letters, digits, '-' "
                     "and '_'", id="bad-step-id"),
        pytest.param(_replace(15, "    after: [frist]"), 15, "steps.1.after",
                     "unknown step 'frist' (did you mean 'first'?)", id="unknown-after-step"),
        pytest.param(_replace(15, "    after: [second]"), 15, "steps.1.after",
                     "cannot wait for itself", id="after-itself"),
        pytest.param(_replace(16, "    when: {colour: red}"), 16, "steps.1.when",
                     "'colour' is not an input of this playbook", id="when-non-input"),
        pytest.param(_replace(16, "    when: {tier: {like: gold}}"), 16, "steps.1.when.tier.like",
                     "unknown operator 'like'", id="when-unknown-operator"),
        pytest.param(_replace(12, "    due: next tuesday"), 12, "steps.0.due",
                     "invalid due rule 'next tuesday'", id="bad-due-rule"),
        pytest.param(_replace(12, "    due: 3 business weeks"), 12, "steps.0.due",
                     "business time is counted in hours or days", id="business-weeks"),
        pytest.param(_replace(8, "    choices: []"), 5, "inputs.0",
                     "an input of type 'choice' needs 'choices'", id="choice-without-choices"),
        pytest.param(_replace(8, "    help: pick one"), 5, "inputs.0",
                     "an input of type 'choice' needs 'choices'", id="choice-no-choices-key"),
        pytest.param(_replace(3, "version: 0"), 3, "version", "must be at least 1",
                     id="version-zero"),
        pytest.param(_replace(11, "    titel: First"), 10, "steps.0.title",
                     "'title' is required: is 'titel' a misspelling of it?",
                     id="misspelt-required-key"),
    ],
)
def test_loader_errors_name_file_line_and_field(
    text: str, line: int, key: str, message: str
) -> None:
    """Every validation error names the file, the line of the field and the dotted field."""
    with pytest.raises(ConfigError) as info:
        parse_playbook(text, "playbooks/sample.yaml")
    error = info.value
    assert (error.file, error.line, error.key) == ("playbooks/sample.yaml", line, key)
    assert message in error.message
    assert str(error).startswith(f"playbooks/sample.yaml:{line} [{key}]: ")


CYCLE = _replace(12, "    after: [second]")  # first waits for second, second for first
DUPLICATE = _replace(13, "  - id: first")


def test_cycle_is_rejected_naming_the_file_and_the_cycle() -> None:
    """A cycle of ``after`` is refused; the message walks the cycle."""
    with pytest.raises(ConfigError) as info:
        parse_playbook(CYCLE, "playbooks/sample.yaml")
    assert info.value.file == "playbooks/sample.yaml"
    assert "cycle: first -> second -> first" in info.value.message


def test_duplicate_step_id_is_rejected_naming_the_file_and_the_id() -> None:
    """Two steps with one id are refused; the message names the id."""
    with pytest.raises(ConfigError) as info:
        parse_playbook(DUPLICATE, "playbooks/sample.yaml")
    assert info.value.file == "playbooks/sample.yaml"
    assert info.value.message == "duplicate step id 'first'"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        pytest.param(CYCLE, 12, "steps.0.after", id="cycle"),
        pytest.param(DUPLICATE, 13, "steps.1.id", id="duplicate-step-id"),
    ],
)
def test_cycle_and_duplicate_errors_name_the_line_and_field(
    text: str, line: int, key: str
) -> None:
    """Graph errors point at the step that closes the cycle / repeats the id."""
    with pytest.raises(ConfigError) as info:
        parse_playbook(text, "playbooks/sample.yaml")
    assert (info.value.line, info.value.key) == (line, key)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("id: x\ntitle: [unclosed\nversion: 1\n", 3, id="unclosed-flow"),
        pytest.param("id: x\n  title: bad indent\n", 2, id="bad-indent"),
        pytest.param('id: x\ntitle: "open\n', 3, id="unclosed-quote"),
    ],
)
def test_yaml_syntax_error_names_file_and_line(text: str, line: int) -> None:
    """Broken YAML is reported with the line the parser stopped at."""
    with pytest.raises(ConfigError) as info:
        parse_playbook(text, "broken.yaml")
    assert (info.value.file, info.value.line) == ("broken.yaml", line)
    assert info.value.message.startswith("YAML syntax error")


def test_a_non_mapping_document_is_rejected_at_line_one() -> None:
    """A list (or scalar) instead of a mapping names line 1."""
    with pytest.raises(ConfigError) as info:
        parse_playbook("- just\n- a list\n", "list.yaml")
    assert (info.value.file, info.value.line) == ("list.yaml", 1)
    assert "must be a mapping" in info.value.message


def test_check_files_collects_every_error_and_keeps_the_good_files(tmp_path: Path) -> None:
    """check_files validates all files, reporting each bad one with file:line."""
    # Given a directory with one good, one bad and one duplicate-id file
    (tmp_path / "a-good.yaml").write_text(VALID, encoding="utf-8")
    (tmp_path / "b-bad.yaml").write_text(_replace(12, "    due: soon"), encoding="utf-8")
    (tmp_path / "c-dupe.yml").write_text(VALID, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a playbook", encoding="utf-8")
    # When they are checked
    good, errors = check_files([tmp_path])
    # Then the good one loads and both problems are reported
    assert [lp.playbook.id for lp in good] == ["sample"]
    assert [(Path(e.file or "").name, e.line, e.key) for e in errors] == [
        ("b-bad.yaml", 12, "steps.0.due"),
        ("c-dupe.yml", 1, "id"),
    ]
    assert "already defined in" in errors[1].message
    assert str(errors[0]).startswith(f"{tmp_path / 'b-bad.yaml'}:12 [steps.0.due]: ")


def test_load_library_refuses_a_broken_library(tmp_path: Path) -> None:
    """A library with an invalid file never half-loads."""
    (tmp_path / "a.yaml").write_text(VALID, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(_replace(15, "    after: [nope]"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_library(tmp_path)
    assert Path(info.value.file or "").name == "b.yaml"


def test_load_library_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    """No playbooks directory: an empty library."""
    assert len(load_library(tmp_path / "absent")) == 0


def test_shipped_library_is_valid() -> None:
    """Every playbook shipped in playbooks/ loads without error."""
    good, errors = check_files([REPO / "playbooks"])
    assert errors == []
    assert len(good) == len(SHIPPED) > 0


# ---------------------------------------------------------------------------- inputs

INPUTS = Playbook.model_validate(
    {
        "id": "inputs",
        "title": "Inputs",
        "version": 1,
        "inputs": [
            {"id": "name", "title": "Name"},
            {"id": "notes", "title": "Notes", "type": "text", "required": False},
            {"id": "email", "title": "Email", "type": "email", "required": False},
            {"id": "day", "title": "Day", "type": "date", "required": False},
            {"id": "flag", "title": "Flag", "type": "boolean", "default": True},
            {"id": "count", "title": "Count", "type": "integer", "required": False},
            {"id": "tier", "title": "Tier", "type": "choice", "choices": ["gold", "silver"],
             "required": False},
        ],
        "steps": [{"id": "a", "title": "A"}],
    }
)
BASE = {"name": "Jo Leaver"}
EMPTY = {"notes": None, "email": None, "day": None, "flag": True, "count": None, "tier": None}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({}, {}, id="defaults"),
        pytest.param({"name": 42}, {"name": "42"}, id="string-from-number"),
        pytest.param({"notes": "line 1\nline 2"}, {"notes": "line 1\nline 2"}, id="text"),
        pytest.param({"email": "jo@client.example"}, {"email": "jo@client.example"},
                     id="email"),
        pytest.param({"day": "2025-01-31"}, {"day": "2025-01-31"}, id="date-text"),
        pytest.param({"day": date(2025, 1, 31)}, {"day": "2025-01-31"}, id="date-object"),
        pytest.param({"flag": False}, {"flag": False}, id="bool"),
        pytest.param({"flag": "yes"}, {"flag": True}, id="bool-yes"),
        pytest.param({"flag": "TRUE"}, {"flag": True}, id="bool-TRUE"),
        pytest.param({"flag": "1"}, {"flag": True}, id="bool-1"),
        pytest.param({"flag": "no"}, {"flag": False}, id="bool-no"),
        pytest.param({"flag": "False"}, {"flag": False}, id="bool-False"),
        pytest.param({"flag": "0"}, {"flag": False}, id="bool-0"),
        pytest.param({"count": "12"}, {"count": 12}, id="integer-text"),
        pytest.param({"count": 7}, {"count": 7}, id="integer"),
        pytest.param({"tier": "silver"}, {"tier": "silver"}, id="choice"),
        pytest.param({"email": ""}, {"email": None}, id="empty-optional-is-none"),
    ],
)
def test_coerce_inputs_converts_valid_values(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Valid inputs are converted to their declared type; optional missing ones are None."""
    assert coerce_inputs(INPUTS, {**BASE, **given}) == {**BASE, **EMPTY, **expected}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param({"name": None}, "input 'name' (Name) is required", id="required-none"),
        pytest.param({"name": ""}, "input 'name' (Name) is required", id="required-empty"),
        pytest.param({"flag": None}, "input 'flag' (Flag) is required", id="required-default-none"),
        pytest.param({"colour": "red", "age": 3}, "unknown input(s): age, colour", id="unknown"),
        pytest.param({"email": "not-an-email"}, "input 'email' must be an email address",
                     id="bad-email"),
        pytest.param({"email": 12}, "input 'email' must be an email address", id="email-number"),
        pytest.param({"day": "31/01/2025"}, "input 'day' must be a date (YYYY-MM-DD)",
                     id="bad-date"),
        pytest.param({"flag": "maybe"}, "input 'flag' must be true or false", id="bad-bool"),
        pytest.param({"count": "twelve"}, "input 'count' must be a whole number",
                     id="bad-integer"),
        pytest.param({"count": 3.7}, "input 'count' must be a whole number",
                     id="fractional-integer"),
        pytest.param({"tier": "bronze"}, "input 'tier' must be one of: gold, silver",
                     id="bad-choice"),
    ],
)
def test_coerce_inputs_rejects_bad_values_naming_the_input(
    given: dict[str, Any], message: str
) -> None:
    """A missing, unknown or ill-typed input raises ValueError naming it."""
    with pytest.raises(ValueError) as info:
        coerce_inputs(INPUTS, {**BASE, **given})
    assert str(info.value) == message


def test_coerce_inputs_does_not_mutate_what_it_is_given() -> None:
    """The caller's dict is left as it was."""
    given = {"name": "Jo", "flag": "yes"}
    coerce_inputs(INPUTS, given)
    assert given == {"name": "Jo", "flag": "yes"}


# ---------------------------------------------------------------------------- JSON Schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = playbook_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_json_schema_declares_draft_2020_12() -> None:
    """Editors pick the right dialect."""
    assert playbook_json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_json_schema_accepts_every_shipped_playbook(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    """Each shipped playbook is valid against the published schema."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(document)] == []


def _offboarding() -> dict[str, Any]:
    return yaml.safe_load((REPO / "playbooks" / "user-offboarding.yaml").read_text("utf-8"))


@pytest.mark.parametrize(
    ("where", "change", "fragment"),
    [
        pytest.param((), {"colour": "red"}, "'colour' was unexpected", id="top-level-key"),
        pytest.param(("steps", 0), {"colour": "red"}, "'colour' was unexpected", id="step-key"),
        pytest.param(("steps", 0), {"skippable": "sometimes"}, "sometimes",
                     id="bad-skippable"),
        pytest.param(("steps", 0), {"when": {"leaver_name": {"like": "x"}}}, "not valid",
                     id="unknown-operator"),
    ],
)
def test_json_schema_rejects_invalid_playbooks(
    where: tuple[str | int, ...], change: dict[str, Any], fragment: str,
    validator: jsonschema.Draft202012Validator,
) -> None:
    """Unknown keys and malformed values are refused by the schema as by the loader."""
    document = _offboarding()
    target: Any = document
    for part in where:
        target = target[part]
    target.update(change)
    messages = [e.message for e in validator.iter_errors(document)]
    assert messages
    assert any(fragment in m for m in messages)

"""Loading mapping files: every error names the file, the line, the field and the rule id."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.config.mappings import check_rules, load_rules
from hub.config.playbooks import PlaybookLibrary
from hub.core.events import EventKind
from hub.errors import ConfigError

GOOD = """\
rules:
  - id: leaver
    on: ticket.created
    from: [connectwise]
    if: {ticket.type: Leaver}
    launch:
      playbook: offboard
      inputs: {leaver_name: "{{ ticket.contact.name }}"}
"""

# (case id, file text, line, key, message fragment); the rule id is always 'bad'.
ERRORS: list[tuple[str, str, int, str | None, str]] = [
    (
        "yaml-syntax",
        """\
        rules:
          - id: fine
            on: ticket.created
            comment: {text: x}
          - id: bad
            on: ticket.created
            comment: {text: "unclosed}
        """,
        8, None, "YAML syntax error",
    ),
    (
        "unknown-operator",
        """\
        rules:
          - id: bad
            on: ticket.created
            if:
              ticket.type: Leaver
              ticket.board:
                within: [Service Desk, HR]
            comment: {text: x}
        """,
        7, "rules.0.if.ticket.board.within",
        "unknown operator 'within' (allowed: eq, ne, in, not_in, matches, exists",
    ),
    (
        "bad-regex",
        """\
        rules:
          - id: bad
            on: ticket.created
            if:
              any:
                - ticket.type: Leaver
                - ticket.summary: {matches: "(leaver"}
            comment: {text: x}
        """,
        7, "rules.0.if.any.1.ticket.summary.matches", "invalid regular expression",
    ),
    (
        "operator-wrong-operand",
        """\
        rules:
          - id: bad
            on: ticket.created
            if: {ticket.board: {in: HR}}
            comment: {text: x}
        """,
        4, "rules.0.if.ticket.board.in", "'in' takes a list",
    ),
    (
        "unknown-kind",
        """\
        rules:
          - id: bad
            on: [ticket.created, ticket.craeted]
            comment: {text: x}
        """,
        3, "rules.0.on", "unknown event kind 'ticket.craeted' (did you mean 'ticket.created'?) "
        "(allowed: ticket.created,",
    ),
    (
        "unknown-key",
        """\
        rules:
          - id: bad
            on: ticket.created
            when: {ticket.type: Leaver}
            comment: {text: x}
        """,
        4, "rules.0.when", "unknown key 'when' (allowed here: ",
    ),
    (
        "unknown-key-in-action",
        """\
        rules:
          - id: bad
            on: ticket.created
            tick:
              playbook: onboard
              step: deploy-agent
              evidnce: x
        """,
        7, "rules.0.tick.evidnce", "unknown key 'evidnce' (did you mean 'evidence'?) "
        "(allowed here: evidence, playbook, step)",
    ),
    (
        "two-actions",
        """\
        rules:
          - id: bad
            on: ticket.created
            comment: {text: x}
            cancel: {playbook: onboard, reason: y}
        """,
        2, "rules.0",
        "a rule needs exactly one action: launch, tick, comment, cancel, notify, note "
        "(found: comment, cancel)",
    ),
    (
        "no-action",
        """\
        rules:
          - id: bad
            on: ticket.created
        """,
        2, "rules.0", "a rule needs exactly one action",
    ),
    (
        "unknown-playbook-launch",
        """\
        rules:
          - id: bad
            on: ticket.created
            launch:
              playbook: offbaord
        """,
        5, "rules.0.launch.playbook",
        "unknown playbook 'offbaord' (known: maint, offboard, onboard)",
    ),
    (
        "unknown-playbook-tick",
        """\
        rules:
          - id: bad
            on: alert.resolved
            tick:
              playbook: [onboard, maintenance]
              step: verify-backups
        """,
        5, "rules.0.tick.playbook.1", "unknown playbook 'maintenance'",
    ),
    (
        "unknown-playbook-cancel",
        """\
        rules:
          - id: bad
            on: agreement.updated
            cancel: {playbook: nope, reason: x}
        """,
        4, "rules.0.cancel.playbook.0", "unknown playbook 'nope'",
    ),
    (
        "unknown-step",
        """\
        rules:
          - id: bad
            on: alert.resolved
            tick:
              playbook: [onboard, maint]
              step: deploy-agent
        """,
        6, "rules.0.tick.step",
        "playbook 'maint' has no step 'deploy-agent' (steps: verify-backups)",
    ),
    (
        "unknown-input",
        """\
        rules:
          - id: bad
            on: ticket.created
            launch:
              playbook: offboard
              inputs:
                leaver_name: x
                leaver_nmae: y
        """,
        8, "rules.0.launch.inputs.leaver_nmae",
        "playbook 'offboard' has no input 'leaver_nmae' (inputs: leaver_name, last_day, convert,",
    ),
    (
        "missing-required-input",
        """\
        rules:
          - id: bad
            on: ticket.created
            launch:
              playbook: offboard
              inputs:
                last_day: "2024-05-01"
        """,
        6, "rules.0.launch.inputs", "playbook 'offboard' requires input 'leaver_name' (Leaver)",
    ),
    (
        "bad-template",
        """\
        rules:
          - id: bad
            on: ticket.created
            launch:
              playbook: offboard
              inputs:
                leaver_name: "{{ ticket.contact.name }"
        """,
        7, "rules.0.launch.inputs.leaver_name",
        "template error in launch.inputs.leaver_name: unexpected '}'",
    ),
    (
        "bad-template-multiline",
        """\
        rules:
          - id: bad
            on: ticket.closed
            comment:
              text: |
                Closed.
                {% if ticket.x %}unterminated
        """,
        5, "rules.0.comment.text", "template error in comment.text (template line 2)",
    ),
    (
        "bad-id",
        """\
        rules:
          - id: bad rule
            on: ticket.created
            comment: {text: x}
        """,
        2, "rules.0.id", "'bad rule' is not a valid id: use lower-case letters, digits",
    ),
    (
        "wrong-notes",
        """\
        rules:
          - id: bad
            on: ticket.created
            launch: {playbook: offboard, inputs: {leaver_name: x}, notes: sometimes}
        """,
        4, "rules.0.launch.notes", "'sometimes' is not allowed here; use one of: each, "
        "digest, none",
    ),
]


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.mark.parametrize(("text", "line", "key", "fragment"), [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_load_error_names_file_line_key_and_rule(
    tmp_path: Path, library: PlaybookLibrary, text: str, line: int, key: str | None,
    fragment: str,
) -> None:
    """A broken file is rejected; the error says where (file:line [key]) and which rule."""
    directory = tmp_path / "mappings"
    _write(directory, {"a-good.yaml": GOOD, "b-broken.yaml": text})
    with pytest.raises(ConfigError) as info:
        load_rules(directory, library)
    err = info.value
    assert err.file == str(directory / "b-broken.yaml")
    assert err.line == line
    assert err.key == key
    assert err.message.startswith("rule 'bad")
    assert fragment in err.message
    expected_where = f"{directory / 'b-broken.yaml'}:{line}" + (f" [{key}]" if key else "")
    assert str(err).startswith(f"{expected_where}: rule 'bad")


def test_duplicate_rule_id_across_files(tmp_path: Path, library: PlaybookLibrary) -> None:
    """Rule ids are unique across all files; the second one is reported with both places."""
    directory = tmp_path / "mappings"
    _write(directory, {
        "a.yaml": GOOD,
        "b.yaml": """\
            rules:
              - id: other
                on: ticket.closed
                comment: {text: x}
              - id: leaver
                on: ticket.closed
                comment: {text: y}
            """,
    })
    with pytest.raises(ConfigError) as info:
        load_rules(directory, library)
    err = info.value
    assert (err.file, err.line, err.key) == (str(directory / "b.yaml"), 5, "rules.1.id")
    assert err.message == f"rule 'leaver': id is already used in {directory / 'a.yaml'}:2"


def test_check_rules_collects_every_error(tmp_path: Path, library: PlaybookLibrary) -> None:
    """check_rules reports all problems of all files (the CLI shows them together)."""
    directory = tmp_path / "mappings"
    _write(directory, {
        "a.yaml": ERRORS[1][1],                               # unknown operator
        "b.yaml": """\
            rules:
              - id: one
                on: ticket.craeted
                comment: {text: x}
              - id: two
                on: ticket.created
                tick: {playbook: onboard, step: nope}
              - id: three
                on: ticket.created
                comment: {text: "{{ x"}
            """,
        "c.yaml": GOOD,
    })
    errors = check_rules([directory], library)
    assert [(Path(e.file or "").name, e.line) for e in errors] == [
        ("a.yaml", 7), ("b.yaml", 3), ("b.yaml", 7), ("b.yaml", 10),
    ]
    assert [e.message.split(":")[0] for e in errors] == [
        "rule 'bad'", "rule 'one'", "rule 'two'", "rule 'three'",
    ]


def test_several_field_errors_in_one_rule_are_all_reported(library: PlaybookLibrary,
                                                           tmp_path: Path) -> None:
    """Pydantic reports each bad field of a rule separately, each with its own line."""
    path = tmp_path / "m.yaml"
    path.write_text("rules:\n  - id: r\n    on: nope\n    priority: high\n    comment: {text: x}\n")
    errors = check_rules([path], library)
    assert [(e.line, e.key) for e in errors] == [(3, "rules.0.on"), (4, "rules.0.priority")]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- just a list\n", 1, "a mapping file must be a mapping with a 'rules' list"),
        ("rule:\n  - id: x\n", 1,
         "unknown top-level key 'rule' (did you mean 'rules'?) (allowed: rules)"),
        ("rules: {id: x}\n", 1, "'rules' must be a list of rules"),
        ("rules:\n  - just text\n", 2, "rule #1: each rule must be a mapping"),
        ("rules:\n  - on: ticket.created\n    comment: {text: x}\n", 2,
         "rule #1: 'id' is required"),
        ("rules:\n  - id: yes\n    on: ticket.created\n    comment: {text: x}\n", 2,
         "quote the text"),
    ],
)
def test_file_shape_errors(tmp_path: Path, library: PlaybookLibrary, text: str, line: int,
                           message: str) -> None:
    """The file must be `rules:` and a list of mappings; rules without id are numbered."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    (err,) = check_rules([path], library)
    assert err.line == line and message in err.message


def test_bare_on_key_is_not_read_as_true(tmp_path: Path, library: PlaybookLibrary) -> None:
    """YAML 1.1 reads a bare `on:` key as true; the loader treats it as `on` again."""
    directory = tmp_path / "m"
    _write(directory, {"a.yaml": GOOD})
    ruleset = load_rules(directory, library)
    assert ruleset.get("leaver").rule.on == [EventKind.TICKET_CREATED]


def test_files_load_sorted_and_others_ignored(tmp_path: Path, library: PlaybookLibrary) -> None:
    """*.yaml and *.yml load in name order; README, JSON samples and subfolders are ignored."""
    directory = tmp_path / "m"
    _write(directory, {
        "b.yml": "rules:\n  - id: second\n    on: ticket.created\n    comment: {text: x}\n",
        "a.yaml": "rules:\n  - id: first\n    on: ticket.created\n    comment: {text: x}\n",
        "empty.yaml": "",
        "README.md": "rules: nonsense",
        "sample.json": "{}",
    })
    (directory / "samples").mkdir()
    (directory / "samples" / "x.yaml").write_text("broken: [")
    ruleset = load_rules(directory, library)
    assert [r.id for r in ruleset.rules] == ["first", "second"]
    assert [Path(f).name for f in ruleset.files] == ["a.yaml", "b.yml", "empty.yaml"]


def test_missing_directory_means_no_rules(tmp_path: Path, library: PlaybookLibrary) -> None:
    """A mappings directory that does not exist yields an empty rule set."""
    assert len(load_rules(tmp_path / "absent", library)) == 0


def test_known_sources_are_checked_when_given(tmp_path: Path, library: PlaybookLibrary) -> None:
    """With `sources`, a `from` name that is no vendor or instance is an error."""
    directory = tmp_path / "m"
    _write(directory, {"a.yaml": GOOD.replace("[connectwise]", "[connectwise, conectwise]")})
    errors = check_rules([directory], library, sources={"connectwise", "cw-prod"})
    assert [(e.line, e.key) for e in errors] == [(4, "rules.0.from.1")]
    assert ("unknown source 'conectwise' (did you mean 'connectwise'?): 'from' takes vendors "
            "and connector instance names (known: connectwise, cw-prod)") in errors[0].message
    assert check_rules([directory], library) == []  # not checked without `sources`

"""Loading many rules: the fast paths (libyaml, shared templates) keep every error exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config import yamlio
from hub.config.mappings import compile_files, load_rules
from hub.config.playbooks import PlaybookLibrary
from hub.config.yamlio import parse_yaml
from hub.core.mapping.engine import explain
from hub.errors import ConfigError

from .conftest import make_event


def _rules(n: int, broken: int | None = None, how: str = "") -> list[dict[str, Any]]:
    """``n`` valid rules sharing a few templates; rule ``broken`` gets the fault ``how``."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        rule: dict[str, Any] = {
            "id": f"gen-{i:04d}", "on": "ticket.created", "from": "connectwise",
            "if": {"client.key": f"client-{i}", "ticket.type": {"in": ["Leaver", "HR"]}},
            "comment": {"playbook": "offboard", "text": "Ticket {{ ticket.id }} ({{ source }})"},
        }
        if i == broken:
            if how == "regex":
                rule["if"]["ticket.summary"] = {"matches": "(unclosed"}
            elif how == "template":
                rule["comment"]["text"] = "{{ ticket.id broken"
            elif how == "playbook":
                rule["comment"]["playbook"] = "no-such-playbook"
        out.append(rule)
    return out


def _write(path: Path, rules: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"rules": rules}, sort_keys=False), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, row in enumerate(path.read_text().splitlines(), 1) if needle in row)


@pytest.mark.parametrize(
    ("how", "needle", "key", "message"),
    [
        ("regex", "(unclosed", "rules.737.if.ticket.summary.matches", "invalid regular expression"),
        ("template", "ticket.id broken", "rules.737.comment.text",
         "template error in comment.text"),
        ("playbook", "no-such-playbook", "rules.737.comment.playbook.0", "unknown playbook"),
    ],
)
def test_error_in_a_big_file_names_file_line_and_rule(
    tmp_path: Path, library: PlaybookLibrary, how: str, needle: str, key: str, message: str
) -> None:
    """One bad rule among 1,000 is reported with its file, its line, its key and its id."""
    # Given a file of 1,000 rules whose rule #738 is broken
    path = _write(tmp_path / "many.yaml", _rules(1000, broken=737, how=how))
    # When the directory is loaded
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path, library)
    # Then the error points at that rule's line and field
    err = info.value
    assert (err.file, err.key) == (str(path), key)
    assert err.line == _line_of(path, needle)
    assert err.message.startswith("rule 'gen-0737': ") and message in err.message


def test_yaml_syntax_error_matches_the_pure_python_parser(
    tmp_path: Path, library: PlaybookLibrary
) -> None:
    """A syntax error deep in a big file has PyYAML's own message and line (libyaml or not)."""
    text = yaml.safe_dump({"rules": _rules(300)}, sort_keys=False)
    lines = text.splitlines()
    lines[2000] += ": another: value"  # mapping values are not allowed here
    text = "\n".join(lines) + "\n"
    with pytest.raises(yaml.MarkedYAMLError) as reference:
        yaml.load(text, Loader=yaml.SafeLoader)
    mark = reference.value.problem_mark
    assert mark is not None
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "many.yaml")
    assert info.value.line == mark.line + 1
    assert info.value.message == f"YAML syntax error: {reference.value.problem}"


def test_libyaml_and_pure_python_give_the_same_document() -> None:
    """Data and line numbers are the same whichever parser read the file."""
    text = Path(__file__).resolve().parents[2].joinpath("mappings", "security.yaml").read_text()
    fast = parse_yaml(text, "security.yaml")
    node, data = yamlio._compose(yaml.SafeLoader, text)
    lines: dict[Any, int] = {}
    assert node is not None
    yamlio._index(node, (), lines)
    assert (fast.data, fast.lines) == (data, lines)


def test_one_template_text_compiles_once_per_field(
    tmp_path: Path, library: PlaybookLibrary
) -> None:
    """Rules repeating a template share its compiled form, and each keeps its field name."""
    rules = _rules(3)
    rules[2] = {"id": "tick", "on": "ticket.created", "tick": {
        "playbook": "offboard", "step": "disable-sign-in",
        "evidence": "Ticket {{ ticket.id }} ({{ source }})"}}
    _write(tmp_path / "m.yaml", rules)
    ruleset, errors = compile_files([tmp_path], library)
    assert errors == []
    first, second = ruleset.get("gen-0000"), ruleset.get("gen-0001")
    assert first.templates["comment.text"] is second.templates["comment.text"]
    assert ruleset.get("tick").templates["tick.evidence"].field == "tick.evidence"
    # the shared template renders per event as before
    event = make_event(data={"ticket": {"id": 7, "type": "Leaver"}})
    event = event.model_copy(update={"hub_client": None})
    result = explain(ruleset, event)
    assert [m.rule_id for m in result.matched] == ["tick"]
    assert result.actions[0].evidence == "Ticket 7 (cw-prod)"  # type: ignore[union-attr]

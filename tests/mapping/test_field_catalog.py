"""The event field catalog: `mappings check` refuses fields, sources and template paths no
source emits, with file, line and a suggestion; `mappings fields` and `schema` show it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from connectors.base import InvalidConfig, load_registry, validate_config
from hub.cli.mappings import mappings_app as app
from hub.config.fields import field_catalog
from hub.config.live_rules import RuleHolder
from hub.config.mappings import check_rules
from hub.config.playbooks import PlaybookLibrary
from hub.core.events import EventKind
from hub.core.mapping.fields import FieldCatalog, FieldInfo, FieldSet

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = ["--playbooks-dir", str(REPO / "playbooks")]
CONFIG = ["--config-dir", str(REPO / "config")]
SHIPPED = ["--mappings-dir", str(REPO / "mappings"), *PLAYBOOKS, *CONFIG]

runner = CliRunner()

LEAVER = """\
rules:
  - id: leaver
    on: ticket.created
    from: [connectwise, autotask]
    if:
      {condition}
    launch:
      playbook: user-offboarding
      inputs:
        leaver_name: "{name}"
        last_day: "{{{{ ticket.custom_fields['Last Day'] | default('') }}}}"
"""


def _rules(tmp_path: Path, condition: str = "ticket.board: HR",
           name: str = "{{ ticket.contact.name }}", text: str | None = None) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text if text is not None else LEAVER.format(condition=condition, name=name))
    return path


def _check(path: Path) -> tuple[int, list[str]]:
    result = runner.invoke(app, ["check", str(path), *PLAYBOOKS, *CONFIG])
    return result.exit_code, result.output.strip().splitlines()


def test_a_misspelt_condition_field_fails_check_with_line_and_suggestion(tmp_path: Path) -> None:
    """`ticket.bord:` used to pass check and never match; now it is refused."""
    path = _rules(tmp_path, condition="ticket.bord: HR")

    code, lines = _check(path)

    assert code == 1
    assert lines[0] == (
        f"{path}:6 [rules.0.if.ticket.bord]: rule 'leaver': field 'ticket.bord' is not in "
        "ticket.created events from connectwise, autotask; did you mean 'ticket.board'?")
    assert lines[-1] == "1 error in 1 file"


def test_a_misspelt_root_inside_any_is_refused(tmp_path: Path) -> None:
    """`tikcet.contact.name` nested under `any:` names its own line."""
    path = _rules(tmp_path, condition="any:\n        - ticket.type: Leaver\n"
                  "        - tikcet.contact.name: {exists: true}")

    code, lines = _check(path)

    assert code == 1
    assert lines[0].startswith(f"{path}:8 [rules.0.if.any.1.tikcet.contact.name]: rule 'leaver'")
    assert "did you mean 'ticket.contact.name'?" in lines[0]


def test_a_misspelt_template_path_is_refused(tmp_path: Path) -> None:
    """A template reading `ticket.contact.nmae` would fail on every event; check says so."""
    path = _rules(tmp_path, name="{{ ticket.contact.nmae }}")

    code, lines = _check(path)

    assert code == 1
    assert lines[0].startswith(f"{path}:10 [rules.0.launch.inputs.leaver_name]: rule 'leaver': "
                               "the template reads 'ticket.contact.nmae'")
    assert "did you mean 'ticket.contact.name'?" in lines[0]


def test_an_unknown_source_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """`from: [..., ncentrall]` used to be accepted by check."""
    text = textwrap.dedent("""\
        rules:
          - id: av
            on: alert.raised
            from: [datto-rmm, ncentrall]
            comment: {text: "{{ alert.message }}"}
        """)
    path = _rules(tmp_path, text=text)

    code, lines = _check(path)

    assert code == 1
    assert lines[0].startswith(f"{path}:4 [rules.0.from.1]: rule 'av': unknown source "
                               "'ncentrall' (did you mean 'ncentral'?)")
    assert "cw-prod" in lines[0]  # configured instance names are valid too


def test_a_field_of_another_vendor_is_named_as_such(tmp_path: Path) -> None:
    """`ticket.queue` is Autotask's; a ConnectWise-only rule reading it is told so."""
    path = _rules(tmp_path, text=LEAVER.format(condition="ticket.queue: HR",
                                               name="x").replace(", autotask", ""))

    code, lines = _check(path)

    assert code == 1
    assert "field 'ticket.queue' is not in ticket.created events from connectwise " \
           "(only autotask events carry it)" in lines[0]


@pytest.mark.parametrize("condition", [
    "ticket.custom_fields.Department: HR",          # an open map: any key
    "ticket.contact: {exists: true}",                # a parent of fields
    "client.key: acme",                              # every event has it
    "subject.id: {exists: true}",
])
def test_open_maps_parents_and_common_fields_pass(tmp_path: Path, condition: str) -> None:
    """Fields that exist (or are free-form) are accepted."""
    code, lines = _check(_rules(tmp_path, condition=condition))
    assert code == 0, lines


def test_templates_may_call_methods_of_a_field(tmp_path: Path) -> None:
    """`ticket.summary.lower()` reads past the field: a method, not a missing field."""
    code, lines = _check(_rules(tmp_path, name="{{ ticket.summary.lower() }} {{ range(1) }}"))
    assert code == 0, lines


def test_shipped_mappings_pass_with_the_catalog() -> None:
    """Every shipped rule reads only fields its sources emit."""
    result = runner.invoke(app, ["check", *SHIPPED])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK ")


def test_a_webhook_instance_declares_its_fields_in_its_config(tmp_path: Path) -> None:
    """A generic webhook source's `config.fields` are its catalog; without them its rules
    cannot be checked and are left alone."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "connectors.yaml").write_text(textwrap.dedent("""\
        sources:
          backups:
            vendor: webhook
            config:
              secret: ${BACKUPS_SECRET}
              fields:
                alert.resolved:
                  - {name: alert.job, type: string, description: Backup job, example: nightly}
          other:
            vendor: webhook
            config: {secret: "${OTHER_SECRET}"}
        """))
    rule = textwrap.dedent("""\
        rules:
          - id: job
            on: alert.resolved
            from: {source}
            if: {{{field}: nightly}}
            comment: {{text: x}}
        """)
    catalog = field_catalog(config / "connectors.yaml")

    def errors(source: str, field: str) -> list[str]:
        directory = tmp_path / f"m-{source}-{field}"
        directory.mkdir()
        (directory / "r.yaml").write_text(rule.format(source=source, field=field))
        return [e.message for e in check_rules([directory], PlaybookLibrary(),
                                               sources=catalog.names(), catalog=catalog)]

    assert errors("backups", "alert.job") == []
    assert errors("backups", "alert.jb") == [
        "rule 'job': field 'alert.jb' is not in alert.resolved events from backups; "
        "did you mean 'alert.job'?"]
    assert errors("other", "alert.anything") == []  # nothing declared: not checked
    assert errors("webhook", "alert.job") == []     # the vendor carries its instances' fields


def test_the_webhook_connector_accepts_declared_fields() -> None:
    """`fields` is part of a webhook instance's validated config (bad types refused)."""
    config = validate_config("webhook", {"secret": "s" * 16, "fields": {
        "alert.resolved": [{"name": "alert.job", "type": "string"}]}})
    assert config.model_dump()["fields"][EventKind.ALERT_RESOLVED][0]["name"] == "alert.job"
    with pytest.raises(InvalidConfig):
        validate_config("webhook", {"secret": "s" * 16, "fields": {
            "alert.resolved": [{"name": "alert.job", "type": "text"}]}})


def test_fields_command_lists_by_kind_and_vendor() -> None:
    """`mappings fields --vendor --kind` prints that slice of the catalog."""
    result = runner.invoke(app, ["fields", "--vendor", "datto-rmm", "--kind", "alert.resolved",
                                 *CONFIG])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("alert.resolved\n")
    assert "alert.category" in out and "datto-rmm: Monitor category" in out
    headings = [line for line in out.splitlines() if line and not line.startswith((" ", "'"))]
    assert headings == ["alert.resolved", "every event"]
    assert "ticket.board" not in out and "client.key" in out


def test_fields_command_json_and_unknown_vendor() -> None:
    """--json rows carry the sources; an unknown vendor gets a suggestion."""
    result = runner.invoke(app, ["fields", "--kind", "ticket.created", "--json", *CONFIG])
    rows = json.loads(result.output)
    board = next(r for r in rows if r["field"] == "ticket.board")
    assert set(board["sources"]) == {"connectwise", "autotask", "halopsa"}

    bad = runner.invoke(app, ["fields", "--vendor", "ninja-one", *CONFIG])
    assert bad.exit_code == 1
    assert "unknown vendor or source 'ninja-one' (did you mean 'ninjaone'?)" in bad.output


def test_schema_offers_the_field_and_source_names() -> None:
    """Editors complete `if:` keys and `from:` names from the schema; it still validates
    every shipped mapping file."""
    result = runner.invoke(app, ["schema", *CONFIG])
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    properties = schema["$defs"]["condition"]["properties"]
    assert {"ticket.board", "alert.category", "device.hostname", "client.key"} <= set(properties)
    assert "Service board name" in properties["ticket.board"]["description"]
    assert "ncentral" in json.dumps(schema["$defs"]["Rule"]["properties"]["from"])
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((REPO / "mappings").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for rule in data["rules"]:  # YAML 1.1 reads a bare `on:` key as true, as the loader
            rule["on"] = rule.pop(True, rule.get("on"))
        assert list(validator.iter_errors(data)) == [], path


def test_every_connector_declares_fields_for_the_kinds_it_polls() -> None:
    """Each registered connector with streams declares fields for each kind they emit."""
    for vendor, cls in load_registry().items():
        manifest = cls.manifest
        for name, stream in manifest.streams.items():
            missing = set(stream.kinds) - set(manifest.fields)
            assert not missing, f"{vendor} stream {name} emits {missing} without fields"


def test_field_set_semantics() -> None:
    """Conditions read fields or their parents; templates may also go past a field."""
    fields = FieldSet.of([FieldInfo("ticket.summary"), FieldInfo("ticket.contact.name"),
                          FieldInfo("ticket.custom_fields", "map")])
    assert fields.has("ticket.contact") and fields.has("ticket.custom_fields.Any Key")
    assert not fields.has("ticket.summary.lower")
    assert fields.has("ticket.summary.lower", template=True)
    assert not fields.has("ticket.contact.nmae", template=True)


def test_a_catalog_without_declarations_checks_nothing() -> None:
    """A vendor known only by name (not installed here) leaves its rules unchecked."""
    catalog = FieldCatalog.build({"connectwise": None})
    assert catalog.resolve(["connectwise"], [EventKind.TICKET_CREATED]) is None
    assert catalog.knows("ConnectWise")


def test_a_live_reload_with_a_catalog_keeps_the_good_rules(tmp_path: Path) -> None:
    """With a catalog, a reload that introduces `ticket.bord` is refused; the rules that
    were live keep running."""
    directory = tmp_path / "mappings"
    directory.mkdir()
    rule = "rules:\n  - id: c\n    on: ticket.created\n    if: {%s: HR}\n    comment: {text: x}\n"
    (directory / "a.yaml").write_text(rule % "ticket.board")
    catalog = field_catalog(REPO / "config" / "connectors.yaml")
    holder = RuleHolder.load(directory, PlaybookLibrary, catalog=catalog)
    assert len(holder.rules) == 1

    (directory / "a.yaml").write_text(rule % "ticket.bord")

    assert holder.reload() is False
    assert [r.id for r in holder.rules.rules] == ["c"]

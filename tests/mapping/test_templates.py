"""Templates: sandboxed, strict about missing names, compiled once, rendered per event."""

from __future__ import annotations

import pytest

from hub.core.mapping.engine import evaluate, explain
from hub.core.mapping.templates import TemplateRenderError, compile_template, render
from hub.errors import MappingError

from .conftest import RulesFactory, make_event

CTX = {
    "source": "cw-prod",
    "ticket": {"id": 7, "contact": {"name": "Ann", "email": None}, "custom_fields": {},
               "tags": ["a", "b"]},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ ticket.contact.name }}", "Ann"),
        ("{{ ticket.contact.email }}", ""),                          # null renders empty
        ("  {{ ticket.id }}\n", "7"),                                # trimmed
        ("{{ ticket.custom_fields['Last Day'] | default('none') }}", "none"),
        ("{{ ticket.nothing.deeper.still | default('x') }}", "x"),   # missing chain + default
        ("{{ ticket.contact.email | default('n/a', true) }}", "n/a"),
        ("{{ ticket.tags | join(', ') }}", "a, b"),
        ("{% if ticket.contact is defined %}yes{% endif %}", "yes"),
        ("{{ ticket.contact.name | upper }} #{{ ticket.id }}", "ANN #7"),
        ("plain text", "plain text"),
    ],
)
def test_render(source: str, expected: str) -> None:
    """Templates see the event context; null is empty; `default` rescues missing names."""
    assert render(compile_template(source, "comment.text"), CTX) == expected


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("{{ tikcet.id }}", "tikcet"),
        ("{{ ticket.contact.phone }}", "ticket.contact.phone"),
        ("{{ ticket.company.name }}", "ticket.company"),
        ("{{ ticket.custom_fields['Leaver Name'] }}", "ticket.custom_fields.Leaver Name"),
        ("{{ ticket.contact.name | default('') }} {{ ticket.nope }}", "ticket.nope"),
        ("{{ ticket.contact.email.lower() }}", "ticket.contact.email.lower"),
    ],
)
def test_missing_name_is_an_error_naming_it(source: str, missing: str) -> None:
    """StrictUndefined: a name missing from the event raises, naming the dotted path."""
    with pytest.raises(TemplateRenderError) as info:
        render(compile_template(source, "launch.inputs.x"), CTX)
    assert info.value.missing == missing
    assert f"'{missing}' is missing from the event" in str(info.value)
    assert str(info.value).startswith("launch.inputs.x: ")
    assert isinstance(info.value, MappingError)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ticket.__class__ }}",
        "{{ ticket.contact.update({'name': 'x'}) }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ ticket.id / 0 }}",
    ],
)
def test_sandbox_and_runtime_errors_are_render_errors(source: str) -> None:
    """Unsafe access and run-time failures become TemplateRenderError, never leak out."""
    with pytest.raises(TemplateRenderError):
        render(compile_template(source, "comment.text"), CTX)
    assert CTX["ticket"]["contact"]["name"] == "Ann"


def test_evaluate_raises_mapping_error_naming_rule_and_field(rules: RulesFactory) -> None:
    """evaluate() is all-or-nothing: one failing rule raises and no action is returned."""
    ruleset = rules("""
        rules:
          - id: good
            on: ticket.created
            comment: {text: fine}
          - id: leaver
            on: ticket.created
            launch:
              playbook: offboard
              inputs: {leaver_name: "{{ ticket.contact.name }}"}
    """)
    event = make_event(data={"ticket": {"id": 1}})
    with pytest.raises(MappingError) as info:
        evaluate(ruleset, event)
    message = str(info.value)
    assert message.startswith("rule 'leaver': launch.inputs.leaver_name: ")
    assert "'ticket.contact' is missing from the event" in message
    # explain() shows both: the good rule's action and the failing rule's error.
    result = explain(ruleset, event)
    assert [m.rule_id for m in result.matched] == ["good"]
    assert [e.rule_id for e in result.errors] == ["leaver"]


def test_templates_are_compiled_once_at_load(rules: RulesFactory) -> None:
    """The RuleSet holds compiled templates, keyed by rule field."""
    ruleset = rules("""
        rules:
          - id: r
            on: ticket.created
            launch:
              playbook: offboard
              client: "{{ client.id }}"
              inputs: {leaver_name: "{{ ticket.contact.name }}", convert: true}
    """)
    templates = ruleset.get("r").templates
    assert sorted(templates) == ["launch.client", "launch.inputs.leaver_name"]
    assert templates["launch.inputs.leaver_name"].paths == ("ticket.contact.name",)

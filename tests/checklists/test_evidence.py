"""Evidence forms: declaring typed fields, checking what a person entered, summarising it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hub.core.checklists import engine
from hub.core.checklists.evidence import (
    EvidenceField,
    EvidenceInvalid,
    check_values,
    summarise,
)
from hub.core.checklists.schema import Playbook

T0 = datetime(2025, 6, 13, 14, 0, tzinfo=UTC)

FORM = [
    EvidenceField(id="job", label="Backup job name"),
    EvidenceField(id="last_good", label="Last good backup", type="date"),
    EvidenceField(id="compliance", label="Patch compliance", type="number", min=0, max=100,
                  unit="%"),
    EvidenceField(id="encrypted", label="Disks encrypted", type="boolean"),
    EvidenceField(id="target", label="Mailbox converted to", type="choice",
                  choices=["shared mailbox", "archive", "deleted"]),
    EvidenceField(id="report", label="Report", type="url", required=False),
    EvidenceField(id="export", label="Export file", type="file", required=False),
    EvidenceField(id="checked", label="I checked every protected system", type="confirm"),
]

GOOD: dict[str, Any] = {"job": " Nightly SRV01 ", "last_good": "2025-06-12",
                        "compliance": "97.5%", "encrypted": "yes", "target": "shared mailbox",
                        "report": "https://rmm.example/report/7", "checked": "on"}


def test_good_values_are_cleaned() -> None:
    """Text is trimmed, numbers become numbers (unit allowed), yes/no become booleans."""
    clean = check_values("s", FORM, GOOD)
    assert clean == {"job": "Nightly SRV01", "last_good": "2025-06-12", "compliance": 97.5,
                     "encrypted": True, "target": "shared mailbox",
                     "report": "https://rmm.example/report/7", "checked": True}


def test_whole_numbers_stay_whole() -> None:
    """'98' and 98.0 are the integer 98."""
    assert check_values("s", FORM, {**GOOD, "compliance": 98.0})["compliance"] == 98
    assert check_values("s", FORM, {**GOOD, "compliance": "98"})["compliance"] == 98


@pytest.mark.parametrize(("field", "value", "message"), [
    ("job", None, "is required (Backup job name)"),
    ("job", "   ", "is required (Backup job name)"),
    ("last_good", "12/06/2025", "must be a date (YYYY-MM-DD)"),
    ("compliance", "lots", "must be a number"),
    ("compliance", "101", "must be at most 100%"),
    ("compliance", -1, "must be at least 0%"),
    ("compliance", "nan", "must be a finite number"),
    ("compliance", True, "must be a number"),
    ("encrypted", "maybe", "must be yes or no"),
    ("target", "printer", "must be one of: shared mailbox, archive, deleted"),
    ("report", "javascript:alert(1)", "must be a web address starting with https:// or http://"),
    ("checked", None, 'must be ticked: "I checked every protected system"'),
    ("checked", "no", 'must be ticked: "I checked every protected system"'),
    ("job", "a\x07b", "must not contain control characters"),
    ("job", "x" * 2001, "must be at most 2000 characters"),
    ("job", ["a"], "must be text"),
])
def test_bad_values_are_refused_with_the_field_and_why(field: str, value: Any,
                                                        message: str) -> None:
    """Each problem names the field and says what is wrong."""
    given = {**GOOD, field: value}
    with pytest.raises(EvidenceInvalid) as caught:
        check_values("verify-backups", FORM, given)
    assert caught.value.problems == [(field, message)]
    assert caught.value.step == "verify-backups"
    assert f"{field}: {message}" in caught.value.reason


def test_every_problem_is_reported_at_once_with_unknown_fields_first() -> None:
    """An unknown key and several missing fields are listed together."""
    with pytest.raises(EvidenceInvalid) as caught:
        check_values("s", FORM, {"jbo": "typo"})
    fields = [f for f, _ in caught.value.problems]
    assert fields == ["jbo", "job", "last_good", "compliance", "encrypted", "target", "checked"]
    assert "unknown field" in caught.value.problems[0][1]


def test_optional_fields_may_be_left_out() -> None:
    """Optional fields absent or blank are simply not recorded."""
    clean = check_values("s", FORM, {**GOOD, "report": "", "export": None})
    assert "report" not in clean and "export" not in clean


def test_summary_reads_in_form_order_with_labels_and_units() -> None:
    """The summary line people see on the run page and in the completion record."""
    text = summarise(FORM, check_values("s", FORM, GOOD))
    assert text == ("Backup job name: Nightly SRV01; Last good backup: 2025-06-12; "
                    "Patch compliance: 97.5%; Disks encrypted: yes; "
                    "Mailbox converted to: shared mailbox; Report: https://rmm.example/report/7; "
                    'confirmed "I checked every protected system"')


@pytest.mark.parametrize(("spec", "message"), [
    ({"id": "a", "label": "A", "type": "choice"}, "needs 'choices'"),
    ({"id": "a", "label": "A", "choices": ["x"]}, "only allowed with type 'choice'"),
    ({"id": "a", "label": "A", "min": 1}, "only allowed with type 'number'"),
    ({"id": "a", "label": "A", "type": "number", "min": 5, "max": 1}, "greater than 'max'"),
    ({"id": "A B", "label": "A"}, "String should match pattern"),
    ({"id": "a", "label": "A", "type": "colour"}, "Input should be"),
])
def test_bad_field_declarations_are_refused(spec: dict[str, Any], message: str) -> None:
    """A playbook author's mistake is caught at load time."""
    with pytest.raises(ValidationError, match=message):
        EvidenceField.model_validate(spec)


PLAYBOOK = Playbook.model_validate({
    "id": "backup", "title": "Backup", "version": 1,
    "steps": [
        {"id": "verify", "title": "Verify backups", "evidence_fields": [
            {"id": "job", "label": "Backup job name"},
            {"id": "last_good", "label": "Last good backup", "type": "date"}]},
        {"id": "after", "title": "Afterwards", "after": ["verify"]},
    ],
})


def _run() -> engine.RunState:
    return engine.launch(PLAYBOOK, run_id=1, client_id="acme", inputs={}, by="user:max",
                         now=T0, assign=lambda s: None, due=lambda r: T0).run


def test_duplicate_field_ids_are_refused() -> None:
    """Two fields of one step cannot share an id."""
    with pytest.raises(ValidationError, match="duplicate field id 'job'"):
        Playbook.model_validate({"id": "p", "title": "P", "version": 1, "steps": [
            {"id": "s", "title": "S", "evidence_fields": [
                {"id": "job", "label": "A"}, {"id": "job", "label": "B"}]}]})


def test_completing_keeps_the_values_in_the_fact_and_the_evidence() -> None:
    """The typed values are in the step_done fact; the evidence gets the labelled line."""
    outcome = engine.complete_step(PLAYBOOK, _run(), "verify", by="user:alice", now=T0,
                                   evidence="see ticket",
                                   values={"job": "Nightly", "last_good": "2025-06-12"})
    fact = outcome.facts[0]
    assert fact.action == "step_done"
    assert fact.data["fields"] == {"job": "Nightly", "last_good": "2025-06-12"}
    assert fact.data["evidence"] == "see ticket"
    assert outcome.run.step("verify").evidence == (
        "see ticket\nBackup job name: Nightly; Last good backup: 2025-06-12")


def test_a_person_must_fill_the_form() -> None:
    """Completing with values (even none) checks them; nothing changes when refused."""
    run = _run()
    with pytest.raises(EvidenceInvalid) as caught:
        engine.complete_step(PLAYBOOK, run, "verify", by="user:alice", now=T0, values={})
    assert [f for f, _ in caught.value.problems] == ["job", "last_good"]


def test_an_automatic_tick_carries_its_event_instead_of_the_form() -> None:
    """values=None (a mapping rule's tick): the event's evidence is enough."""
    outcome = engine.complete_step(PLAYBOOK, _run(), "verify", by="rule:backup", now=T0,
                                   evidence="datto-rmm alert 42")
    assert outcome.run.step("verify").evidence == "datto-rmm alert 42"
    assert "fields" not in outcome.facts[0].data


def test_a_step_without_a_form_refuses_stray_values() -> None:
    """Values for a step that declares no form are unknown fields."""
    run = engine.complete_step(PLAYBOOK, _run(), "verify", by="user:a", now=T0,
                               values={"job": "J", "last_good": "2025-01-01"}).run
    with pytest.raises(EvidenceInvalid, match="unknown field"):
        engine.complete_step(PLAYBOOK, run, "after", by="user:a", now=T0, values={"x": 1})

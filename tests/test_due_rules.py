"""Due rules that count from the launch, the originating event or a date input."""

from __future__ import annotations

from datetime import UTC, datetime
from textwrap import dedent

import pytest

from hub.config.playbooks import parse_playbook
from hub.core.calendars import Calendar, DueRule, DueSpec, due_from
from hub.errors import ConfigError

LONDON = Calendar.model_validate({"name": "london", "timezone": "Europe/London",
                                  "hours": {"start": "09:00", "end": "17:30"},
                                  "holidays": {"country": "GB", "subdiv": "ENG"}})
NEW_YORK = Calendar.model_validate({"name": "ny", "timezone": "America/New_York",
                                    "holidays": {"country": "US"}})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("text", "canonical", "anchor"), [
    ("4h", "4 hours", "launch"),
    ("4h after launch", "4 hours", "launch"),
    ("4h after event", "4 hours after event", "event"),
    ("within 4 hours of the event", "4 hours after event", "event"),
    ("8 business hours after event", "8 business hours after event", "event"),
    ("4 hours after last_day 17:00", "4 hours after last_day 17:00", "last_day"),
    ("2 business days after last_day", "2 business days after last_day", "last_day"),
    ({"in": "4h", "after": "last_day", "at": "17:00"}, "4 hours after last_day 17:00",
     "last_day"),
    ({"in": "1 business day", "after": "event"}, "1 business day after event", "event"),
])
def test_due_forms_and_their_one_line_spelling(text: object, canonical: str,
                                               anchor: str) -> None:
    """Every form parses to a rule and an anchor and prints back in one canonical line."""
    spec = DueSpec.parse(text)  # type: ignore[arg-type]
    assert (str(spec), spec.anchor) == (canonical, anchor)
    assert DueSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(("text", "message"), [
    ("4h after event 17:00", "goes with a date input"),
    ("4 parsecs after event", "the amount"),
    ("soon", "count from elsewhere"),
    ({"after": "event"}, "'in' \\(required\\)"),
    ({"in": "4h", "after": "last_day", "at": 1020}, "quoted"),
    ("4h after last_day 25:00", "invalid time"),
])
def test_bad_due_rules_say_what_is_accepted(text: object, message: str) -> None:
    """Mistakes are refused with the forms that would work."""
    with pytest.raises(ValueError, match=message):
        DueSpec.parse(text)  # type: ignore[arg-type]


def test_within_four_hours_of_the_event_not_of_the_launch() -> None:
    """A ticket logged at 10:00 and processed at 11:30 is due at 14:00, not 15:30."""
    spec = DueSpec.parse("4h after event")
    assert due_from(spec, launched_at=utc(2026, 3, 2, 11, 30), calendar=LONDON,
                    event_at=utc(2026, 3, 2, 10)) == utc(2026, 3, 2, 14)
    # a run started by hand has no event: the launch is the anchor
    assert due_from(spec, launched_at=utc(2026, 3, 2, 11, 30), calendar=LONDON) == utc(
        2026, 3, 2, 15, 30)


def test_business_hours_after_an_evening_event_start_next_morning() -> None:
    """4 business hours after a Friday 20:00 ticket in New York: Monday 13:00 local."""
    spec = DueSpec.parse("4 business hours after event")
    got = due_from(spec, launched_at=utc(2026, 3, 7, 9), calendar=NEW_YORK,
                   event_at=utc(2026, 3, 7, 1))  # Fri 6 Mar 20:00 EST
    assert got == utc(2026, 3, 9, 17)  # Mon 9 Mar 13:00 EDT (DST began on the Sunday)


@pytest.mark.parametrize(("spec", "inputs", "expected"), [
    # 17:00 on the last day is 17:00 BST (16:00 UTC) in July; 4 h later
    ("4 hours after last_day 17:00", {"last_day": "2026-07-10"}, utc(2026, 7, 10, 20)),
    # the same in the client's winter time
    ("4 hours after last_day 17:00", {"last_day": "2026-12-04"}, utc(2026, 12, 4, 21)),
    # 2 business days after Thursday 2 April 2026: Good Friday and Easter Monday are closed
    ("2 business days after last_day", {"last_day": "2026-04-02"}, utc(2026, 4, 8, 16, 30)),
    # no last day (an immediate departure): counted from the launch
    ("4 hours after last_day 17:00", {"last_day": None}, utc(2026, 7, 1, 14)),
])
def test_deadlines_from_a_date_input_in_the_clients_calendar(
        spec: str, inputs: dict[str, str | None], expected: datetime) -> None:
    """A date input anchors the deadline at its day (and time) in the client's zone."""
    assert due_from(DueSpec.parse(spec), launched_at=utc(2026, 7, 1, 10), calendar=LONDON,
                    inputs=inputs) == expected


def _playbook(due: str, *, input_type: str = "date") -> str:
    return dedent(f"""\
        id: leaver
        title: Leaver
        version: 1
        inputs:
          - id: last_day
            title: Last day
            type: {input_type}
            required: false
        steps:
          - id: first
            title: First
          - id: revoke
            title: Revoke
            due: {due}
        """)


@pytest.mark.parametrize(("due", "input_type", "message"), [
    ("4h after leaving_day 17:00", "date", "'leaving_day' is not a date input"),
    ("4h after last_day", "string", "'last_day' is not a date input"),
    ("4h after event 09:00", "date", "goes with a date input"),
])
def test_playbook_due_mistakes_name_file_and_line(due: str, input_type: str,
                                                  message: str) -> None:
    """A due rule naming an unknown or non-date input fails the playbook at its line."""
    with pytest.raises(ConfigError) as info:
        parse_playbook(_playbook(due, input_type=input_type), "playbooks/leaver.yaml")
    assert (info.value.file, info.value.line) == ("playbooks/leaver.yaml", 14)
    assert message in str(info.value)


def test_a_mapping_due_is_stored_in_its_one_line_form() -> None:
    """{in, after, at} validates like the text form and is kept as that text."""
    pb = parse_playbook(_playbook("{in: 4h, after: last_day, at: '17:00'}"), "leaver.yaml")
    assert pb.step("revoke").due == "4 hours after last_day 17:00"
    assert DueSpec.parse(pb.step("revoke").due or "").rule == DueRule.parse("4h")

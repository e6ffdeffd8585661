"""Tests for business-hours calendars, due-rule parsing, due-date computation and the loader."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from textwrap import dedent

import pytest
from pydantic import BaseModel, ValidationError

from hub.config.calendars import load_calendars
from hub.core.calendars import (
    DEFAULT_CALENDAR,
    Calendar,
    DueRule,
    DueUnit,
    due_at,
    is_working_time,
    next_opening,
)
from hub.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

LONDON = Calendar.model_validate(
    {
        "name": "london",
        "timezone": "Europe/London",
        "hours": {"start": "09:00", "end": "17:30"},
        "holidays": {"country": "GB", "subdiv": "ENG"},
    }
)
NEW_YORK = Calendar.model_validate(
    {
        "name": "new-york",
        "timezone": "America/New_York",
        "hours": {"start": "09:00", "end": "17:00"},
        "holidays": {"country": "US"},
    }
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --------------------------------------------------------------------------- due_at

# 2024 facts used below. UK: Good Friday 29 Mar, Easter Monday 1 Apr, BST starts Sun 31 Mar,
# ends Sun 27 Oct; Christmas Wed 25 Dec, Boxing Day Thu 26 Dec. US: DST starts Sun 10 Mar,
# ends Sun 3 Nov; Independence Day Thu 4 Jul; Thanksgiving Thu 28 Nov; Christmas Wed 25 Dec.
LONDON_CASES = [
    # (id, start UTC, rule, expected UTC)
    ("fri-1bd-to-monday-close", utc(2024, 3, 8, 10), "1 business day", utc(2024, 3, 11, 17, 30)),
    ("0bd-is-close-same-day", utc(2024, 3, 8, 10), "0 business days", utc(2024, 3, 8, 17, 30)),
    # Thursday before Easter: Good Friday, weekend, Easter Monday skipped; BST began meanwhile.
    ("easter-and-dst", utc(2024, 3, 28, 10), "1 business day", utc(2024, 4, 2, 16, 30)),
    ("sat-from-monday", utc(2024, 3, 9, 10), "1 business day", utc(2024, 3, 12, 17, 30)),
    ("after-hours", utc(2024, 3, 11, 18), "1 business day", utc(2024, 3, 13, 17, 30)),
    ("before-opening", utc(2024, 3, 11, 7), "1 business day", utc(2024, 3, 12, 17, 30)),
    ("start-on-christmas", utc(2024, 12, 25, 10), "1 business day", utc(2024, 12, 30, 17, 30)),
    ("christmas-eve-2bd", utc(2024, 12, 24, 12), "2 business days", utc(2024, 12, 30, 17, 30)),
    # 15:00 BST Friday: 2.5h left that day, 1.5h on Monday morning, now GMT.
    ("bh-across-fall-back", utc(2024, 10, 25, 14), "4 business hours", utc(2024, 10, 28, 10, 30)),
    ("bh-after-hours", utc(2024, 3, 11, 18), "4 business hours", utc(2024, 3, 12, 13)),
    ("bh-early", utc(2024, 3, 11, 7), "4 business hours", utc(2024, 3, 11, 13)),
    ("4h-overnight-is-wall-clock", utc(2024, 3, 11, 16), "4h", utc(2024, 3, 11, 20)),
    ("4bh-overnight", utc(2024, 3, 11, 16), "4 business hours", utc(2024, 3, 12, 11, 30)),
    ("bh-ends-at-close", utc(2024, 3, 11, 15, 30), "2 business hours", utc(2024, 3, 11, 17, 30)),
    ("8bh-from-opening", utc(2024, 3, 11, 9), "8 business hours", utc(2024, 3, 11, 17)),
    ("bh-over-christmas", utc(2024, 12, 24, 16), "4 business hours", utc(2024, 12, 27, 11, 30)),
    # Calendar days keep the local wall time across DST; hours are elapsed time.
    ("1d-keeps-wall-time-dst", utc(2024, 3, 30, 10), "1d", utc(2024, 3, 31, 9)),
    ("24h-is-elapsed-dst", utc(2024, 3, 30, 10), "24 hours", utc(2024, 3, 31, 10)),
    ("1w-across-fall-back", utc(2024, 10, 25, 11), "1w", utc(2024, 11, 1, 12)),
    ("90-minutes", utc(2024, 3, 11, 16), "90 minutes", utc(2024, 3, 11, 17, 30)),
]

NEW_YORK_CASES = [
    ("fri-1bd-across-dst", utc(2024, 3, 8, 15), "1 business day", utc(2024, 3, 11, 21)),
    ("8bh-across-dst-weekend", utc(2024, 3, 8, 18), "8 business hours", utc(2024, 3, 11, 17)),
    ("thanksgiving-skipped", utc(2024, 11, 27, 20), "1 business day", utc(2024, 11, 29, 22)),
    ("fall-back-weekend", utc(2024, 11, 1, 16), "1 business day", utc(2024, 11, 4, 22)),
    # 15:00 EST on Christmas Eve: 4h later is midnight UTC, business hours resume on the 26th.
    ("4h-christmas-eve", utc(2024, 12, 24, 20), "4h", utc(2024, 12, 25, 0)),
    ("4bh-christmas-eve", utc(2024, 12, 24, 20), "4 business hours", utc(2024, 12, 26, 16)),
    ("start-on-july-4th", utc(2024, 7, 4, 14), "4 business hours", utc(2024, 7, 5, 17)),
    # 02:00 UTC Monday is still Sunday evening in New York: the local day decides.
    ("utc-monday-is-local-sunday", utc(2024, 3, 11, 2), "1 business day", utc(2024, 3, 12, 21)),
]


@pytest.mark.parametrize(
    ("start", "rule", "expected"),
    [pytest.param(s, r, e, id=i) for i, s, r, e in LONDON_CASES],
)
def test_due_at_london(start: datetime, rule: str, expected: datetime) -> None:
    """Due dates in Europe/London honour weekends, English bank holidays, hours and DST."""
    result = due_at(start, DueRule.parse(rule), LONDON)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "rule", "expected"),
    [pytest.param(s, r, e, id=i) for i, s, r, e in NEW_YORK_CASES],
)
def test_due_at_new_york(start: datetime, rule: str, expected: datetime) -> None:
    """Due dates in America/New_York honour weekends, US federal holidays, hours and DST."""
    assert due_at(start, DueRule.parse(rule), NEW_YORK) == expected


def test_due_at_accepts_any_aware_start_and_rejects_naive() -> None:
    """A start in another zone is converted first; a naive start is refused."""
    paris = timezone(timedelta(hours=1))
    rule = DueRule.parse("1 business day")
    assert due_at(datetime(2024, 3, 8, 11, tzinfo=paris), rule, LONDON) == utc(2024, 3, 11, 17, 30)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2024, 3, 8, 10), rule, LONDON)


@pytest.mark.parametrize(
    ("holidays", "start", "expected"),
    [
        pytest.param(
            {"country": "US"}, utc(2024, 10, 11, 15), utc(2024, 10, 15, 21), id="columbus-closed"
        ),
        pytest.param(
            {"country": "US", "exclude": ["Columbus Day"]},
            utc(2024, 10, 11, 15), utc(2024, 10, 14, 21), id="exclude-by-name",
        ),
        pytest.param(
            {"country": "US", "exclude": ["2024-10-14"]},
            utc(2024, 10, 11, 15), utc(2024, 10, 14, 21), id="exclude-by-date",
        ),
        pytest.param(
            {"country": "US", "extra": ["2024-10-15"]},
            utc(2024, 10, 11, 15), utc(2024, 10, 16, 21), id="extra-closure",
        ),
        pytest.param({}, utc(2024, 10, 11, 15), utc(2024, 10, 14, 21), id="no-holidays"),
    ],
)
def test_holiday_extra_and_exclude(holidays: dict[str, object], start: datetime,
                                   expected: datetime) -> None:
    """`extra` closes days, `exclude` (a date or a holiday name) reopens public holidays."""
    calendar = Calendar.model_validate(
        {"name": "x", "timezone": "America/New_York", "hours": {"start": "09:00", "end": "17:00"},
         "holidays": holidays}
    )
    assert due_at(start, DueRule.parse("1 business day"), calendar) == expected


def test_observed_holiday_follows_excluded_name() -> None:
    """Excluding 'Christmas Day' by name also reopens its '(observed)' substitute day."""
    calendar = Calendar.model_validate(
        {"name": "x", "timezone": "Europe/London",
         "holidays": {"country": "GB", "subdiv": "ENG", "exclude": ["Christmas Day"]}}
    )
    assert LONDON.is_working_day(date(2022, 12, 27)) is False  # Christmas Day (observed)
    assert calendar.is_working_day(date(2022, 12, 27)) is True
    assert calendar.is_working_day(date(2022, 12, 26)) is False  # Boxing Day still closed


@pytest.mark.parametrize(
    ("moment", "working", "opening"),
    [
        pytest.param(utc(2024, 3, 11, 10), True, utc(2024, 3, 11, 10), id="open"),
        pytest.param(utc(2024, 3, 11, 17, 30), False, utc(2024, 3, 12, 9), id="at-close"),
        pytest.param(utc(2024, 3, 9, 12), False, utc(2024, 3, 11, 9), id="saturday"),
        pytest.param(utc(2024, 3, 28, 17, 30), False, utc(2024, 4, 2, 8), id="easter-then-bst"),
        pytest.param(utc(2024, 12, 25, 12), False, utc(2024, 12, 27, 9), id="christmas"),
    ],
)
def test_is_working_time_and_next_opening(moment: datetime, working: bool,
                                          opening: datetime) -> None:
    """Working time is [start, end) on working days; next opening is the moment itself if open."""
    assert is_working_time(moment, LONDON) is working
    assert next_opening(moment, LONDON) == opening


def test_calendar_with_all_days_closed_fails_clearly() -> None:
    """A calendar whose only working day is always a closure day raises instead of looping."""
    mondays = [date(2024, 1, 1) + timedelta(weeks=w) for w in range(60)]
    calendar = Calendar.model_validate(
        {"name": "shut", "timezone": "UTC", "workdays": ["mon"], "holidays": {"extra": mondays}}
    )
    with pytest.raises(ValueError, match="no working day"):
        due_at(utc(2024, 1, 1, 10), DueRule.parse("1 business hour"), calendar)


# --------------------------------------------------------------------------- DueRule parsing


@pytest.mark.parametrize(
    ("text", "amount", "unit", "business", "canonical"),
    [
        ("30m", 30, DueUnit.MINUTES, False, "30 minutes"),
        ("4h", 4, DueUnit.HOURS, False, "4 hours"),
        ("2d", 2, DueUnit.DAYS, False, "2 days"),
        ("1w", 1, DueUnit.WEEKS, False, "1 week"),
        ("90 minutes", 90, DueUnit.MINUTES, False, "90 minutes"),
        ("1 minute", 1, DueUnit.MINUTES, False, "1 minute"),
        ("4 Hours", 4, DueUnit.HOURS, False, "4 hours"),
        ("2 DAYS", 2, DueUnit.DAYS, False, "2 days"),
        ("3 business days", 3, DueUnit.DAYS, True, "3 business days"),
        ("8 business hours", 8, DueUnit.HOURS, True, "8 business hours"),
        ("1 business day", 1, DueUnit.DAYS, True, "1 business day"),
        ("1 Business Hour", 1, DueUnit.HOURS, True, "1 business hour"),
        ("5 working days", 5, DueUnit.DAYS, True, "5 business days"),
        ("  2 weeks ", 2, DueUnit.WEEKS, False, "2 weeks"),
    ],
)
def test_parse_due_rule(text: str, amount: int, unit: DueUnit, business: bool,
                        canonical: str) -> None:
    """Short and long forms, any case, singular or plural, parse to the same rule."""
    rule = DueRule.parse(text)
    assert (rule.amount, rule.unit, rule.business) == (amount, unit, business)
    assert str(rule) == canonical
    assert DueRule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "accepted forms"),
        ("soon", "accepted forms"),
        ("4", "accepted forms"),
        ("h", "accepted forms"),
        ("4.5h", "accepted forms"),
        ("-1h", "accepted forms"),
        ("3 fortnights", "accepted forms"),
        ("2 business weeks", "hours or days"),
        ("30 business minutes", "hours or days"),
        ("3 business", "accepted forms"),
        ("10001 business days", "0 to 10000"),
    ],
)
def test_parse_due_rule_errors(text: str, message: str) -> None:
    """Bad text raises ValueError naming the text and listing what is accepted."""
    with pytest.raises(ValueError, match=message) as info:
        DueRule.parse(text)
    assert repr(text) in str(info.value)
    assert "3 business days" in str(info.value)


def test_due_rule_as_pydantic_field() -> None:
    """A DueRule field validates from text, reports bad text, and dumps to JSON as text."""

    class Step(BaseModel):
        due: DueRule

    step = Step.model_validate({"due": "3 Business Days"})
    assert step.due == DueRule(3, DueUnit.DAYS, business=True)
    assert step.model_dump(mode="json") == {"due": "3 business days"}
    assert Step.model_validate(step.model_dump()) == step
    assert Step.model_json_schema()["properties"]["due"]["type"] == "string"
    with pytest.raises(ValidationError, match="invalid due rule 'tomorrow'"):
        Step.model_validate({"due": "tomorrow"})


# --------------------------------------------------------------------------- loader


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendars.yaml"
    path.write_text(dedent(text).lstrip(), encoding="utf-8")
    return path


def test_missing_file_gives_builtin_default(tmp_path: Path) -> None:
    """No calendars file: one `default` calendar, UTC Mon-Fri 09:00-17:00, no holidays."""
    calendars = load_calendars(tmp_path / "nope.yaml")
    assert calendars == {"default": DEFAULT_CALENDAR}
    assert DEFAULT_CALENDAR.timezone == "UTC"
    assert DEFAULT_CALENDAR.workdays == (1, 2, 3, 4, 5)
    assert (DEFAULT_CALENDAR.hours.start.hour, DEFAULT_CALENDAR.hours.end.hour) == (9, 17)
    assert DEFAULT_CALENDAR.holidays.country is None


def test_shipped_example_loads() -> None:
    """config/calendars.yaml loads, has `default`, and its US calendar works Columbus Day."""
    calendars = load_calendars(REPO / "config" / "calendars.yaml")
    assert "default" in calendars
    us = calendars["us-east"]
    assert us.is_working_day(date(2024, 10, 14))
    assert not us.is_working_day(date(2024, 11, 28))


def test_loader_reads_names_env_and_workday_names(tmp_path: Path) -> None:
    """Weekday names, quoted times, dates and ${VAR} references are all understood."""
    path = write(tmp_path, """
        calendars:
          default:
            timezone: ${OFFICE_TZ}
            workdays: [Tue, wednesday, thu, fri, sat]
            hours: {start: "08:30", end: "16:00"}
            holidays: {country: gb, subdiv: sct, extra: [2024-07-01]}
    """)
    calendar = load_calendars(path, env={"OFFICE_TZ": "Europe/London"})["default"]
    assert calendar.name == "default"
    assert calendar.workdays == (2, 3, 4, 5, 6)
    assert (calendar.holidays.country, calendar.holidays.subdiv) == ("GB", "SCT")
    assert calendar.model_dump()["workdays"] == ["tue", "wed", "thu", "fri", "sat"]


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        pytest.param("calendars:\n  default: [unclosed\n", 3, None, "YAML syntax error",
                     id="broken-yaml"),
        pytest.param(
            "calendars:\n  default:\n    timezone: UTC\n    holidays:\n      country: XX\n",
            5, "calendars.default.holidays.country", "unknown holiday country 'XX'",
            id="unknown-country",
        ),
        pytest.param(
            "calendars:\n  default:\n    timezone: UTC\n    holidays: {country: GB, subdiv: XYZ}\n",
            4, "calendars.default.holidays.subdiv", "GB has no subdivision 'XYZ'",
            id="unknown-subdiv",
        ),
        pytest.param(
            "calendars:\n  default:\n    timezone: Europe/Londres\n",
            3, "calendars.default.timezone", "unknown IANA time zone", id="bad-zone",
        ),
        pytest.param(
            "calendars:\n  default:\n    timezone: UTC\n    hours:\n      end: 17:30\n",
            5, "calendars.default.hours.end", "quoted", id="unquoted-time",
        ),
        pytest.param(
            'calendars:\n  default:\n    timezone: UTC\n    hours: {start: "18:00", end: "9:00"}\n',
            4, "calendars.default.hours", "must be before end", id="start-after-end",
        ),
        pytest.param(
            "calendars:\n  default:\n    timezone: UTC\n    workdays: [mon, funday]\n",
            4, "calendars.default.workdays", "unknown weekday 'funday'", id="bad-weekday",
        ),
        pytest.param(
            "calendars:\n  default:\n    timezone: UTC\n    hols: {}\n",
            4, "calendars.default.hols", "unknown key 'hols'", id="typo-key",
        ),
        pytest.param(
            "calendars:\n  default:\n    timezone: UTC\n"
            "    holidays: {country: US, exclude: [Boxing Day]}\n",
            4, "calendars.default.holidays.exclude", "'Boxing Day' is not a US public holiday",
            id="unknown-holiday-name",
        ),
        pytest.param(
            "calendars:\n  office:\n    timezone: UTC\n", 1, "calendars",
            "'default' calendar is required", id="no-default",
        ),
        pytest.param("zones: {}\n", 1, None, "'calendars:'", id="no-calendars-key"),
        pytest.param(
            "calendars:\n  default:\n    timezone: ${MISSING_TZ}\n", 3,
            "calendars.default.timezone", "MISSING_TZ is not set", id="missing-env",
        ),
    ],
)
def test_loader_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int,
                                              key: str | None, message: str) -> None:
    """Every loader error is a ConfigError pointing at the file, line and key at fault."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_calendars(path, env={})
    error = info.value
    assert error.file == str(path)
    assert error.line == line
    assert error.key == key
    assert message in error.message

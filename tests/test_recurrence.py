"""Recurrence rules: RRULEs, cron, friendly sugar, daylight saving and catch-up (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from hub.core.recurrence import CatchUp, Recurrence, due_occurrences

LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
ON_TIME = timedelta(minutes=15)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("text", "rrule"), [
    ("monthly on day 1 at 09:00", "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0;BYSECOND=0"),
    ("first Monday of each quarter at 08:00",
     "FREQ=MONTHLY;BYMONTH=1,4,7,10;BYDAY=1MO;BYHOUR=8;BYMINUTE=0;BYSECOND=0"),
    ("every weekday at 07:30",
     "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=7;BYMINUTE=30;BYSECOND=0"),
    ("daily at 07:30", "FREQ=DAILY;BYHOUR=7;BYMINUTE=30;BYSECOND=0"),
    ("weekly on mon at 08:00", "FREQ=WEEKLY;BYDAY=MO;BYHOUR=8;BYMINUTE=0;BYSECOND=0"),
    ("weekly on tue, thursday at 08:00",
     "FREQ=WEEKLY;BYDAY=TU,TH;BYHOUR=8;BYMINUTE=0;BYSECOND=0"),
    ("quarterly on day 15 at 10:00",
     "FREQ=MONTHLY;BYMONTH=1,4,7,10;BYMONTHDAY=15;BYHOUR=10;BYMINUTE=0;BYSECOND=0"),
    ("monthly on the last day at 16:00",
     "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=16;BYMINUTE=0;BYSECOND=0"),
    ("last Friday of each month at 15:00",
     "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=15;BYMINUTE=0;BYSECOND=0"),
])
def test_friendly_forms_compile_to_an_rrule(text: str, rrule: str) -> None:
    """Each friendly phrase is sugar for one RFC 5545 rule."""
    parsed = Recurrence.parse(text)
    assert (parsed.kind, parsed.text, parsed.source) == ("rrule", f"RRULE:{rrule}", text)


def test_three_spellings_of_one_schedule_agree_for_a_year() -> None:
    """Friendly, RRULE and cron forms of "09:00 on the 1st" fire at the same instants."""
    forms = ["monthly on day 1 at 09:00", "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9",
             "RRULE:FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0", "0 9 1 * *",
             "cron: 0 9 1 * *"]
    seen = [[o.at for o in Recurrence.parse(f).between(utc(2025, 12, 31), utc(2026, 12, 31),
                                                      LONDON)] for f in forms]
    assert all(s == seen[0] for s in seen)
    assert len(seen[0]) == 12
    assert seen[0][0] == utc(2026, 1, 1, 9) and seen[0][6] == utc(2026, 7, 1, 8)  # BST


def test_quarter_and_month_boundaries() -> None:
    """The first Monday of each quarter, and the last day of each month, over a year."""
    quarter = Recurrence.parse("first Monday of each quarter at 08:00")
    got = [o.wall for o in quarter.between(utc(2026, 1, 1), utc(2027, 1, 1), NEW_YORK)]
    assert got == [datetime(2026, 1, 5, 8), datetime(2026, 4, 6, 8), datetime(2026, 7, 6, 8),
                   datetime(2026, 10, 5, 8)]
    month_end = Recurrence.parse("monthly on the last day at 16:00")
    days = [o.wall.day for o in month_end.between(utc(2026, 1, 1), utc(2027, 1, 1), LONDON)]
    assert days == [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


# 2026: London springs forward Sun 29 Mar 01:00 GMT→02:00 BST and falls back Sun 25 Oct
# 02:00 BST→01:00 GMT; New York springs forward Sun 8 Mar 02:00 EST→03:00 EDT and falls
# back Sun 1 Nov 02:00 EDT→01:00 EST.
@pytest.mark.parametrize(("tz", "rule", "days", "expected"), [
    # 01:30 does not exist on the spring day: it fires one gap later (02:30 BST = 01:30 UTC)
    (LONDON, "daily at 01:30", (28, 3, 2026),
     [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]),
    # 01:30 happens twice on the autumn day: it fires once, at the first (BST) one
    (LONDON, "30 1 * * *", (24, 10, 2026),
     [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
    (NEW_YORK, "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", (7, 3, 2026),
     [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]),
    (NEW_YORK, "every day at 01:30", (31, 10, 2026),
     [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]),
])
def test_dst_transitions_neither_skip_nor_double(tz: ZoneInfo, rule: str,
                                                 days: tuple[int, int, int],
                                                 expected: list[datetime]) -> None:
    """Across each DST change of a European and a US zone, one occurrence per day."""
    day, month, year = days
    start = datetime(year, month, day, tzinfo=tz)
    got = Recurrence.parse(rule).between(start, start + timedelta(days=3), tz)
    assert [o.at for o in got] == expected
    assert len({o.key for o in got}) == 3


@pytest.mark.parametrize(("tz", "spring", "autumn"), [
    (LONDON, datetime(2026, 3, 29), datetime(2026, 10, 25)),
    (NEW_YORK, datetime(2026, 3, 8), datetime(2026, 11, 1)),
])
def test_hourly_rules_follow_the_wall_clock_across_dst(tz: ZoneInfo, spring: datetime,
                                                       autumn: datetime) -> None:
    """An hourly rule fires once per real hour of the 23-hour day (the missing wall hour
    is the same instant as the next) and once per wall hour of the 25-hour day."""
    hourly = Recurrence.parse("FREQ=HOURLY;BYMINUTE=0")
    for day, hours in ((spring, 23), (autumn, 24)):
        start = day.replace(tzinfo=tz)
        got = hourly.between(start - timedelta(seconds=1),
                             (day + timedelta(days=1)).replace(tzinfo=tz) - timedelta(seconds=1),
                             tz)
        assert len(got) == hours
        assert len({o.at for o in got}) == hours  # no instant twice
        assert all(b.at - a.at in (timedelta(hours=1), timedelta(hours=2))
                   for a, b in pairwise(got))
        assert not hourly.once_a_day and got[0].key == f"{day:%Y-%m-%d}T00:00"


@pytest.mark.parametrize("text", [
    "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1;BYHOUR=9",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=15",
    "DTSTART:20250107T083000\nRRULE:FREQ=WEEKLY;INTERVAL=3",
    "DTSTART:20240131T170000\nRRULE:FREQ=MONTHLY;INTERVAL=2",
    "DTSTART:20240315T120000\nRRULE:FREQ=YEARLY",
    "FREQ=HOURLY;INTERVAL=5;BYMINUTE=10",
    "FREQ=DAILY;INTERVAL=9;BYHOUR=6,18",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=17",
])
def test_starting_near_now_keeps_the_interval_phase(text: str) -> None:
    """Evaluation starts near the window, not at DTSTART; it must give what iterating from
    DTSTART gives (checked against dateutil directly)."""
    rule = Recurrence.parse(text)
    start, end = utc(2026, 2, 1), utc(2026, 9, 1)
    body = rule.text.split("RRULE:", 1)[1]
    full = rrulestr(body, dtstart=rule.anchor)
    expected = sorted({w.replace(tzinfo=UTC) for w in full.between(
        datetime(2026, 1, 30), datetime(2026, 9, 3), inc=True)
        if start < w.replace(tzinfo=UTC) <= end})
    assert [o.at for o in rule.between(start, end, UTC)] == expected
    assert expected


def test_dtstart_fixes_the_phase_of_every_other_week() -> None:
    """A DTSTART (local wall time) anchors INTERVAL=2 and supplies the weekday and time."""
    rule = Recurrence.parse("DTSTART:20260105T080000\nRRULE:FREQ=WEEKLY;INTERVAL=2")
    got = rule.upcoming(utc(2026, 3, 1), LONDON, 3)
    assert [o.wall for o in got] == [datetime(2026, 3, 2, 8), datetime(2026, 3, 16, 8),
                                     datetime(2026, 3, 30, 8)]
    assert got[2].at == utc(2026, 3, 30, 7)  # 08:00 BST


@pytest.mark.parametrize(("text", "message"), [
    ("FREQ=DAILY", "say the time of day"),
    ("FREQ=WEEKLY;BYHOUR=9", "say the weekday"),
    ("FREQ=MONTHLY;BYHOUR=9", "say the day"),
    ("FREQ=MINUTELY", "at most hourly"),
    ("FREQ=DAILY;BYHOUR=9;COUNT=3;UNTIL=20270101T000000", "COUNT or UNTIL"),
    ("FREQ=DAILY;BYHOUR=9;BYFOO=1", "unknown part"),
    ("DTSTART;TZID=Europe/London:20260101T090000\nRRULE:FREQ=DAILY", "local wall time"),
    ("FREQ=DAILY;BYHOUR=99", "invalid RRULE"),
    ("0 9 31 2 *", "invalid cron"),
    ("cron: 0 9 * *", "five fields"),
    ("first Blursday of each month at 09:00", "invalid weekday"),
    ("fifth Monday of each month at 09:00", "first, second"),
    ("monthly on day 29 at 09:00", "1-28"),
])
def test_bad_rules_name_what_is_wrong(text: str, message: str) -> None:
    """Malformed or underspecified rules are refused with a reason."""
    with pytest.raises(ValueError, match=message):
        Recurrence.parse(text)


def test_cron_only_fires_once_a_day_when_minute_and_hour_are_fixed() -> None:
    """Occurrences of sub-daily rules are keyed by date and time, others by date."""
    assert Recurrence.parse("0 9 * * 1-5").once_a_day
    assert not Recurrence.parse("0 9,17 * * *").once_a_day
    every_quarter_hour = Recurrence.parse("*/15 * * * *")
    got = every_quarter_hour.between(utc(2026, 5, 1, 9), utc(2026, 5, 1, 10), LONDON)
    assert [o.key for o in got] == ["2026-05-01T10:15", "2026-05-01T10:30", "2026-05-01T10:45",
                                    "2026-05-01T11:00"]


# --------------------------------------------------------------------------- catch-up

DAILY = Recurrence.parse("daily at 09:00")


@pytest.mark.parametrize(("policy", "expected"), [
    (CatchUp.ALL, ["2026-11-21", "2026-11-22", "2026-11-23"]),
    (CatchUp.LATEST, ["2026-11-23"]),
    (CatchUp.NONE, ["2026-11-23"]),
])
def test_a_three_day_outage_by_policy(policy: CatchUp, expected: list[str]) -> None:
    """Last launched on the 20th, back at 09:05 on the 23rd: all, latest or only on time."""
    now = utc(2026, 11, 23, 9, 5)
    got = due_occurrences(DAILY, policy, now, ZoneInfo("UTC"), "2026-11-20", on_time=ON_TIME)
    assert [o.key for o in got] == expected


def test_none_skips_what_is_late_and_nothing_launches_twice() -> None:
    """catch_up none launches nothing 20 minutes late; an already launched key never again."""
    late = utc(2026, 11, 23, 9, 20)
    assert due_occurrences(DAILY, CatchUp.NONE, late, UTC_ZONE, "2026-11-20",
                           on_time=ON_TIME) == []
    for policy in CatchUp:
        assert due_occurrences(DAILY, policy, utc(2026, 11, 23, 9, 5), UTC_ZONE, "2026-11-23",
                               on_time=ON_TIME) == []


def test_a_new_client_gets_only_the_latest_even_with_all() -> None:
    """With nothing launched before, 'all' does not back-fill a year of runs."""
    got = due_occurrences(DAILY, CatchUp.ALL, utc(2026, 11, 23, 12), UTC_ZONE, None,
                          on_time=ON_TIME)
    assert [o.key for o in got] == ["2026-11-23"]


def test_all_is_bounded_per_pass_and_resumes() -> None:
    """A long outage of an hourly rule launches at most `limit` per pass, oldest first."""
    hourly = Recurrence.parse("FREQ=HOURLY;BYMINUTE=0")
    now = utc(2026, 11, 23, 12, 5)
    first = due_occurrences(hourly, CatchUp.ALL, now, UTC_ZONE, "2026-11-20T00:00",
                            on_time=ON_TIME, limit=10)
    assert [o.key for o in first][:2] == ["2026-11-20T01:00", "2026-11-20T02:00"]
    assert len(first) == 10
    rest = due_occurrences(hourly, CatchUp.ALL, now, UTC_ZONE, first[-1].key,
                           on_time=ON_TIME, limit=1000)
    assert len(first) + len(rest) == 3 * 24 + 12  # 01:00 on the 20th .. 12:00 on the 23rd
    assert rest[0].key == "2026-11-20T11:00"


UTC_ZONE = ZoneInfo("UTC")

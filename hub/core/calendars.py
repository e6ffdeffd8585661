"""Business-hours calendars and due-date rules ("4h", "3 business days") for checklist steps.

A due rule counts from the launch ("4h"), from the originating event ("4h after event": the
ticket, alert or agreement that launched the run) or from a date input ("4h after last_day
17:00"), in wall-clock or business time (:class:`DueSpec`, :func:`due_from`).

Everything here is pure: the start moment is always an argument and nothing reads the clock.
Computation happens in the calendar's own time zone (wall times, localized with zoneinfo so DST
is handled), and every result is an aware UTC datetime.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as pyholidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

__all__ = [
    "DEFAULT_CALENDAR",
    "Calendar",
    "DueRule",
    "DueSpec",
    "DueUnit",
    "HolidayRules",
    "WorkingHours",
    "due_at",
    "due_from",
    "is_working_time",
    "next_opening",
]

_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_WEEKDAY_NAMES = {n: name for name, n in _WEEKDAYS.items()}
_WEEKDAY_ALIASES = {
    **_WEEKDAYS,
    "monday": 1, "tues": 2, "tuesday": 2, "wednesday": 3, "thur": 4, "thurs": 4,
    "thursday": 4, "friday": 5, "saturday": 6, "sunday": 7,
}
_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Suffixes the holidays package adds to a holiday's name: "Christmas Day (observed)".
_OBSERVED = re.compile(r"\s*\((?:observed|substitute|estimated)[^)]*\)\s*$", re.IGNORECASE)
# A calendar with no working day for a whole year is a configuration mistake, not a deadline.
_MAX_IDLE_DAYS = 366


# --------------------------------------------------------------------------- calendar model


class WorkingHours(BaseModel):
    """Daily opening hours, local wall time; working time is ``start`` ≤ t < ``end``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = Field(default=time(9), description='Opening time, e.g. "09:00" (quoted)')
    end: time = Field(default=time(17), description='Closing time, e.g. "17:30" (quoted)')

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_hhmm(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 17:30 as the base-60 number 1050.
            raise ValueError('write times as quoted "HH:MM" strings, e.g. "17:30"')
        if isinstance(value, str):
            match = _HHMM.match(value)
            if not match or int(match[1]) > 23 or int(match[2]) > 59:
                raise ValueError(f'invalid time {value!r}; expected "HH:MM", e.g. "09:00"')
            return time(int(match[1]), int(match[2]))
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError(
                f"start {self.start:%H:%M} must be before end {self.end:%H:%M} "
                "(overnight shifts are not supported)"
            )
        return self


@lru_cache(maxsize=64)
def _public_holidays(country: str, subdiv: str | None) -> pyholidays.HolidayBase:
    """The ``holidays`` package's table for a country (years are filled in lazily)."""
    return pyholidays.country_holidays(country, subdiv=subdiv)


def _base_name(name: str) -> str:
    """'Christmas Day (observed)' → 'christmas day', for matching ``exclude`` names."""
    return _OBSERVED.sub("", name).strip().casefold()


@lru_cache(maxsize=64)
def _holiday_names(country: str, subdiv: str | None) -> frozenset[str]:
    table = pyholidays.country_holidays(country, subdiv=subdiv, years=range(2000, 2051))
    return frozenset(_OBSERVED.sub("", n).strip() for d in table for n in table.get_list(d))


class HolidayRules(BaseModel):
    """Which days are closed besides the weekend: public holidays plus the MSP's own changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    country: str | None = Field(
        default=None, description="ISO 3166 country code for public holidays, e.g. GB, US"
    )
    subdiv: str | None = Field(
        default=None, description="Subdivision (state / nation) code, e.g. ENG, NY"
    )
    extra: tuple[date, ...] = Field(default=(), description="Extra closure dates (YYYY-MM-DD)")
    exclude: tuple[date | str, ...] = Field(
        default=(),
        description="Public holidays worked anyway: a date, or a holiday name for every year",
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in pyholidays.list_supported_countries():
            raise ValueError(
                f"unknown holiday country {value!r}; use an ISO 3166 code supported by the "
                "'holidays' package, e.g. GB, US, IE, DE, AU, CA"
            )
        return code

    @field_validator("subdiv")
    @classmethod
    def _known_subdiv(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        country = info.data.get("country")
        if country is None:
            if "country" in info.data:
                raise ValueError("subdiv needs a country")
            return value  # the country itself was invalid; that error is reported instead
        for code in dict.fromkeys((value, value.strip().upper())):
            try:
                _public_holidays(country, code)
            except NotImplementedError:
                continue
            return code
        known = ", ".join(pyholidays.list_supported_countries()[country]) or "none"
        raise ValueError(f"{country} has no subdivision {value!r}; known: {known}")

    @field_validator("exclude", mode="before")
    @classmethod
    def _dates_or_names(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        return [
            date.fromisoformat(v.strip()) if isinstance(v, str) and _ISO_DATE.match(v.strip())
            else v.strip() if isinstance(v, str) else v
            for v in value
        ]

    @field_validator("exclude")
    @classmethod
    def _known_names(cls, value: tuple[date | str, ...], info: ValidationInfo) -> Any:
        names = [v for v in value if isinstance(v, str)]
        if not names or "country" not in info.data or "subdiv" not in info.data:
            return value  # a country/subdiv error is reported on its own
        country = info.data["country"]
        if country is None:
            raise ValueError("excluding holidays by name needs a country")
        known = _holiday_names(country, info.data["subdiv"])
        folded = {n.casefold() for n in known}
        for name in names:
            if _base_name(name) not in folded:
                raise ValueError(
                    f"{name!r} is not a {country} public holiday; known: {', '.join(sorted(known))}"
                )
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> HolidayRules:
        both = sorted(set(self.extra) & {v for v in self.exclude if isinstance(v, date)})
        if both:
            raise ValueError(f"{both[0].isoformat()} is listed in both extra and exclude")
        return self

    def is_holiday(self, day: date) -> bool:
        """True when ``day`` is closed: an ``extra`` date, or a public holiday not excluded."""
        if day in self.extra:
            return True
        if self.country is None or day in self.exclude:
            return False
        names = _public_holidays(self.country, self.subdiv).get_list(day)
        skipped = {_base_name(v) for v in self.exclude if isinstance(v, str)}
        return any(_base_name(n) not in skipped for n in names)


class Calendar(BaseModel):
    """Business hours of one office or client: time zone, working days, hours and holidays."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    timezone: str = Field(description="IANA time zone, e.g. Europe/London")
    workdays: tuple[int, ...] = Field(
        default=(1, 2, 3, 4, 5), description="Working weekdays by name: [mon, tue, ...]"
    )
    hours: WorkingHours = WorkingHours()
    holidays: HolidayRules = HolidayRules()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown IANA time zone {value!r}; use a name such as Europe/London, "
                "America/New_York or UTC"
            ) from None
        return value

    @field_validator("workdays", mode="before")
    @classmethod
    def _weekday_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        days: set[int] = set()
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 7:
                days.add(item)  # the ISO numbers our own serializer does not emit, but accept
            elif isinstance(item, str) and item.strip().casefold() in _WEEKDAY_ALIASES:
                days.add(_WEEKDAY_ALIASES[item.strip().casefold()])
            else:
                raise ValueError(f"unknown weekday {item!r}; use mon, tue, wed, thu, fri, sat, sun")
        if not days:
            raise ValueError("at least one working day is needed")
        return tuple(sorted(days))

    @field_serializer("workdays")
    def _dump_workdays(self, value: tuple[int, ...]) -> list[str]:
        return [_WEEKDAY_NAMES[d] for d in value]

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is a working weekday and not a (non-excluded) holiday."""
        return day.isoweekday() in self.workdays and not self.holidays.is_holiday(day)

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        for _ in range(_MAX_IDLE_DAYS):
            day += timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError(f"calendar {self.name!r} has no working day within a year of {day}")

    def instant(self, day: date, at: time) -> datetime:
        """The UTC instant of wall time ``at`` on ``day`` in this calendar's zone.

        A wall time inside a spring-forward gap maps to the instant one gap later (zoneinfo
        ``fold=0``); an ambiguous fall-back wall time maps to its first occurrence.
        """
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(UTC)


DEFAULT_CALENDAR = Calendar(name="default", timezone="UTC")
"""Used when there is no calendars file: UTC, Mon-Fri 09:00-17:00, no holidays."""


# --------------------------------------------------------------------------- due rules


class DueUnit(StrEnum):
    """The unit of a due rule."""

    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    WEEKS = "weeks"


_UNIT_ALIASES = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), DueUnit.MINUTES),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), DueUnit.HOURS),
    **dict.fromkeys(("d", "day", "days"), DueUnit.DAYS),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), DueUnit.WEEKS),
}
_MAX_AMOUNT = 10_000  # bounds the business-day walk; 10000 of any unit is no longer a deadline
_RULE = re.compile(r"^\s*(\d+)\s*(?:(business|working)\s+)?([a-z]+)\s*$", re.IGNORECASE)
_ACCEPTED = (
    "accepted forms: 30m, 4h, 2d, 1w, 90 minutes, 4 hours, 2 days, 1 week, "
    "8 business hours, 3 business days ('working' works as well as 'business')"
)


@dataclass(frozen=True, slots=True)
class DueRule:
    """A relative deadline: ``amount`` ``unit``, in calendar time or in business time.

    Usable as a pydantic field type: it validates from the strings ``DueRule.parse`` accepts
    and serializes back to its canonical text (``"3 business days"``).
    """

    amount: int
    unit: DueUnit
    business: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.amount <= _MAX_AMOUNT:
            raise ValueError(f"a due rule's amount must be 0 to {_MAX_AMOUNT}, not {self.amount}")
        if self.business and self.unit not in (DueUnit.HOURS, DueUnit.DAYS):
            raise ValueError(f"business time is counted in hours or days, not {self.unit}")

    @classmethod
    def parse(cls, text: str) -> DueRule:
        """Parse ``"4h"``, ``"90 minutes"``, ``"3 business days"``... (case-insensitive).

        Raises:
            ValueError: naming the text and listing the accepted forms.
        """
        match = _RULE.match(text) if isinstance(text, str) else None
        unit = _UNIT_ALIASES.get(match[3].lower()) if match else None
        if match is None or unit is None:
            raise ValueError(f"invalid due rule {text!r}; {_ACCEPTED}")
        business = match[2] is not None
        if business and unit not in (DueUnit.HOURS, DueUnit.DAYS):
            raise ValueError(
                f"invalid due rule {text!r}: business time is counted in hours or days; "
                f"{_ACCEPTED}"
            )
        try:
            return cls(int(match[1]), unit, business)
        except ValueError as exc:
            raise ValueError(f"invalid due rule {text!r}: {exc}; {_ACCEPTED}") from None

    def __str__(self) -> str:
        unit = self.unit.value[:-1] if self.amount == 1 else self.unit.value
        return f"{self.amount} {'business ' if self.business else ''}{unit}"

    @classmethod
    def _coerce(cls, value: Any) -> DueRule:
        if isinstance(value, DueRule):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise ValueError(f"a due rule must be text such as '4h' or '3 business days', "
                         f"not {value!r}")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "description": "Relative deadline; " + _ACCEPTED,
            "examples": ["30m", "4h", "2 days", "8 business hours", "3 business days"],
        }


LAUNCH, EVENT = "launch", "event"
_SPEC = re.compile(
    r"^\s*(?:within\s+)?(?P<rule>.+?)(?:\s+(?:after|of|from)\s+(?:the\s+)?(?P<anchor>[a-z][a-z0-9_-]*)"
    r"(?:\s+(?:at\s+)?(?P<at>\d{1,2}:\d{2}))?)?\s*$",
    re.IGNORECASE,
)
_SPEC_FORMS = (
    "'4h' (after launch), '4h after event' (the ticket, alert or agreement that launched the "
    "run), '4 hours after last_day 17:00' or '2 business days after last_day' (a date input), "
    "or a mapping {in: 4h, after: last_day, at: '17:00'}"
)


@dataclass(frozen=True, slots=True)
class DueSpec:
    """A step's deadline: a :class:`DueRule` counted from an anchor.

    ``anchor`` is ``"launch"``, ``"event"`` (the originating event's time; the launch when
    there is none, e.g. a run started by hand) or the id of a date input (midnight, or
    ``at``, of that day in the client's calendar; the launch when the input is empty).
    """

    rule: DueRule
    anchor: str = LAUNCH
    at: time | None = None

    @classmethod
    def parse(cls, value: str | Mapping[str, Any]) -> DueSpec:
        """Parse ``"4h"``, ``"4h after event"``, ``"4 hours after last_day 17:00"`` or a
        mapping ``{in: ..., after: ..., at: ...}``.

        Raises:
            ValueError: naming the text and the accepted forms.
        """
        if isinstance(value, Mapping):
            return cls._from_mapping(value)
        if not isinstance(value, str):
            raise ValueError(f"a due rule must be text such as '4h', not {value!r}")
        try:
            return cls(DueRule.parse(value))
        except ValueError as plain:
            match = _SPEC.match(value)
            if match is None or match["anchor"] is None:
                raise ValueError(f"{plain}; or count from elsewhere: {_SPEC_FORMS}") from None
        at = _parse_hhmm(match["at"], value) if match["at"] else None
        try:
            rule = DueRule.parse(match["rule"])
        except ValueError:
            raise ValueError(f"invalid due rule {value!r}; accepted forms: {_SPEC_FORMS}; "
                             f"the amount: {_ACCEPTED}") from None
        return cls._checked(rule, match["anchor"], at, value)

    @classmethod
    def _from_mapping(cls, value: Mapping[str, Any]) -> DueSpec:
        unknown = sorted(set(value) - {"in", "after", "at"})
        if unknown or "in" not in value:
            raise ValueError(f"a due mapping has 'in' (required), 'after' and 'at', not "
                             f"{', '.join(unknown) or 'no in'}; e.g. {_SPEC_FORMS}")
        rule = DueRule._coerce(value["in"])
        at_value = value.get("at")
        if isinstance(at_value, int) and not isinstance(at_value, bool):
            raise ValueError('write times as quoted "HH:MM" strings, e.g. "17:00"')
        at = _parse_hhmm(str(at_value), str(dict(value))) if at_value is not None else None
        return cls._checked(rule, str(value.get("after", LAUNCH)), at, str(dict(value)))

    @classmethod
    def _checked(cls, rule: DueRule, anchor: str, at: time | None, text: str) -> DueSpec:
        anchor = anchor.lower() if anchor.lower() in (LAUNCH, EVENT) else anchor
        if at is not None and anchor in (LAUNCH, EVENT):
            raise ValueError(f"invalid due rule {text!r}: a time of day ('17:00') goes with a "
                             "date input, not with the launch or the event")
        return cls(rule, anchor, at)

    @property
    def input(self) -> str | None:
        """The date input the deadline counts from, if any."""
        return None if self.anchor in (LAUNCH, EVENT) else self.anchor

    def __str__(self) -> str:
        if self.anchor == LAUNCH:
            return str(self.rule)
        at = f" {self.at:%H:%M}" if self.at is not None else ""
        return f"{self.rule} after {self.anchor}{at}"


def _parse_hhmm(text: str, where: str) -> time:
    match = _HHMM.match(text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"invalid time {text!r} in due rule {where!r}; expected HH:MM")
    return time(int(match[1]), int(match[2]))


# --------------------------------------------------------------------------- computation


def _as_utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _working_windows(start: datetime, calendar: Calendar) -> Iterable[tuple[datetime, datetime]]:
    """UTC (open, close) of each working day from ``start``'s local date on, clipped to start."""
    day = start.astimezone(calendar.tz).date()
    idle = 0
    while idle < _MAX_IDLE_DAYS:
        if calendar.is_working_day(day):
            idle = 0
            opens = max(start, calendar.instant(day, calendar.hours.start))
            closes = calendar.instant(day, calendar.hours.end)
            if opens < closes:
                yield opens, closes
        else:
            idle += 1
        day += timedelta(days=1)
    raise ValueError(f"calendar {calendar.name!r} has no working day within a year of {day}")


def _add_working_time(start: datetime, amount: timedelta, calendar: Calendar) -> datetime:
    remaining = amount
    for opens, closes in _working_windows(start, calendar):
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: _working_windows never ends without raising")


def is_working_time(moment: datetime, calendar: Calendar) -> bool:
    """True when ``moment`` (aware) falls inside working hours on a working day."""
    local = _as_utc(moment, "moment").astimezone(calendar.tz)
    hours = calendar.hours
    return calendar.is_working_day(local.date()) and hours.start <= local.time() < hours.end


def next_opening(moment: datetime, calendar: Calendar) -> datetime:
    """The first working instant at or after ``moment``: ``moment`` itself when already open.

    Returns:
        An aware UTC datetime.
    """
    return _add_working_time(_as_utc(moment, "moment"), timedelta(0), calendar)


def due_at(start: datetime, rule: DueRule, calendar: Calendar) -> datetime:
    """When a step launched at ``start`` falls due under ``rule`` and ``calendar``.

    - ``N minutes`` / ``N hours``: elapsed time, ``start + N`` (a DST change does not
      stretch or shrink it).
    - ``N days`` / ``N weeks``: the same local wall time N (or 7N) days later in the
      calendar's zone (so "1d" from 10:00 is 10:00 the next day even across a DST change).
    - ``N business hours``: N hours counted only inside working hours on working,
      non-holiday days; a start outside hours starts counting at the next opening. A
      deadline that lands exactly at closing time stays there (it does not roll to the
      next morning).
    - ``N business days``: closing time (``hours.end``) of the working day N working days
      after the start day. A start on a non-working day, or at/after closing time, counts
      as starting on the next working day; a start before opening on a working day counts
      that day. "1 business day" from Friday 10:00 is Monday's close (Tuesday's if Monday is
      a holiday); from Saturday it is Tuesday's close; "0 business days" means close of
      business on the start day.

    Args:
        start: aware datetime (any zone; usually UTC).
        rule: the parsed due rule.
        calendar: the calendar whose zone, hours and holidays apply.

    Returns:
        An aware UTC datetime.

    Raises:
        ValueError: ``start`` is naive, or the calendar has no working day within a year.
    """
    begin = _as_utc(start, "start")
    if not rule.business:
        if rule.unit in (DueUnit.MINUTES, DueUnit.HOURS):
            step = timedelta(minutes=rule.amount)
            return begin + (step * 60 if rule.unit is DueUnit.HOURS else step)
        days = rule.amount * (7 if rule.unit is DueUnit.WEEKS else 1)
        local = begin.astimezone(calendar.tz)
        wall = local.replace(tzinfo=None) + timedelta(days=days)
        return wall.replace(tzinfo=calendar.tz).astimezone(UTC)
    if rule.unit is DueUnit.HOURS:
        return _add_working_time(begin, timedelta(hours=rule.amount), calendar)
    local = begin.astimezone(calendar.tz)
    day = local.date()
    if not calendar.is_working_day(day) or local.time() >= calendar.hours.end:
        day = calendar.next_working_day(day)
    for _ in range(rule.amount):
        day = calendar.next_working_day(day)
    return calendar.instant(day, calendar.hours.end)


def due_from(spec: DueSpec, *, launched_at: datetime, calendar: Calendar,
             event_at: datetime | None = None,
             inputs: Mapping[str, Any] | None = None) -> datetime:
    """When a step falls due: ``spec.rule`` counted from its anchor in ``calendar``.

    Args:
        spec: the step's parsed due rule.
        launched_at: the run's launch (aware); the anchor when there is no other.
        calendar: the client's calendar (zone, hours, holidays).
        event_at: when the originating event happened (aware), if the run has one.
        inputs: the run's launch inputs; a date input is an ISO ``YYYY-MM-DD`` string.

    Returns:
        An aware UTC datetime.

    Raises:
        ValueError: a naive moment, or a date input that is not an ISO date.
    """
    start = launched_at
    if spec.anchor == EVENT and event_at is not None:
        start = event_at
    elif spec.input is not None:
        value = (inputs or {}).get(spec.input)
        if value:
            try:
                day = value if isinstance(value, date) else date.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"input '{spec.input}' is not a date: {value!r}") from None
            start = calendar.instant(day, spec.at or time(0))
    return due_at(start, spec.rule, calendar)

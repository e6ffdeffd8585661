"""Recurrence rules of scheduled playbooks: RFC 5545 RRULEs, cron, and friendly sugar (pure).

Three ways to say when a schedule fires, all evaluated in *local wall time* of a time zone
that is passed in (nothing here reads the clock):

- an RFC 5545 RRULE, evaluated by python-dateutil's ``rrule``:
  ``FREQ=MONTHLY;BYDAY=1MO;BYMONTH=1,4,7,10;BYHOUR=8;BYMINUTE=0``, optionally preceded by a
  ``DTSTART:20260105T080000`` line (naive local time) that anchors ``INTERVAL`` phases;
- a five-field cron expression (``0 9 1 * *``), evaluated by ``cronsim``;
- friendly forms that compile to an RRULE: ``daily at 07:30``, ``every weekday at 07:30``,
  ``weekly on mon at 09:00``, ``monthly on day 1 at 09:00``, ``monthly on the last day at
  16:00``, ``quarterly on day 1 at 09:00``, ``first Monday of each quarter at 08:00``,
  ``last friday of each month at 15:00``.

Daylight saving: a rule produces wall times; each is placed in the zone with ``fold=0``. A wall
time that does not exist (the spring-forward gap) fires at the same offset as before the jump,
i.e. one gap later (01:30 in London on the last Sunday of March fires at 02:30 BST); an
ambiguous one (fall back) fires once, at its first occurrence. Two wall times that land on the
same instant fire once. So a transition neither skips nor doubles an occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrule, rrulestr

__all__ = ["CatchUp", "Occurrence", "Recurrence", "due_occurrences"]

_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_NAMES = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday",
                                         "friday", "saturday", "sunday"))},
    "tues": 1, "thur": 3, "thurs": 3,
}
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
             "fourth": 4, "4th": 4, "last": -1}
_QUARTER_MONTHS = "1,4,7,10"
_AT = r" at (?P<hh>\d{1,2}):(?P<mm>\d{2})\s*$"
_DAY = r"(?P<day>[a-z]+)"
_FRIENDLY: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(pattern, re.IGNORECASE)) for
    name, pattern in (
        ("daily", r"^\s*(?:daily|every day)" + _AT),
        ("weekdays", r"^\s*every (?:weekday|working day)" + _AT),
        ("weekly", r"^\s*(?:weekly on|every) (?P<days>[a-z]+(?:\s*,\s*[a-z]+)*)" + _AT),
        ("monthly", r"^\s*(?P<period>monthly|quarterly) on day (?P<n>\d{1,2})" + _AT),
        ("month-end", r"^\s*monthly on the last day" + _AT),
        ("nth", r"^\s*(?:the )?(?P<ord>[a-z0-9]+) " + _DAY
                + r" of (?:each|every|the) (?P<period>month|quarter)" + _AT),
    )]
FRIENDLY_FORMS = (
    "daily at HH:MM | every weekday at HH:MM | weekly on mon[,thu] at HH:MM | "
    "monthly on day 1-28 at HH:MM | monthly on the last day at HH:MM | "
    "quarterly on day 1-28 at HH:MM | first|second|third|fourth|last <weekday> of each "
    "month|quarter at HH:MM"
)
ACCEPTED = (f"{FRIENDLY_FORMS}; or an RFC 5545 RRULE (FREQ=...;BYHOUR=...), or a five-field "
            "cron expression ('0 9 1 * *')")

_RRULE_KEYS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYSECOND", "BYMINUTE", "BYHOUR",
                         "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS",
                         "WKST"})
_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
# The phase of an INTERVAL without DTSTART counts from this Monday (weeks from a Monday,
# months from January), which reads naturally: INTERVAL=3 monthly is Jan/Apr/Jul/Oct.
_DEFAULT_ANCHOR = datetime(2000, 1, 3)
_MAX_COUNT = 10_000
# DST offsets move a wall time at most a few hours from the same UTC instant; generating wall
# times with this margin on both sides of a UTC window never misses one that lands inside it.
_MARGIN = timedelta(hours=26)
_LOOKBACK = timedelta(days=400)  # how far back "the latest occurrence" is looked for
_DST_SLACK = timedelta(hours=3)
_RESUME_SLACK = 200  # occurrences a dense rule can have in _DST_SLACK (one a minute: 180)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,#?LW-]+$")


class CatchUp(StrEnum):
    """What a schedule launches for occurrences that came due while the hub was down."""

    ALL = "all"        # every missed occurrence, oldest first
    LATEST = "latest"  # only the most recent one
    NONE = "none"      # none: only an occurrence that is due right now


@dataclass(frozen=True, order=True)
class Occurrence:
    """One firing of a rule: its UTC instant, its local wall time, and a stable key."""

    at: datetime                               # aware, UTC
    wall: datetime = field(compare=False)      # naive local wall time the rule produced
    key: str = field(compare=False)            # local date, or date+time for sub-daily rules


@dataclass(frozen=True)
class Recurrence:
    """A parsed recurrence rule (build with :meth:`parse`, :meth:`rrule` or :meth:`cron`)."""

    kind: Literal["rrule", "cron"]
    text: str          # canonical: the full RRULE (with DTSTART when one was given) or cron
    source: str        # as the admin wrote it
    once_a_day: bool   # at most one firing per local day: occurrences are keyed by date
    freq: str = ""     # rrule only: FREQ, INTERVAL and whether it is COUNT-bounded
    interval: int = 1
    counted: bool = False
    anchor: datetime = _DEFAULT_ANCHOR

    # ---- building ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Recurrence:
        """Parse any accepted form: an RRULE, a cron expression or a friendly phrase.

        Raises:
            ValueError: naming the text and the accepted forms.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"invalid schedule {text!r}; use {ACCEPTED}")
        body = text.strip()
        upper = body.upper()
        if upper.startswith(("RRULE:", "FREQ=", "DTSTART")):
            return cls.rrule(body)
        if upper.startswith("CRON:"):
            return cls.cron(body[5:])
        fields = body.split()
        if len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields) and any(
                c.isdigit() or c == "*" for c in fields[0]):
            return cls.cron(body)
        return cls.friendly(body)

    @classmethod
    def friendly(cls, text: str) -> Recurrence:
        """Compile a friendly phrase to an RRULE.

        Raises:
            ValueError: naming the text and the friendly forms.
        """
        for name, pattern in _FRIENDLY:
            match = pattern.match(text)
            if match:
                return cls.rrule(_compile_friendly(name, match, text), source=text)
        raise ValueError(f"invalid schedule {text!r}; use {ACCEPTED}")

    @classmethod
    def rrule(cls, text: str, *, source: str | None = None) -> Recurrence:
        """An RFC 5545 RRULE (``FREQ=...``, optionally after an ``RRULE:`` prefix and a
        ``DTSTART:YYYYMMDDTHHMMSS`` line in local time).

        Raises:
            ValueError: the rule is malformed, finer than hourly, or leaves the day or the time
                of day unsaid (without DTSTART, a weekly rule needs BYDAY, a monthly one BYDAY
                or BYMONTHDAY, and every daily-or-coarser rule needs BYHOUR).
        """
        anchor, parts = _split_rrule(text)
        where = f"invalid RRULE {text.strip()!r}"
        freq = parts.get("FREQ", "")
        if freq not in _FREQS:
            raise ValueError(f"{where}: FREQ must be one of {', '.join(_FREQS)} "
                             "(a checklist recurs at most hourly)")
        if "COUNT" in parts and "UNTIL" in parts:
            raise ValueError(f"{where}: use COUNT or UNTIL, not both")
        _explicit_fields(parts, freq, anchor, where)
        try:
            interval = int(parts.get("INTERVAL", "1"))
            count = int(parts["COUNT"]) if "COUNT" in parts else None
        except ValueError:
            raise ValueError(f"{where}: INTERVAL and COUNT are whole numbers") from None
        if interval < 1 or (count is not None and not 1 <= count <= _MAX_COUNT):
            raise ValueError(f"{where}: INTERVAL must be at least 1 and COUNT 1-{_MAX_COUNT}")
        body = ";".join(f"{k}={v}" for k, v in parts.items())
        canonical = (f"DTSTART:{anchor:%Y%m%dT%H%M%S}\nRRULE:{body}" if anchor is not None
                     else f"RRULE:{body}")
        start = anchor or _DEFAULT_ANCHOR
        try:
            rule = rrulestr(body, dtstart=start)
            next(iter(_as_rrule(rule)), None)  # some errors only show when iterating
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        once = (freq != "HOURLY" and all("," not in parts[k]
                                         for k in ("BYHOUR", "BYMINUTE", "BYSECOND")))
        return cls("rrule", canonical, source or text.strip(), once, freq=freq,
                   interval=interval, counted=count is not None, anchor=start)

    @classmethod
    def cron(cls, text: str) -> Recurrence:
        """A five-field cron expression (minute hour day-of-month month day-of-week).

        Cron is evaluated by ``cronsim`` (the evaluator healthchecks.io runs in production):
        small, no dependencies, ships type hints (mypy strict stays clean), maintained, with
        Debian cron's day-of-month/day-of-week semantics and ``L``/``#`` extensions. croniter
        would also do, but it needs pytz and went through a spell of being unmaintained
        before a new home took it over; cronsim is the smaller dependency. It is handed naive
        wall times only, so DST is handled here exactly as for RRULEs.

        Raises:
            ValueError: not five fields, or a field cronsim refuses.
        """
        expr = " ".join(text.split())
        if len(expr.split()) != 5:
            raise ValueError(f"invalid cron expression {text.strip()!r}: five fields "
                             "(minute hour day-of-month month day-of-week), e.g. '0 9 1 * *'")
        try:
            CronSim(expr, _DEFAULT_ANCHOR)
        except CronSimError as exc:
            raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
        minute, hour = expr.split()[:2]
        once = minute.isdigit() and hour.isdigit()
        return cls("cron", expr, text.strip(), once)

    # ---- evaluating -------------------------------------------------------------------------

    def between(self, start: datetime, end: datetime, tz: ZoneInfo, *,
                limit: int | None = None) -> list[Occurrence]:
        """Occurrences with ``start < at <= end`` in zone ``tz``, oldest first.

        Args:
            start: aware; exclusive.
            end: aware; inclusive.
            tz: the zone whose wall clock the rule follows.
            limit: stop after this many (the earliest ones are kept).
        """
        start, end = _utc(start), _utc(end)
        lo = start.astimezone(tz).replace(tzinfo=None) - _MARGIN
        hi = end.astimezone(tz).replace(tzinfo=None) + _MARGIN
        found: dict[datetime, Occurrence] = {}
        last_kept: datetime | None = None
        for wall in self._walls(lo, hi):
            if limit is not None and last_kept is not None and len(found) >= limit \
                    and wall > last_kept + _MARGIN:
                break  # nothing later can sort before what was kept
            at = wall.replace(tzinfo=tz).astimezone(UTC)
            if start < at <= end and at not in found:
                found[at] = Occurrence(at, wall, self._key(wall))
                last_kept = wall
        ordered = sorted(found.values())
        return ordered[:limit] if limit is not None else ordered

    def latest(self, now: datetime, tz: ZoneInfo) -> Occurrence | None:
        """The most recent occurrence at or before ``now`` (within about 400 days)."""
        for days in (2, 40, _LOOKBACK.days):
            found = self.between(now - timedelta(days=days), now, tz)
            if found:
                return found[-1]
        return None

    def last_occurrence(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """The UTC instant of :meth:`latest`."""
        found = self.latest(now, tz)
        return found.at if found else None

    def upcoming(self, after: datetime, tz: ZoneInfo, count: int) -> list[Occurrence]:
        """The next ``count`` occurrences strictly after ``after`` (within ten years)."""
        found: list[Occurrence] = []
        start = _utc(after)
        for days in (40, 400, 3650):
            found = self.between(start, start + timedelta(days=days), tz, limit=count)
            if len(found) >= count:
                break
        return found[:count]

    def _key(self, wall: datetime) -> str:
        return wall.date().isoformat() if self.once_a_day else wall.isoformat(timespec="minutes")

    def _walls(self, lo: datetime, hi: datetime) -> Iterator[datetime]:
        """Naive local wall times the rule produces in ``[lo, hi]``, ascending."""
        if self.kind == "cron":
            sim = CronSim(self.text, lo - timedelta(seconds=1))
            for wall in sim:
                if wall > hi:
                    return
                yield wall
            return
        rule = _as_rrule(rrulestr(self.text.split("RRULE:", 1)[1], dtstart=self._anchor_near(lo)))
        yield from _take_until(rule, lo, hi)

    def _anchor_near(self, target: datetime) -> datetime:
        """A DTSTART at or before ``target`` that keeps the rule's INTERVAL phase, so
        iteration starts near ``target`` instead of at the original anchor."""
        anchor = self.anchor
        if self.counted or target <= anchor:
            return anchor  # COUNT counts from the real start; nothing to skip before it
        if self.freq in ("YEARLY", "MONTHLY"):
            step = self.interval * (12 if self.freq == "YEARLY" else 1)
            months = (target.year - anchor.year) * 12 + target.month - anchor.month
            periods = max(0, months // step - 1)
            return anchor + relativedelta(months=periods * step)
        unit = {"WEEKLY": timedelta(weeks=1), "DAILY": timedelta(days=1),
                "HOURLY": timedelta(hours=1)}[self.freq] * self.interval
        return anchor + unit * max(0, (target - anchor) // unit - 1)

    def __str__(self) -> str:
        return self.source


def _take_until(rule: rrule, lo: datetime, hi: datetime) -> Iterator[datetime]:
    for wall in rule:
        if wall > hi:
            return
        if wall >= lo:
            yield wall


def _as_rrule(value: object) -> rrule:
    if not isinstance(value, rrule):
        raise ValueError("one RRULE only (no RDATE, EXDATE or several rules)")
    return value


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _split_rrule(text: str) -> tuple[datetime | None, dict[str, str]]:
    """``(DTSTART or None, {KEY: value})`` of an RRULE text, keys upper-cased, order kept."""
    anchor: datetime | None = None
    rule_line: str | None = None
    where = f"invalid RRULE {text.strip()!r}"
    for raw in text.strip().splitlines():
        line = raw.strip()
        upper = line.upper()
        if upper.startswith("DTSTART"):
            value = line.split(":", 1)[1].strip() if ":" in line else ""
            if ";" in line.split(":", 1)[0] or value.upper().endswith("Z"):
                raise ValueError(f"{where}: DTSTART is local wall time (YYYYMMDDTHHMMSS); the "
                                 "time zone comes from the schedule, not the rule")
            try:
                anchor = datetime.strptime(value, "%Y%m%dT%H%M%S")
            except ValueError:
                raise ValueError(f"{where}: DTSTART must look like 20260105T080000") from None
        elif upper.startswith("RRULE:") or upper.startswith("FREQ="):
            if rule_line is not None:
                raise ValueError(f"{where}: one RRULE only")
            rule_line = line.split(":", 1)[1] if upper.startswith("RRULE:") else line
        elif line:
            raise ValueError(f"{where}: only a DTSTART line and one RRULE line are accepted")
    if rule_line is None:
        raise ValueError(f"{where}: no RRULE (FREQ=...) found")
    parts: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rule_line.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip().upper()
        if not sep or key not in _RRULE_KEYS:
            raise ValueError(f"{where}: unknown part {item!r}")
        if key in parts:
            raise ValueError(f"{where}: {key} given twice")
        parts[key] = value.strip().upper()
    return anchor, parts


def _explicit_fields(parts: dict[str, str], freq: str, anchor: datetime | None,
                     where: str) -> None:
    """Make every field that RFC 5545 would derive from DTSTART explicit (in place).

    Then the rule means the same whatever DTSTART iteration starts from, which is what lets
    evaluation start near "now". Without a DTSTART, leaving the day or time unsaid is an error
    instead of a silent midnight on an arbitrary day.
    """
    coarse = freq != "HOURLY"
    dayless = not parts.keys() & {"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO"}
    if anchor is None:
        if coarse and "BYHOUR" not in parts:
            raise ValueError(f"{where}: say the time of day, e.g. BYHOUR=9;BYMINUTE=0")
        if freq == "WEEKLY" and "BYDAY" not in parts:
            raise ValueError(f"{where}: say the weekday, e.g. BYDAY=MO")
        if freq in ("MONTHLY", "YEARLY") and dayless:
            raise ValueError(f"{where}: say the day, e.g. BYMONTHDAY=1 or BYDAY=1MO")
        parts.setdefault("BYMINUTE", "0")
        parts.setdefault("BYSECOND", "0")
        return
    parts.setdefault("BYSECOND", str(anchor.second))
    parts.setdefault("BYMINUTE", str(anchor.minute))
    if coarse:
        parts.setdefault("BYHOUR", str(anchor.hour))
    if freq == "WEEKLY":
        parts.setdefault("BYDAY", _DAY_CODES[anchor.weekday()])
    elif freq == "MONTHLY" and dayless:
        parts["BYMONTHDAY"] = str(anchor.day)
    elif freq == "YEARLY" and dayless and "BYMONTH" not in parts:
        parts["BYMONTH"] = str(anchor.month)
        parts["BYMONTHDAY"] = str(anchor.day)
    elif freq == "YEARLY" and dayless:
        parts["BYMONTHDAY"] = str(anchor.day)


def _compile_friendly(name: str, match: re.Match[str], text: str) -> str:
    """The RRULE a friendly phrase means."""
    hh, mm = int(match["hh"]), int(match["mm"])
    if hh > 23 or mm > 59:
        raise ValueError(f"invalid time in schedule {text!r}")
    at = f"BYHOUR={hh};BYMINUTE={mm}"
    if name == "daily":
        return f"FREQ=DAILY;{at}"
    if name == "weekdays":
        return f"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;{at}"
    if name == "weekly":
        days = [_weekday(d.strip(), text) for d in match["days"].split(",")]
        return f"FREQ=WEEKLY;BYDAY={','.join(_DAY_CODES[d] for d in days)};{at}"
    if name == "monthly":
        day = int(match["n"])
        if not 1 <= day <= 28:
            raise ValueError(f"day must be 1-28 in schedule {text!r} (every month has it; "
                             "say 'monthly on the last day' for the month's end)")
        months = f";BYMONTH={_QUARTER_MONTHS}" if match["period"].lower() == "quarterly" else ""
        return f"FREQ=MONTHLY{months};BYMONTHDAY={day};{at}"
    if name == "month-end":
        return f"FREQ=MONTHLY;BYMONTHDAY=-1;{at}"
    ordinal = _ORDINALS.get(match["ord"].lower())
    if ordinal is None:
        raise ValueError(f"invalid schedule {text!r}: say first, second, third, fourth or last")
    code = _DAY_CODES[_weekday(match["day"], text)]
    months = f";BYMONTH={_QUARTER_MONTHS}" if match["period"].lower() == "quarter" else ""
    return f"FREQ=MONTHLY{months};BYDAY={ordinal}{code};{at}"


def _weekday(name: str, text: str) -> int:
    day = _DAY_NAMES.get(name.lower())
    if day is None:
        raise ValueError(f"invalid weekday {name!r} in schedule {text!r}; use mon..sun")
    return day


def due_occurrences(rule: Recurrence, policy: CatchUp, now: datetime, tz: ZoneInfo,
                    last_key: str | None, *, on_time: timedelta,
                    limit: int = 100) -> list[Occurrence]:
    """Which occurrences one client should get launched now, oldest first.

    Args:
        rule: the schedule's recurrence.
        policy: what to do about occurrences missed while nothing ran.
        now: the current instant (aware).
        tz: the client's (or the schedule's) time zone.
        last_key: the key of the newest occurrence already launched for this client, or None.
            Only occurrences with a later key are candidates (keys are ISO dates or date-times,
            so they sort in time order).
        on_time: an occurrence younger than this is due now rather than missed.
        limit: at most this many (``all`` continues with the rest on the next pass).

    ``latest`` (and ``all`` for a client that never had one launched) launches the most
    recent occurrence; ``all`` otherwise launches every occurrence since the last launched
    one; ``none`` launches an occurrence only while it is on time.
    """
    def newer(occ: Occurrence) -> bool:
        return last_key is None or occ.key > last_key

    if policy is CatchUp.NONE:
        return [o for o in rule.between(now - on_time, now, tz) if newer(o)][:limit]
    if policy is CatchUp.ALL and last_key is not None:
        since = _key_moment(last_key, tz, now)
        # the slack covers what lies between `since` and the last key (at most a few hours)
        found = rule.between(since, now, tz, limit=limit + _RESUME_SLACK)
        return [o for o in found if newer(o)][:limit]
    latest = rule.latest(now, tz)
    return [latest] if latest is not None and newer(latest) else []


def _key_moment(key: str, tz: ZoneInfo, now: datetime) -> datetime:
    """A UTC instant a little before the first occurrence after the one ``key`` names."""
    try:
        wall = datetime.fromisoformat(key)
    except ValueError:
        return now - _LOOKBACK
    if len(key) == 10:  # a date key: the next candidate is on a later day
        wall = datetime.combine(wall.date() + timedelta(days=1), time(0))
    # a few hours early: around a DST change a later wall time can be an earlier instant
    moment = wall.replace(tzinfo=tz).astimezone(UTC) - _DST_SLACK
    return max(moment, now - _LOOKBACK)

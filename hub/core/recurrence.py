"""Schedule rules of recurring playbooks (a leaf module: no I/O, no hub imports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(
    r"^\s*(?:(?P<daily>daily)"
    r"|weekly on (?P<weekday>mon|tue|wed|thu|fri|sat|sun)"
    r"|(?P<period>monthly|quarterly) on day (?P<day>\d{1,2}))"
    r" at (?P<hh>\d{2}):(?P<mm>\d{2})\s*$",
    re.IGNORECASE,
)
ACCEPTED = ("daily at HH:MM | weekly on mon..sun at HH:MM | monthly on day 1-28 at HH:MM | "
            "quarterly on day 1-28 at HH:MM")


@dataclass(frozen=True)
class ScheduleRule:
    """When a recurring playbook is due, in the client's local time."""

    every: Literal["daily", "weekly", "monthly", "quarterly"]
    at: time
    weekday: int = 0  # weekly: 0 = Monday
    day: int = 1      # monthly / quarterly: day of the month

    @classmethod
    def parse(cls, text: str) -> ScheduleRule:
        """Parse a schedule rule.

        Raises:
            ValueError: naming the text and the accepted forms.
        """
        match = _RULE.match(text or "")
        if not match:
            raise ValueError(f"invalid schedule {text!r}; use {ACCEPTED}")
        hh, mm = int(match["hh"]), int(match["mm"])
        if hh > 23 or mm > 59:
            raise ValueError(f"invalid time in schedule {text!r}")
        at = time(hh, mm)
        if match["daily"]:
            return cls("daily", at)
        if match["weekday"]:
            return cls("weekly", at, weekday=_WEEKDAYS.index(match["weekday"].lower()))
        day = int(match["day"])
        if not 1 <= day <= 28:
            raise ValueError(f"day must be 1-28 in schedule {text!r} (every month has it)")
        return cls(match["period"].lower(), at, day=day)  # type: ignore[arg-type]

    def _candidate(self, today: date) -> date:
        """The latest scheduled date on or before ``today``."""
        if self.every == "daily":
            return today
        if self.every == "weekly":
            return today - timedelta(days=(today.weekday() - self.weekday) % 7)
        months = (1, 4, 7, 10) if self.every == "quarterly" else tuple(range(1, 13))
        year, month = today.year, today.month
        while True:
            if month in months and date(year, month, self.day) <= today:
                return date(year, month, self.day)
            month -= 1
            if month == 0:
                year, month = year - 1, 12

    def last_occurrence(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The most recent occurrence at or before ``now`` (aware, UTC)."""
        local = now.astimezone(tz)
        day = self._candidate(local.date())
        moment = datetime.combine(day, self.at, tzinfo=tz)
        if moment > local:  # today's time has not come yet: the previous occurrence
            day = self._candidate(day - timedelta(days=1))
            moment = datetime.combine(day, self.at, tzinfo=tz)
        return moment.astimezone(now.tzinfo)

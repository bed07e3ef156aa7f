"""The office's working hours and holidays, in its own time zone (zoneinfo): when a call
came outside them, its callback task is due at the next opening time.

Computed on local calendar dates and converted to UTC at the end, so a daylight-saving change
between the call and the opening moves nothing: "09:00" stays 09:00 on the office's clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.errors import ValidationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
MAX_INTERVALS = 4
MAX_HOLIDAYS = 366
LOOKAHEAD_DAYS = 400  # a year of holidays cannot hide every opening from the search


def _time(text: str, where: str) -> time:
    if not isinstance(text, str) or not _HHMM.fullmatch(text):
        raise ValidationError(f"{where} must be a time such as 09:00", field=where)
    if text == "24:00":
        return time.max
    h, m = text.split(":")
    return time(int(h), int(m))


@dataclass(frozen=True, slots=True)
class OfficeHours:
    timezone: str
    # weekday (0 = Monday) -> opening intervals, local times
    week: Mapping[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OfficeHours:
        """Validated: a clear error naming the bad value, nothing half-applied."""
        if not isinstance(data, Mapping):
            raise ValidationError("office hours must be an object")
        tz = data.get("timezone")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown time zone {str(tz)[:60]!r}; use a name such as "
                                  "Europe/Moscow", field="timezone") from None
        week_in = data.get("week") or {}
        if not isinstance(week_in, Mapping) or set(week_in) - set(DAYS):
            raise ValidationError(f"week must map days ({', '.join(DAYS)}) to intervals",
                                  field="week")
        week: dict[int, tuple[tuple[time, time], ...]] = {}
        for name, intervals in week_in.items():
            if not isinstance(intervals, Sequence) or len(intervals) > MAX_INTERVALS:
                raise ValidationError(f"week.{name} must be a list of up to {MAX_INTERVALS}"
                                      " [open, close] pairs", field=f"week.{name}")
            out = []
            for i, pair in enumerate(intervals):
                where = f"week.{name}[{i}]"
                if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                    raise ValidationError(f"{where} must be [open, close]", field=where)
                start, end = _time(pair[0], where), _time(pair[1], where)
                if end <= start:
                    raise ValidationError(f"{where}: closing must come after opening",
                                          field=where)
                out.append((start, end))
            week[DAYS.index(name)] = tuple(sorted(out))
        holidays_in = data.get("holidays") or []
        if not isinstance(holidays_in, Sequence) or len(holidays_in) > MAX_HOLIDAYS:
            raise ValidationError(f"holidays must be a list of up to {MAX_HOLIDAYS} dates",
                                  field="holidays")
        holidays = set()
        for i, text in enumerate(holidays_in):
            try:
                holidays.add(date.fromisoformat(str(text)))
            except ValueError:
                raise ValidationError(f"holidays[{i}] must be a date such as 2026-12-31",
                                      field=f"holidays[{i}]") from None
        return cls(str(tz), week, frozenset(holidays))

    def to_json(self) -> dict[str, Any]:
        def hhmm(t: time) -> str:
            return "24:00" if t == time.max else t.strftime("%H:%M")

        return {"timezone": self.timezone,
                "week": {DAYS[d]: [[hhmm(a), hhmm(b)] for a, b in iv]
                         for d, iv in sorted(self.week.items())},
                "holidays": sorted(d.isoformat() for d in self.holidays)}

    def _intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if day in self.holidays:
            return ()
        zone = self.zone
        out = []
        for start, end in self.week.get(day.weekday(), ()):
            a = datetime.combine(day, start, tzinfo=zone)
            b = (datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
                 if end == time.max else datetime.combine(day, end, tzinfo=zone))
            # Through UTC: a local time in a spring-forward gap becomes a real instant. The
            # rule: it is read with the offset in force before the change (fold=0), so an
            # opening at 02:30 on a night the clock jumps 02:00 -> 03:00 opens at 03:30, as
            # long after the jump as 02:30 would have been after 02:00 (never before the
            # clock has shown the time). A time repeated in autumn is its first occurrence.
            out.append((a.astimezone(UTC), b.astimezone(UTC)))
        return tuple(out)

    def open_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's opening intervals as UTC instants (reports bucket by them)."""
        return self._intervals(day)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        return any(a <= at < b for a, b in self._intervals(local.date()))

    def next_opening(self, at: datetime) -> datetime | None:
        """The first opening at or after ``at`` (``at`` itself when open); None when the
        office never opens (no hours at all)."""
        if not any(self.week.values()):
            return None
        day = at.astimezone(self.zone).date()
        for offset in range(LOOKAHEAD_DAYS):
            for a, b in self._intervals(day + timedelta(days=offset)):
                if at < b:
                    return max(a, at)
        return None

    def callback_due(self, at: datetime) -> datetime:
        """When a callback for a call at ``at`` is due: then if the office was open, else at
        the next opening."""
        opening = self.next_opening(at)
        return at if opening is None else opening

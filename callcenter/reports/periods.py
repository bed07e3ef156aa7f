"""Report periods and time buckets in the office's time zone, as UTC instants.

Every boundary (a local midnight, the start of a local hour, a Monday, the 1st of a month) is
computed here with zoneinfo and turned into the UTC text the store keeps
(``2026-03-29T01:00:00.000+00:00``). Those strings sort like the instants they name, so a
row's bucket is a ``bisect`` of its stored timestamp: no per-row time-zone arithmetic, no
SQL date functions (none is portable between SQLite and PostgreSQL), and a daylight-saving
change is simply a 23- or 25-hour day.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from callcenter.reports.model import Grouping, ReportFilter

TIME_GROUPINGS = (Grouping.HOUR, Grouping.DAY, Grouping.WEEK, Grouping.MONTH)
_STEP = timedelta(minutes=15)  # every zone's offset is a multiple of 15 minutes


def utc_text(at: datetime) -> str:
    """The store's form of an instant (callcenter.store.sqlite_calls.ts)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day (a zone whose clocks skip midnight: the first
    instant after the gap)."""
    at = datetime(day.year, day.month, day.day, tzinfo=zone)
    # A nonexistent local midnight reads as the time after the jump; through UTC and back it
    # is a real instant, never before the previous day's end.
    return at.astimezone(UTC).astimezone(zone)


@dataclass(frozen=True, slots=True)
class Buckets:
    """Sorted UTC boundaries; bucket i holds instants in [bounds[i], bounds[i+1])."""

    labels: tuple[str, ...]  # one per bucket; equal labels name one row (see rows_of)
    bounds: tuple[str, ...]  # len(labels) + 1 strings, the last one the period's end
    starts: tuple[datetime, ...]  # each bucket's first instant, local

    def index(self, stamp: str) -> int:
        """The bucket of a stored timestamp, -1 when outside the period."""
        i = bisect.bisect_right(self.bounds, stamp) - 1
        return i if 0 <= i < len(self.labels) else -1

    def row_labels(self) -> list[str]:
        """The distinct labels in time order: the rows of a report."""
        return list(dict.fromkeys(self.labels))


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive
    zone: ZoneInfo

    @classmethod
    def of(cls, f: ReportFilter) -> Period:
        return cls(f.start, f.end, ZoneInfo(f.timezone))

    @property
    def first(self) -> datetime:
        return local_midnight(self.start, self.zone)

    @property
    def after(self) -> datetime:
        return local_midnight(self.end + timedelta(days=1), self.zone)

    @property
    def lo(self) -> str:
        return utc_text(self.first)

    @property
    def hi(self) -> str:
        return utc_text(self.after)

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def buckets(self, grouping: Grouping) -> Buckets:
        if grouping is Grouping.HOUR:
            return self._hours()
        labels: list[str] = []
        starts: list[datetime] = []
        last = None
        for day in self.days():
            key = _day_label(day, grouping)
            if key != last:
                labels.append(key)
                starts.append(local_midnight(day, self.zone))
                last = key
        if not labels:  # NONE and the non-time groupings: one bucket, the whole period
            labels, starts = ["all"], [self.first]
        bounds = [utc_text(s) for s in starts] + [self.hi]
        return Buckets(tuple(labels), tuple(bounds), tuple(starts))

    def _hours(self) -> Buckets:
        """Each local hour that the clock shows: the hour skipped in spring has no bucket,
        the hour repeated in autumn has two with one label (one row of two hours)."""
        labels: list[str] = []
        starts: list[datetime] = []
        at, end = self.first.astimezone(UTC), self.after.astimezone(UTC)
        prev = None
        while at < end:
            local = at.astimezone(self.zone)
            key = (local.date(), local.hour, local.utcoffset())
            if key != prev:  # a new local hour (or the same hour again, after the change)
                labels.append(local.strftime("%Y-%m-%dT%H:00"))
                starts.append(local)
                prev = key
            at += _STEP
        bounds = [utc_text(s) for s in starts] + [self.hi]
        return Buckets(tuple(labels), tuple(bounds), tuple(starts))


def _day_label(day: date, grouping: Grouping) -> str:
    if grouping is Grouping.DAY:
        return day.isoformat()
    if grouping is Grouping.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if grouping is Grouping.MONTH:
        return f"{day.year}-{day.month:02d}"
    return "all"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least ``q`` of all values at or below it
    (p50 of [1, 2, 3, 4] is 2, p90 of ten values is the 9th). ``values`` sorted here."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-round(q * 1000) * len(ordered) // 1000))  # ceil(q * n)
    return ordered[min(rank, len(ordered)) - 1]


def seconds_between(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()

"""When a campaign may hand its next message over: the send window and the throttle.

Pure code with the clock passed in, so tests run a whole day (and a DST change) in
microseconds. The window is wall-clock time in the office's zone (``zoneinfo``): "09:00–21:00"
means what the clock on the office wall shows, in summer and in winter. The day the clocks jump,
an opening time that does not exist (02:30 when 02:00 jumps to 03:00) opens at the jump, and one
that happens twice opens at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.errors import ValidationError

ALL_DAYS = frozenset(range(7))  # Monday = 0, as date.weekday()


def parse_clock(text: str, what: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        value = time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise ValidationError(f"{what} must be a time of day like 09:00", field=what) from None
    return value


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name[:60]!r} (use a name like Europe/Moscow)",
                              field="time_zone") from None


@dataclass(frozen=True)
class SendWindow:
    """Messages go out only while the office clock shows ``start`` ≤ time < ``end`` on one of
    ``days``. Windows across midnight are refused: "no messages at night" is the point."""

    tz: ZoneInfo
    start: time
    end: time
    days: frozenset[int] = field(default=ALL_DAYS)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValidationError("the send window must start before it ends on the same day"
                                  " (no messages at night)", field="window_start")
        if not self.days or not self.days <= ALL_DAYS:
            raise ValidationError("the send window needs at least one weekday (0-6)",
                                  field="days")

    @classmethod
    def of(cls, time_zone: str, start: str, end: str,
           days: frozenset[int] = ALL_DAYS) -> SendWindow:
        return cls(zone(time_zone), parse_clock(start, "window_start"),
                   parse_clock(end, "window_end"), frozenset(days))

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself when the window is open, else the next instant it opens (UTC)."""
        if self.is_open(at):
            return at
        today = at.astimezone(self.tz).date()
        for offset in range(8):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = self._opening(day)
            if opening > at:
                return opening
        raise AssertionError("a window with at least one weekday opens within 8 days")

    def closes_at(self, at: datetime) -> datetime:
        """When the window open at ``at`` closes (UTC)."""
        return self._first_at_or_after(at.astimezone(self.tz).date(), self.end)

    def _opening(self, day: date) -> datetime:
        return self._first_at_or_after(day, self.start)

    def _first_at_or_after(self, day: date, clock: time) -> datetime:
        """The first instant of ``day`` whose wall time is ≥ ``clock``."""
        naive = datetime.combine(day, clock)
        first = naive.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        if first.astimezone(self.tz).replace(tzinfo=None) == naive:
            return first  # exists (when it happens twice, fold=0 is the first time)
        # In the gap of a spring-forward jump: fold=1 maps it before the jump, fold=0 after;
        # the jump itself lies between. Search it to the second.
        low = naive.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        low, high = min(low, first), max(low, first)
        while high - low > timedelta(seconds=1):
            mid = low + (high - low) / 2
            if mid.astimezone(self.tz).replace(tzinfo=None) >= naive:
                high = mid
            else:
                low = mid
        return high.replace(microsecond=0) + (timedelta(seconds=1) if high.microsecond else
                                              timedelta(0))


class Throttle:
    """At most ``per_minute`` messages a minute, evenly spaced (no burst after a pause: the
    SIMs' own limits and the operator's spam filters both dislike bursts). ``per_minute`` 0
    means no campaign limit (the pool's SIM limits still apply). ``now`` is monotonic time."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 0:
            raise ValidationError("messages per minute must not be negative", field="per_minute")
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next = float("-inf")

    def wait(self, now: float) -> float:
        """Seconds until the next message may go (0 when it may go now)."""
        return max(0.0, self._next - now)

    def take(self, now: float) -> None:
        """One message went at ``now``."""
        if now - self._next <= self._interval:
            self._next += self._interval  # on schedule (or late by less than one interval)
        else:
            self._next = now + self._interval  # idle for a while: no burst to catch up

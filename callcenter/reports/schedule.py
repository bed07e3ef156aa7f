"""Scheduled reports: what an admin sets up, and when each one is due — pure code, no I/O.

A schedule fires at a local time of day (every day, or on one weekday) in the office's time
zone and covers a period that ends the day before: ``yesterday``, ``last_7_days`` or
``last_month`` (the calendar month before the firing day). Each firing is identified by its
period (``2026-03-01..2026-03-31``): the runner sends a period once, and a schedule whose
latest period is the one it last sent is not due.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callcenter.errors import ValidationError
from callcenter.reports.model import ReportName

MAX_RECIPIENTS = 20
MAX_NAME = 100
# One address: a pragmatic subset of RFC 5321 (no quoted local parts, no IP literals), and
# never a CR, LF or comma that could add a header or a recipient.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
                    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class Period(enum.StrEnum):
    YESTERDAY = "yesterday"
    LAST_7_DAYS = "last_7_days"
    LAST_MONTH = "last_month"


# Reports a schedule may send: the client card's summary needs a client, so it is not one.
SCHEDULABLE = tuple(n for n in ReportName if n is not ReportName.CLIENT_SUMMARY)


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    name: str
    reports: tuple[ReportName, ...]
    recipients: tuple[str, ...]
    frequency: Frequency
    time_of_day: str  # "HH:MM", local
    weekday: int | None  # 0 = Monday; weekly only
    period: Period
    language: str = "en"
    enabled: bool = True
    created_by: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_period: str | None = None  # the last period sent
    last_sent_at: datetime | None = None
    sending_period: str | None = None  # a period being sent (set before, cleared after)
    attempts: int = 0  # failed tries of the period being sent
    next_attempt_at: datetime | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "reports": [r.value for r in self.reports],
            "recipients": list(self.recipients), "frequency": self.frequency.value,
            "time_of_day": self.time_of_day, "weekday": self.weekday,
            "period": self.period.value, "language": self.language, "enabled": self.enabled,
            "last_period": self.last_period,
            "last_sent_at": _iso(self.last_sent_at), "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at), "last_error": self.last_error,
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


@dataclass(frozen=True, slots=True)
class ScheduleIn:
    """A schedule as the admin entered it, validated."""

    name: str
    reports: tuple[ReportName, ...]
    recipients: tuple[str, ...]
    frequency: Frequency
    time_of_day: str
    weekday: int | None
    period: Period
    language: str
    enabled: bool

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "reports": [r.value for r in self.reports],
                "recipients": list(self.recipients), "frequency": self.frequency.value,
                "time_of_day": self.time_of_day, "weekday": self.weekday,
                "period": self.period.value, "language": self.language,
                "enabled": self.enabled}


def valid_email(address: str) -> bool:
    return bool(_EMAIL.match(address)) and ".." not in address


def validate(*, name: str, reports: list[str], recipients: list[str], frequency: str,
             time_of_day: str, weekday: int | None, period: str, language: str = "en",
             enabled: bool = True) -> ScheduleIn:
    """Each bad value is a sentence naming the field; nothing is half-saved."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError(f"name: 1 to {MAX_NAME} characters", field="name")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        # it becomes the mail's Subject: a line break there would be refused at every send
        raise ValidationError("name: one line, without control characters", field="name")
    chosen: list[ReportName] = []
    for text in reports:
        try:
            report = ReportName(text)
        except ValueError:
            report = None
        if report not in SCHEDULABLE:
            raise ValidationError(f"reports: {str(text)[:40]!r} cannot be scheduled; choose "
                                  f"from {', '.join(r.value for r in SCHEDULABLE)}",
                                  field="reports")
        chosen.append(report)  # type: ignore[arg-type]
    if not chosen:
        raise ValidationError("reports: choose at least one report", field="reports")
    addresses = [a.strip() for a in recipients if a.strip()]
    if not addresses:
        raise ValidationError("recipients: give at least one e-mail address",
                              field="recipients")
    if len(addresses) > MAX_RECIPIENTS:
        raise ValidationError(f"recipients: at most {MAX_RECIPIENTS} addresses",
                              field="recipients")
    for address in addresses:
        if not valid_email(address):
            raise ValidationError(f"recipients: {address[:80]!r} is not an e-mail address "
                                  "such as boss@example.com", field="recipients")
    try:
        freq = Frequency(frequency)
    except ValueError:
        raise ValidationError("frequency must be daily or weekly", field="frequency") from None
    if not _CLOCK.match(time_of_day or ""):
        raise ValidationError("time_of_day must be HH:MM, e.g. 07:30", field="time_of_day")
    if freq is Frequency.WEEKLY:
        if weekday is None or not 0 <= weekday <= 6:
            raise ValidationError("weekday: 0 (Monday) to 6 (Sunday) for a weekly report",
                                  field="weekday")
    else:
        weekday = None
    try:
        per = Period(period)
    except ValueError:
        raise ValidationError("period must be yesterday, last_7_days or last_month",
                              field="period") from None
    if language not in ("en", "ru"):
        raise ValidationError("language must be en or ru", field="language")
    return ScheduleIn(name, tuple(dict.fromkeys(chosen)),
                      tuple(dict.fromkeys(a.lower() for a in addresses)), freq, time_of_day,
                      weekday, per, language, bool(enabled))


def period_of(period: Period, day: date) -> tuple[date, date]:
    """The local days (first, last; inclusive) a report firing on ``day`` covers."""
    if period is Period.YESTERDAY:
        return day - timedelta(days=1), day - timedelta(days=1)
    if period is Period.LAST_7_DAYS:
        return day - timedelta(days=7), day - timedelta(days=1)
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def period_key(first: date, last: date) -> str:
    return f"{first.isoformat()}..{last.isoformat()}"


def parse_period_key(key: str) -> tuple[date, date]:
    first, _, last = key.partition("..")
    return date.fromisoformat(first), date.fromisoformat(last)


def _fire_at(day: date, clock: str, zone: ZoneInfo) -> datetime:
    hh, mm = (int(x) for x in clock.split(":"))
    # A time the DST change skips (02:30 on the spring night) fires at the first valid
    # instant after it; a repeated one (the autumn night) at its first occurrence (fold=0).
    return datetime.combine(day, time(hh, mm), tzinfo=zone).astimezone(UTC)


def latest_firing(schedule: Schedule, now: datetime, zone: ZoneInfo) -> datetime | None:
    """The latest firing instant at or before ``now`` (UTC), or None if none yet."""
    today = now.astimezone(zone).date()
    for back in range(0, 8):
        day = today - timedelta(days=back)
        if schedule.frequency is Frequency.WEEKLY and day.weekday() != schedule.weekday:
            continue
        at = _fire_at(day, schedule.time_of_day, zone)
        if at <= now:
            return at
    return None


def next_firing(schedule: Schedule, now: datetime, zone: ZoneInfo) -> datetime:
    today = now.astimezone(zone).date()
    for ahead in range(0, 9):
        day = today + timedelta(days=ahead)
        if schedule.frequency is Frequency.WEEKLY and day.weekday() != schedule.weekday:
            continue
        at = _fire_at(day, schedule.time_of_day, zone)
        if at > now:
            return at
    raise AssertionError("a schedule fires at least once a week")  # pragma: no cover


def due_period(schedule: Schedule, now: datetime, zone: ZoneInfo) -> str | None:
    """The period to send now, or None. A firing before the schedule was created is not
    sent (a new schedule waits for its first time); a period already sent is not sent again;
    after a failure, the retry waits for ``next_attempt_at``."""
    if not schedule.enabled:
        return None
    at = latest_firing(schedule, now, zone)
    if at is None or at < schedule.created_at:
        return None
    key = period_key(*period_of(schedule.period, at.astimezone(zone).date()))
    if key == schedule.last_period:
        return None
    if (schedule.next_attempt_at is not None and schedule.sending_period == key
            and now < schedule.next_attempt_at):
        return None
    return key


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 60.0  # seconds before the first retry
    factor: float = 2.0
    limit: float = 3600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure (1 = the first)."""
        delay = self.first
        for _ in range(max(0, attempts - 1)):  # stepwise: a float power would overflow
            if delay >= self.limit:
                break
            delay *= self.factor
        return min(self.limit, delay)


def wake_at(schedules: list[Schedule], now: datetime, zone: ZoneInfo) -> datetime | None:
    """When the runner must look again: the next firing or retry of any enabled schedule."""
    times: list[datetime] = []
    for s in schedules:
        if not s.enabled:
            continue
        try:
            times.append(next_firing(s, now, zone))
        except (ValueError, AssertionError):
            continue  # an unreadable row (run_due logs it): the others still wake
        if s.next_attempt_at is not None and s.next_attempt_at > now:
            times.append(s.next_attempt_at)
    return min(times) if times else None

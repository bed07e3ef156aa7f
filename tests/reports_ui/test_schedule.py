"""When a scheduled report is due, and which period it covers (office time zone, DST)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ValidationError
from callcenter.reports.model import ReportName
from callcenter.reports.schedule import (
    Backoff,
    Frequency,
    Period,
    Schedule,
    due_period,
    latest_firing,
    next_firing,
    period_of,
    validate,
    wake_at,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _schedule(**kw) -> Schedule:
    base = Schedule(id=1, name="Daily", reports=(ReportName.MISSED_CALLS,),
                    recipients=("boss@example.com",), frequency=Frequency.DAILY,
                    time_of_day="07:30", weekday=None, period=Period.YESTERDAY,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC))
    return replace(base, **kw)


def test_periods() -> None:
    assert period_of(Period.YESTERDAY, date(2026, 3, 1)) == (date(2026, 2, 28),) * 2
    assert period_of(Period.LAST_7_DAYS, date(2026, 3, 9)) == (date(2026, 3, 2),
                                                               date(2026, 3, 8))
    assert period_of(Period.LAST_MONTH, date(2026, 3, 1)) == (date(2026, 2, 1),
                                                              date(2026, 2, 28))
    assert period_of(Period.LAST_MONTH, date(2026, 1, 15)) == (date(2025, 12, 1),
                                                               date(2025, 12, 31))


def test_daily_due_once_per_period_in_office_time() -> None:
    s = _schedule()
    # 07:29 Berlin (06:29 UTC in winter): not yet; the day before's firing covers the 8th
    before = datetime(2026, 3, 10, 6, 29, tzinfo=UTC)
    assert due_period(s, before, BERLIN) == "2026-03-08..2026-03-08"
    s = replace(s, last_period="2026-03-08..2026-03-08")
    assert due_period(s, before, BERLIN) is None
    at = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)
    assert due_period(s, at, BERLIN) == "2026-03-09..2026-03-09"
    assert due_period(replace(s, last_period="2026-03-09..2026-03-09"), at, BERLIN) is None
    assert due_period(replace(s, enabled=False), at, BERLIN) is None


def test_a_new_schedule_waits_for_its_first_time() -> None:
    created = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    s = _schedule(created_at=created)
    assert due_period(s, datetime(2026, 3, 10, 12, 0, tzinfo=UTC), BERLIN) is None
    assert due_period(s, datetime(2026, 3, 11, 6, 30, tzinfo=UTC), BERLIN) == (
        "2026-03-10..2026-03-10")


def test_dst_change_keeps_the_local_time() -> None:
    s = _schedule()
    # Berlin goes to summer time on 2026-03-29: 07:30 is 05:30 UTC from then on
    assert next_firing(s, datetime(2026, 3, 28, 7, 0, tzinfo=UTC), BERLIN) == datetime(
        2026, 3, 29, 5, 30, tzinfo=UTC)
    assert latest_firing(s, datetime(2026, 3, 28, 7, 0, tzinfo=UTC), BERLIN) == datetime(
        2026, 3, 28, 6, 30, tzinfo=UTC)
    # a time the spring change skips fires at the instant after the gap
    gap = _schedule(time_of_day="02:30")
    assert next_firing(gap, datetime(2026, 3, 29, 0, 0, tzinfo=UTC), BERLIN) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC)


def test_weekly_on_its_weekday() -> None:
    s = _schedule(frequency=Frequency.WEEKLY, weekday=0, period=Period.LAST_7_DAYS)
    # Thursday 2026-03-12: the latest Monday was 03-09 and covered 03-02..03-08
    now = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
    assert due_period(s, now, BERLIN) == "2026-03-02..2026-03-08"
    assert next_firing(s, now, BERLIN) == datetime(2026, 3, 16, 6, 30, tzinfo=UTC)


def test_retry_waits_for_its_time_and_backoff_grows() -> None:
    now = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    retry = datetime(2026, 3, 10, 7, 2, tzinfo=UTC)
    s = _schedule(sending_period="2026-03-09..2026-03-09", attempts=1, next_attempt_at=retry)
    assert due_period(s, now, BERLIN) is None
    assert due_period(s, retry, BERLIN) == "2026-03-09..2026-03-09"
    assert wake_at([s], now, BERLIN) == retry
    b = Backoff(first=60, factor=2, limit=600)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]


def test_validation_names_the_field() -> None:
    ok = validate(name=" Weekly ", reports=["missed_calls", "load"],
                  recipients=["Boss@Example.com", "boss@example.com"], frequency="weekly",
                  time_of_day="08:00", weekday=0, period="last_7_days")
    assert ok.name == "Weekly" and ok.recipients == ("boss@example.com",)
    bad = [
        ({"recipients": ["boss@example.com\r\nBcc: x@y.z"]}, "recipients"),
        ({"recipients": ["not-an-address"]}, "recipients"),
        ({"recipients": []}, "recipients"),
        ({"reports": ["client_summary"]}, "reports"),
        ({"reports": ["nope"]}, "reports"),
        ({"time_of_day": "25:00"}, "time_of_day"),
        ({"weekday": 7}, "weekday"),
        ({"period": "forever"}, "period"),
        ({"frequency": "hourly"}, "frequency"),
        ({"name": ""}, "name"),
    ]
    base = {"name": "x", "reports": ["load"], "recipients": ["a@b.cd"], "frequency": "weekly",
            "time_of_day": "08:00", "weekday": 1, "period": "yesterday"}
    for change, fld in bad:
        with pytest.raises(ValidationError) as info:
            validate(**{**base, **change})
        assert info.value.field == fld, change


def test_backoff_stays_bounded_however_many_tries() -> None:
    # a monthly report retried hourly for weeks: the exponent must not overflow a float
    assert Backoff(first=60.0, factor=2.0, limit=3600.0).delay(5000) == 3600


def test_a_name_with_a_line_break_is_refused_as_it_becomes_the_subject() -> None:
    base = {"reports": ["load"], "recipients": ["a@b.cd"], "frequency": "daily",
            "time_of_day": "08:00", "weekday": None, "period": "yesterday"}
    for name in ("Weekly\r\nBcc: all@x.y", "a\nb", "tab\there", "nul\x00"):
        with pytest.raises(ValidationError) as info:
            validate(name=name, **base)
        assert info.value.field == "name", repr(name)


def test_an_unreadable_row_does_not_hide_the_others_wake_up() -> None:
    now = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)
    good = _schedule()
    bad = _schedule(id=2, frequency=Frequency.WEEKLY, weekday=None)
    assert wake_at([bad, good], now, BERLIN) == next_firing(good, now, BERLIN)

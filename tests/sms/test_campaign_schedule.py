"""Send windows in the office's zone (DST included) and the per-minute throttle."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.errors import ValidationError
from callcenter.sms.campaign_schedule import SendWindow, Throttle


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_window_in_office_time() -> None:
    w = SendWindow.of("Europe/Moscow", "09:00", "21:00")  # UTC+3, no DST
    assert not w.is_open(utc(2026, 11, 24, 5, 59))  # 08:59 in Moscow
    assert w.is_open(utc(2026, 11, 24, 6, 0))
    assert w.is_open(utc(2026, 11, 24, 17, 59))
    assert not w.is_open(utc(2026, 11, 24, 18, 0))  # 21:00: closed
    # at night the next opening is 09:00 the next morning
    assert w.next_open(utc(2026, 11, 24, 20, 0)) == utc(2026, 11, 25, 6, 0)
    assert w.next_open(utc(2026, 11, 24, 3, 0)) == utc(2026, 11, 24, 6, 0)
    assert w.next_open(utc(2026, 11, 24, 12, 0)) == utc(2026, 11, 24, 12, 0)  # open now
    assert w.closes_at(utc(2026, 11, 24, 12, 0)) == utc(2026, 11, 24, 18, 0)


def test_window_follows_the_wall_clock_across_spring_forward() -> None:
    w = SendWindow.of("Europe/Berlin", "09:00", "21:00")
    # Saturday 28 March 2026, 21:30 CET; the clocks jump 02:00 → 03:00 that night.
    opening = w.next_open(utc(2026, 3, 28, 20, 30))
    assert opening == utc(2026, 3, 29, 7, 0)  # 09:00 CEST, not 08:00 UTC (09:00 CET)
    assert not w.is_open(opening - timedelta(seconds=1))


def test_window_follows_the_wall_clock_across_fall_back() -> None:
    w = SendWindow.of("Europe/Berlin", "09:00", "21:00")
    # Sunday 25 October 2026: 03:00 CEST → 02:00 CET
    assert w.next_open(utc(2026, 10, 24, 20, 0)) == utc(2026, 10, 25, 8, 0)  # 09:00 CET
    assert w.is_open(utc(2026, 10, 25, 19, 59))  # 20:59 CET
    assert not w.is_open(utc(2026, 10, 25, 20, 0))


def test_an_opening_time_in_the_gap_opens_at_the_jump() -> None:
    w = SendWindow.of("Europe/Berlin", "02:30", "20:00")
    # 02:30 does not exist on 29 March 2026: the first instant after it is 03:00 CEST
    assert w.next_open(utc(2026, 3, 28, 22, 0)) == utc(2026, 3, 29, 1, 0)
    # an opening that happens twice (02:30 on 25 October) opens at the first one (CEST)
    assert w.next_open(utc(2026, 10, 24, 22, 0)) == utc(2026, 10, 25, 0, 30)


def test_weekdays() -> None:
    w = SendWindow.of("Europe/Moscow", "10:00", "18:00", frozenset({0, 1, 2, 3, 4}))
    friday_evening = utc(2026, 11, 27, 16, 0)  # 19:00 Friday in Moscow
    assert w.next_open(friday_evening) == utc(2026, 11, 30, 7, 0)  # Monday 10:00


@pytest.mark.parametrize("zone, start, end, field", [
    ("Mars/Olympus", "09:00", "21:00", "time_zone"),
    ("Europe/Moscow", "21:00", "09:00", "window_start"),  # across midnight: refused
    ("Europe/Moscow", "9 am", "21:00", "window_start"),
    ("Europe/Moscow", "09:00", "25:00", "window_end"),
])
def test_bad_windows(zone: str, start: str, end: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        SendWindow.of(zone, start, end)
    assert err.value.field == field


def test_throttle_spaces_messages_evenly() -> None:
    t = Throttle(30)  # one every 2 s
    now = 100.0
    sent = []
    while now < 160.0:
        if t.wait(now) == 0:
            t.take(now)
            sent.append(now)
        now = round(now + 0.25, 2)
    assert len(sent) == 30
    assert all(b - a == pytest.approx(2.0) for a, b in itertools.pairwise(sent))


def test_throttle_gives_no_burst_after_idling() -> None:
    t = Throttle(60)
    t.take(0.0)
    assert t.wait(0.5) == pytest.approx(0.5)
    t.take(500.0)  # long idle
    assert t.wait(500.0) == pytest.approx(1.0)


def test_throttle_zero_is_no_campaign_limit() -> None:
    t = Throttle(0)
    for _ in range(100):
        assert t.wait(5.0) == 0
        t.take(5.0)

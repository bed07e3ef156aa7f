"""Office hours: a call outside them gets a callback due at the next opening, in the office's
time zone, across daylight-saving changes and holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcenter.calls.log import CallLog
from callcenter.calls.model import LiveCall
from callcenter.errors import ValidationError
from callcenter.line_events import Direction, EndState
from callcenter.matching import CallerMatch
from callcenter.phones import Number, NumberKind
from callcenter.routing.hours import OfficeHours

WEEKDAYS = {d: [["09:00", "13:00"], ["14:00", "18:00"]] for d in ("mon", "tue", "wed", "thu",
                                                                  "fri")}
BERLIN = OfficeHours.from_json({"timezone": "Europe/Berlin", "week": WEEKDAYS,
                                "holidays": ["2026-12-24"]})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("at", "due"), [
    # Saturday evening before the autumn change (CEST, +2) -> Monday 09:00 CET (+1) = 08:00 UTC;
    # adding 36 hours or keeping the +2 offset would both be an hour off
    (utc(2026, 10, 24, 18, 0), utc(2026, 10, 26, 8, 0)),
    # Friday evening before the spring change (CET) -> Monday 09:00 CEST = 07:00 UTC
    (utc(2026, 3, 27, 18, 0), utc(2026, 3, 30, 7, 0)),
    # within hours: due at once; in the lunch break: at 14:00 local
    (utc(2026, 11, 4, 9, 30), utc(2026, 11, 4, 9, 30)),
    (utc(2026, 11, 4, 12, 30), utc(2026, 11, 4, 13, 0)),
    # early morning: the same day's opening; after closing: the next day's
    (utc(2026, 11, 4, 5, 0), utc(2026, 11, 4, 8, 0)),
    (utc(2026, 11, 4, 17, 0), utc(2026, 11, 5, 8, 0)),
    # the evening before a holiday (Thu 24 Dec): Friday
    (utc(2026, 12, 23, 20, 0), utc(2026, 12, 25, 8, 0)),
])
def test_callback_due_at_the_next_opening(at: datetime, due: datetime) -> None:
    assert BERLIN.callback_due(at) == due


def test_hours_round_trip_and_clear_errors() -> None:
    assert OfficeHours.from_json(BERLIN.to_json()) == BERLIN
    assert OfficeHours.from_json({"timezone": "UTC"}).callback_due(utc(2026, 1, 1)) == utc(
        2026, 1, 1)  # no hours at all: due at once
    for bad, words in (({"timezone": "Mars/Base"}, "unknown time zone"),
                       ({"timezone": "UTC", "week": {"mon": [["9", "18:00"]]}}, "09:00"),
                       ({"timezone": "UTC", "week": {"mon": [["18:00", "09:00"]]}}, "after"),
                       ({"timezone": "UTC", "week": {"someday": []}}, "week must map"),
                       ({"timezone": "UTC", "holidays": ["31.12.2026"]}, "2026-12-31")):
        with pytest.raises(ValidationError, match=words):
            OfficeHours.from_json(bad)


async def test_missed_call_after_hours_gets_a_task_due_at_opening(store) -> None:
    # Monday 22 Nov 2027, 22:00 in Moscow (UTC+3): due Tuesday 09:00 = 06:00 UTC. (A call in
    # the future, so "now" - the earliest a task can be due - does not win.)
    moscow = OfficeHours.from_json({"timezone": "Europe/Moscow", "week": WEEKDAYS})
    log = CallLog(store, callback_due=moscow.callback_due)
    await log.start()
    try:
        for n, (number, at) in enumerate((("+79161234567", utc(2027, 11, 22, 19, 0)),
                                          ("+79031234567", utc(2020, 11, 23, 7, 0)))):
            rang = at.timestamp()
            call = LiveCall(id=f"office:{n}", line="office", direction=Direction.INBOUND,
                            caller_raw=number, caller_name="", withheld=False,
                            called="74951110000", started_at=rang,
                            match=CallerMatch(Number(number, NumberKind.EXTERNAL, number)),
                            caller_e164=number, ended_at=rang + 30, end_state=EndState.MISSED,
                            client_phone=number)
            log.call_finished(call)
        await log.drained()
    finally:
        await log.stop()
    due = {t.phone: t.due_at for t in await store.list_tasks(done=False)}
    assert due["+79161234567"] == utc(2027, 11, 23, 6, 0)
    # a call in opening hours (long ago here): due at once, i.e. when it was logged
    assert due["+79031234567"] is not None
    assert utc(2026, 1, 1) < due["+79031234567"] <= datetime.now(UTC)


def test_a_holiday_on_a_clock_change_day() -> None:
    every_day = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                   "sun")}
    hours = OfficeHours.from_json({"timezone": "Europe/Berlin", "week": every_day,
                                   "holidays": ["2026-10-25", "2026-03-29"]})
    # Saturday evening before the autumn change; Sunday (the change) is a holiday: Monday
    # 09:00 CET = 08:00 UTC
    assert hours.callback_due(utc(2026, 10, 24, 17, 0)) == utc(2026, 10, 26, 8, 0)
    # during the holiday itself, after the clocks went back
    assert hours.callback_due(utc(2026, 10, 25, 10, 0)) == utc(2026, 10, 26, 8, 0)
    assert not hours.is_open(utc(2026, 10, 25, 10, 0))
    # the spring change on a holiday: Monday 09:00 CEST = 07:00 UTC
    assert hours.callback_due(utc(2026, 3, 28, 17, 0)) == utc(2026, 3, 30, 7, 0)


def test_an_opening_inside_the_spring_forward_gap() -> None:
    # 29 March 2026, Berlin: 02:00 CET jumps to 03:00 CEST. The rule (callcenter.routing.hours):
    # 02:30 is read with the offset before the jump, i.e. 03:30 CEST = 01:30 UTC.
    hours = OfficeHours.from_json({"timezone": "Europe/Berlin",
                                   "week": {"sun": [["02:30", "05:00"]]}})
    assert hours.callback_due(utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 30)
    assert not hours.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST: not yet
    assert hours.is_open(utc(2026, 3, 29, 1, 30))
    # a week later the same opening is 02:30 CEST = 00:30 UTC
    assert hours.callback_due(utc(2026, 4, 4, 23, 0)) == utc(2026, 4, 5, 0, 30)

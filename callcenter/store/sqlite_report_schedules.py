"""Scheduled reports in SQLite (the table of migration report_schedules)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from callcenter.reports.model import ReportName
from callcenter.reports.schedule import Frequency, Period, Schedule, ScheduleIn
from callcenter.store.base import NotFound
from callcenter.store.sqlite_calls import now_utc, ts
from callcenter.store.sqlite_db import SqliteDb

_COLUMNS = ("id, name, reports, recipients, frequency, time_of_day, weekday, period, language,"
            " enabled, created_by, created_at, last_period, last_sent_at, sending_period,"
            " attempts, next_attempt_at, last_error")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _schedule(row: Sequence[Any]) -> Schedule:
    return Schedule(
        id=row[0], name=row[1], reports=tuple(ReportName(r) for r in json.loads(row[2])),
        recipients=tuple(json.loads(row[3])), frequency=Frequency(row[4]),
        time_of_day=row[5], weekday=row[6], period=Period(row[7]), language=row[8],
        enabled=bool(row[9]), created_by=row[10], created_at=_dt(row[11]) or now_utc(),
        last_period=row[12], last_sent_at=_dt(row[13]), sending_period=row[14],
        attempts=row[15], next_attempt_at=_dt(row[16]), last_error=row[17])


def _values(s: ScheduleIn) -> tuple[Any, ...]:
    return (s.name, json.dumps([r.value for r in s.reports]), json.dumps(list(s.recipients)),
            s.frequency.value, s.time_of_day, s.weekday, s.period.value, s.language,
            int(s.enabled))


class ReportSchedulesMixin:
    _db: SqliteDb

    async def list_report_schedules(self) -> list[Schedule]:
        return [_schedule(r) for r in await self._db.rows(
            f"SELECT {_COLUMNS} FROM report_schedules ORDER BY id")]

    async def get_report_schedule(self, schedule_id: int) -> Schedule:
        return _schedule(await self._db.one(
            f"SELECT {_COLUMNS} FROM report_schedules WHERE id = ?", (schedule_id,),
            "report schedule", schedule_id))

    async def add_report_schedule(self, s: ScheduleIn, created_by: int | None,
                                  created_at: datetime | None = None) -> Schedule:
        rows = await self._db.rows(
            "INSERT INTO report_schedules (name, reports, recipients, frequency, time_of_day,"
            " weekday, period, language, enabled, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (*_values(s), created_by, ts(created_at or now_utc())))
        return await self.get_report_schedule(int(rows[0][0]))

    async def update_report_schedule(self, schedule_id: int, s: ScheduleIn) -> Schedule:
        # A changed schedule starts afresh: a pending retry of the old settings is dropped.
        cursor = await self._db.execute(
            "UPDATE report_schedules SET name = ?, reports = ?, recipients = ?, frequency = ?,"
            " time_of_day = ?, weekday = ?, period = ?, language = ?, enabled = ?,"
            " attempts = 0, next_attempt_at = NULL WHERE id = ?",
            (*_values(s), schedule_id))
        if not cursor.rowcount:
            raise NotFound("report schedule", schedule_id)
        return await self.get_report_schedule(schedule_id)

    async def delete_report_schedule(self, schedule_id: int) -> None:
        cursor = await self._db.execute("DELETE FROM report_schedules WHERE id = ?",
                                        (schedule_id,))
        if not cursor.rowcount:
            raise NotFound("report schedule", schedule_id)

    async def report_schedule_sending(self, schedule_id: int, period: str) -> None:
        """Before the mail goes out: the period being sent."""
        await self._db.execute(
            "UPDATE report_schedules SET sending_period = ? WHERE id = ?", (period, schedule_id))

    async def report_schedule_sent(self, schedule_id: int, period: str, at: datetime) -> None:
        """After the mail server accepted it: the period is done."""
        await self._db.execute(
            "UPDATE report_schedules SET last_period = ?, last_sent_at = ?,"
            " sending_period = NULL, attempts = 0, next_attempt_at = NULL, last_error = NULL"
            " WHERE id = ?", (period, ts(at), schedule_id))

    async def report_schedule_failed(self, schedule_id: int, period: str, attempts: int,
                                     retry_at: datetime, error: str) -> None:
        await self._db.execute(
            "UPDATE report_schedules SET sending_period = ?, attempts = ?,"
            " next_attempt_at = ?, last_error = ? WHERE id = ?",
            (period, attempts, ts(retry_at), error[:500], schedule_id))

    async def smtp_password(self) -> str | None:
        """The admin page's SMTP password (None: never set there). Only the sender reads it."""
        rows = await self._db.rows("SELECT password FROM report_smtp_secret WHERE id = 1")
        return rows[0][0] if rows else None

    async def set_smtp_password(self, password: str) -> None:
        await self._db.execute(
            "INSERT INTO report_smtp_secret (id, password) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET password = excluded.password", (password,))

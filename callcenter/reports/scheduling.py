"""Scheduled reports as the admin sees them: schedules and SMTP settings, each change audited
and handed to the runner at once; and the component the app's lifespan starts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, replace
from typing import Any

from callcenter.audit.model import Actor
from callcenter.config import SmtpConfig
from callcenter.errors import ValidationError
from callcenter.reports.export import Translate
from callcenter.reports.mailer import SmtpSettings
from callcenter.reports.schedule import Schedule, ScheduleIn, valid_email
from callcenter.reports.scheduler import ReportScheduler

SMTP_SETTING = "smtp"  # key in the settings table: the admin page's values over [smtp]
# Where the password goes: when one of these changes and no new password is sent, the stored
# one is not handed to the new server (as a line's ``secret_bound`` settings).
SECRET_BOUND = ("host", "port", "user")


def smtp_defaults(config: SmtpConfig) -> SmtpSettings:
    return SmtpSettings(**asdict(config))


class ReportSchedules:
    def __init__(self, store: Any, audit: Any, defaults: SmtpSettings,
                 scheduler: ReportScheduler | None = None) -> None:
        self._store = store
        self._audit = audit
        self._defaults = defaults
        self.scheduler = scheduler

    def _changed(self) -> None:
        if self.scheduler is not None:
            self.scheduler.changed()

    async def list(self) -> list[Schedule]:
        return await self._store.list_report_schedules()

    async def add(self, who: Actor, data: ScheduleIn) -> Schedule:
        schedule = await self._store.add_report_schedule(data, who.user_id)
        await self._audit.record_by(who, "create", "report_schedule", schedule.id, None,
                                    data.to_json())
        self._changed()
        return schedule

    async def update(self, who: Actor, schedule_id: int, data: ScheduleIn) -> Schedule:
        before = await self._store.get_report_schedule(schedule_id)
        schedule = await self._store.update_report_schedule(schedule_id, data)
        await self._audit.record_by(who, "update", "report_schedule", schedule_id,
                                    _settings_of(before), data.to_json())
        self._changed()
        return schedule

    async def delete(self, who: Actor, schedule_id: int) -> None:
        before = await self._store.get_report_schedule(schedule_id)
        await self._store.delete_report_schedule(schedule_id)
        await self._audit.record_by(who, "delete", "report_schedule", schedule_id,
                                    _settings_of(before), None)
        self._changed()

    async def smtp(self) -> SmtpSettings:
        stored = dict((await self._store.get_settings()).get(SMTP_SETTING) or {})
        settings = self._defaults.merged(stored)  # a "password" there: an older build's
        password = await self._store.smtp_password()
        return settings if password is None else replace(settings, password=password)

    async def update_smtp(self, who: Actor, values: dict[str, Any]) -> SmtpSettings:
        """``values``: the fields sent; a password left out (or empty) keeps the one set,
        unless the server it was for changed."""
        before = await self.smtp()
        stored = dict((await self._store.get_settings()).get(SMTP_SETTING) or {})
        legacy = stored.pop("password", None)  # an older build kept it here
        password = values.get("password") or None
        for key, value in values.items():
            if key != "password":
                stored[key] = value
        after = self._defaults.merged(stored)
        if after.from_address and not valid_email(after.from_address):
            raise ValidationError("from_address must be an e-mail address such as "
                                  "reports@example.com", field="from_address")
        if password is None and any(getattr(after, k) != getattr(before, k)
                                    for k in SECRET_BOUND):
            password = ""
        after = replace(after, password=before.password if password is None else password)
        if password is not None or legacy:
            await self._store.set_smtp_password(after.password)
        await self._store.set_setting(SMTP_SETTING, stored)
        # the audit masks "password" (a secret key): it shows only that it changed
        await self._audit.record_by(who, "update", "smtp_settings", None,
                                    asdict(before), asdict(after))
        self._changed()
        return after


def _settings_of(s: Schedule) -> dict[str, Any]:
    data = s.to_json()
    return {k: data[k] for k in ("name", "reports", "recipients", "frequency", "time_of_day",
                                 "weekday", "period", "language", "enabled")}


@contextlib.asynccontextmanager
async def report_scheduling(services: Any, translate_for: Callable[[str], Translate]
                            ) -> AsyncIterator[ReportSchedules]:
    """Builds the schedules service and runs the sending loop for the app's lifetime."""
    schedules = ReportSchedules(services.store, services.audit,
                                smtp_defaults(services.config.smtp))
    reports = services.reports
    scheduler = ReportScheduler(services.store, reports, smtp=schedules.smtp,
                                translate_for=translate_for,
                                timezone=lambda: reports.timezone)
    schedules.scheduler = scheduler
    services.extra["report_schedules"] = schedules
    async with scheduler.running():
        yield schedules

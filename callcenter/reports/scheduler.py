"""The scheduled-report runner: sends each due schedule's period once, retries a failing mail
server with back-off, and sleeps until the next firing or retry (or an admin's change).

Delivery is *at least once*: ``sending_period`` is written before the mail goes out and
``last_period`` only after the server accepted it. A crash in between (or a server that took
the mail but dropped the connection before saying so) sends that period again on restart —
with the same Message-ID, so a mail system or a reader can tell it is the same mail. The
other order (mark first, send after) would lose the report on such a crash, silently; a
report a manager waits for every Monday is worth more than a rare duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from callcenter.models import Role, User
from callcenter.reports import mailer
from callcenter.reports.export import Translate
from callcenter.reports.schedule import (
    Backoff,
    Schedule,
    due_period,
    parse_period_key,
    wake_at,
)

log = logging.getLogger(__name__)

# The runner looks again at least this often: a clock that jumped, a time-zone change.
MAX_SLEEP = 300.0
# Schedules are an admin's: their reports see everything, as the admin would.
SCHEDULER_USER = User(id=0, login="scheduler", name="Scheduled reports", role=Role.ADMIN)


class ScheduleStore(Protocol):
    async def list_report_schedules(self) -> list[Schedule]: ...
    async def get_report_schedule(self, schedule_id: int) -> Schedule: ...
    async def report_schedule_sending(self, schedule_id: int, period: str) -> None: ...
    async def report_schedule_sent(self, schedule_id: int, period: str, at: datetime
                                   ) -> None: ...
    async def report_schedule_failed(self, schedule_id: int, period: str, attempts: int,
                                     retry_at: datetime, error: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    schedule_id: int
    period: str
    sent: bool
    error: str | None = None


Sender = Callable[[mailer.SmtpSettings, Any], Awaitable[None]]


class ReportScheduler:
    def __init__(self, store: ScheduleStore, reports: Any, *,
                 smtp: Callable[[], Awaitable[mailer.SmtpSettings]],
                 translate_for: Callable[[str], Translate],
                 timezone: Callable[[], str],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 backoff: Backoff | None = None,
                 sender: Sender = mailer.send) -> None:
        self._store = store
        self._reports = reports
        self._smtp = smtp
        self._translate_for = translate_for
        self._timezone = timezone
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._sender = sender
        self._changed = asyncio.Event()
        self._stopping = False
        self.outcomes: list[Outcome] = []  # the latest few, for the admin page and tests
        self.sent_event = asyncio.Event()  # set after each attempt (tests wait on it)

    def changed(self) -> None:
        """An admin added or changed a schedule (or the SMTP settings): look again now."""
        self._changed.set()

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self._timezone() or "UTC")
        except (KeyError, ValueError):
            return ZoneInfo("UTC")

    async def run_due(self, now: datetime | None = None) -> list[Outcome]:
        """Sends every schedule due at ``now``; one schedule's failure stops no other."""
        now = now or self._clock()
        zone = self.zone()
        outcomes = []
        for schedule in await self._store.list_report_schedules():
            try:
                period = due_period(schedule, now, zone)
            except Exception:  # a row the code cannot read (edited by hand): skip it
                log.exception("scheduled report %d: cannot tell when it is due", schedule.id)
                continue
            if period is None:
                continue
            outcomes.append(await self.send(schedule, period, now))
        return outcomes

    async def send(self, schedule: Schedule, period: str, now: datetime | None = None
                   ) -> Outcome:
        now = now or self._clock()
        if schedule.sending_period == period and schedule.attempts == 0:
            log.warning("scheduled report %d: the last send of %s was cut off; sending it "
                        "again (same Message-ID)", schedule.id, period)
        await self._store.report_schedule_sending(schedule.id, period)
        try:
            message = await self.message(schedule, period)
            await self._sender(await self._smtp(), message)
        except mailer.MailError as exc:
            return await self._failed(schedule, period, now, str(exc))
        except Exception as exc:  # a report that cannot be built must not stop the others
            log.exception("scheduled report %d: building %s failed", schedule.id, period)
            return await self._failed(schedule, period, now,
                                      f"the report could not be built: {type(exc).__name__}")
        await self._store.report_schedule_sent(schedule.id, period, self._clock())
        log.info("scheduled report %d (%s) sent to %d recipients", schedule.id, period,
                 len(schedule.recipients))
        return self._note(Outcome(schedule.id, period, True))

    async def _failed(self, schedule: Schedule, period: str, now: datetime, error: str
                      ) -> Outcome:
        attempts = (schedule.attempts if schedule.sending_period == period else 0) + 1
        retry_at = now + timedelta(seconds=self._backoff.delay(attempts))
        await self._store.report_schedule_failed(schedule.id, period, attempts, retry_at,
                                                 error)
        log.error("scheduled report %d (%s): try %d failed, next at %s: %s", schedule.id,
                  period, attempts, retry_at.isoformat(timespec="seconds"), error)
        return self._note(Outcome(schedule.id, period, False, error))

    def _note(self, outcome: Outcome) -> Outcome:
        self.outcomes = [*self.outcomes[-19:], outcome]
        self.sent_event.set()
        return outcome

    async def reports_of(self, schedule: Schedule, period: str) -> list[Mapping[str, Any]]:
        first, last = parse_period_key(period)
        results = []
        for name in schedule.reports:
            f = self._reports.parse(name, {"from": [first.isoformat()],
                                           "to": [last.isoformat()]})
            result = await self._reports.run(SCHEDULER_USER, name, f)
            results.append(result.to_json())
        return results

    async def message(self, schedule: Schedule, period: str) -> Any:
        settings = await self._smtp()
        translate = self._translate_for(schedule.language)
        reports = await self.reports_of(schedule, period)
        first, last = parse_period_key(period)
        span = (first.strftime("%d.%m.%Y") if first == last
                else f"{first:%d.%m.%Y} – {last:%d.%m.%Y}")
        domain = (settings.from_address.rpartition("@")[2] or "callcenter").strip("<>")
        return mailer.build_message(
            settings=settings, recipients=schedule.recipients,
            subject=f"{schedule.name}: {span}", reports=reports, translate=translate,
            message_id=f"<report-{schedule.id}-{period}@{domain}>",
            intro=translate("schedule.mail.intro").replace("{period}", span))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReportScheduler]:
        """The loop as the app's lifespan owns it: started here, stopped and awaited on exit.
        The stop flag ends it even when a cancellation is lost (Python 3.11's wait_for, which
        the SMTP client uses, can swallow one that arrives as its wait completes)."""
        task = asyncio.create_task(self.run(), name="report-scheduler")
        try:
            yield self
        finally:
            self._stopping = True
            self._changed.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Sends what is due, then waits for the next firing, retry or change."""
        while not self._stopping:
            self._changed.clear()  # before reading: a change made meanwhile is seen next time
            try:
                await self.run_due()
                now = self._clock()
                wake = wake_at(await self._store.list_report_schedules(), now, self.zone())
                delay = MAX_SLEEP if wake is None else max(0.0, (wake - now).total_seconds())
            except Exception:
                # whatever it was (a bad row, a store error), the loop must not end silently
                log.exception("scheduled reports: a pass failed; trying again later")
                delay = MAX_SLEEP
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(MAX_SLEEP, delay))

"""Scheduled reports end to end against a real SMTP server (aiosmtpd on 127.0.0.1): the mail
carries the report's figures in its body and as XLSX + CSV attachments; a refusing server is
retried with back-off and its error shown; a sent period is never sent again, and one cut off
by a crash is sent again with the same Message-ID (at least once)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook

from callcenter.reports.mailer import SmtpSettings
from callcenter.reports.model import ReportFilter, ReportResult
from callcenter.reports.registry import REPORTS
from callcenter.reports.schedule import Backoff, Schedule, validate
from callcenter.reports.scheduler import ReportScheduler
from tests.reports_ui.smtp_server import Inbox, start_smtp

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 09:00 in Moscow
CATALOG = {"report.name.missed_calls": "Missed calls", "report.col.missed": "Missed",
           "report.col.inbound": "Inbound", "report.col.day": "Day",
           "schedule.mail.intro": "Reports for {period}"}


class FakeReports:
    """A missed-call report with known figures for whatever period it is asked."""

    def __init__(self) -> None:
        self.asked: list[ReportFilter] = []

    def parse(self, name, query):
        return ReportFilter(start=date.fromisoformat(query["from"][0]),
                            end=date.fromisoformat(query["to"][0]), timezone="Europe/Moscow")

    async def run(self, user, name, f):
        self.asked.append(f)
        spec = REPORTS[name]
        columns = spec.columns_for(f.group_by)
        row = [None] * len(columns)
        keys = [c.key for c in columns]
        row[0] = f.start.isoformat()
        row[keys.index("inbound")] = 40
        row[keys.index("missed")] = 7
        return ReportResult(name, f, columns, [tuple(row)], spec.chart, totals=tuple(
            None if k == "bucket" else row[i] for i, k in enumerate(keys)))


@pytest.fixture
async def smtp():
    inbox = Inbox()
    server, port = await start_smtp(inbox)
    try:
        yield inbox, port
    finally:
        server.close()
        await server.wait_closed()


def _scheduler(store, port, clock=lambda: NOW, reports=None):
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False,
                            from_address="reports@office.example", timeout=5)

    async def smtp_settings():
        return settings

    return ReportScheduler(store, reports or FakeReports(), smtp=smtp_settings,
                           translate_for=lambda lang: lambda key: CATALOG.get(key, key),
                           timezone=lambda: "Europe/Moscow", clock=clock,
                           backoff=Backoff(first=60, factor=2, limit=3600))


async def _daily(store):
    s = validate(name="Daily <missed>", reports=["missed_calls"],
                 recipients=["boss@example.com", "chief@example.com"], frequency="daily",
                 time_of_day="08:00", weekday=None, period="yesterday")
    return await store.add_report_schedule(s, None, created_at=NOW - timedelta(days=3))


async def test_due_report_arrives_with_figures_and_attachments(store, smtp) -> None:
    inbox, port = smtp
    schedule = await _daily(store)
    reports = FakeReports()
    outcomes = await _scheduler(store, port, reports=reports).run_due(NOW)
    assert [(o.sent, o.period) for o in outcomes] == [(True, "2026-03-09..2026-03-09")]
    assert reports.asked[0].start == reports.asked[0].end == date(2026, 3, 9)
    (mail,) = inbox.mails
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["boss@example.com", "chief@example.com"]
    assert mail["Subject"] == "Daily <missed>: 09.03.2026"
    assert mail["Message-ID"] == f"<report-{schedule.id}-2026-03-09..2026-03-09@office.example>"
    text = mail.get_body(("plain",)).get_content()
    assert "Reports for 09.03.2026" in text and "Missed: 7" in text and "Inbound: 40" in text
    html = mail.get_body(("html",)).get_content()
    assert "Daily &lt;missed&gt;" not in html  # the subject only; the body names reports
    assert "<td align=\"right\">7</td>" in html
    files = {a.get_filename(): a for a in mail.iter_attachments()}
    assert sorted(files) == ["missed_calls_2026-03-09_2026-03-09.csv",
                             "missed_calls_2026-03-09_2026-03-09.xlsx"]
    rows = list(csv.reader(io.StringIO(
        files["missed_calls_2026-03-09_2026-03-09.csv"].get_payload(decode=True).decode(
            "utf-8-sig"))))
    assert rows[0][:3] == ["Day", "Inbound", "Missed"] and rows[1][:3] == ["2026-03-09", "40",
                                                                           "7"]
    book = load_workbook(io.BytesIO(
        files["missed_calls_2026-03-09_2026-03-09.xlsx"].get_content()))
    sheet = book.worksheets[0]
    assert [c.value for c in sheet[2]][:3] == ["2026-03-09", 40, 7]
    stored = await store.get_report_schedule(schedule.id)
    assert stored.last_period == "2026-03-09..2026-03-09" and stored.sending_period is None
    # the same period is never sent twice
    assert await _scheduler(store, port).run_due(NOW + timedelta(hours=5)) == []
    assert len(inbox.mails) == 1


async def test_refusing_server_is_retried_with_backoff_and_reported(store, smtp) -> None:
    inbox, port = smtp
    schedule = await _daily(store)
    inbox.refuse = "451 4.3.0 mailbox busy, try later"
    scheduler = _scheduler(store, port)
    (first,) = await scheduler.run_due(NOW)
    assert not first.sent and "451" in first.error and "mailbox busy" in first.error
    stored = await store.get_report_schedule(schedule.id)
    assert stored.attempts == 1 and stored.next_attempt_at == NOW + timedelta(seconds=60)
    assert stored.last_period is None and "mailbox busy" in stored.to_json()["last_error"]
    assert await scheduler.run_due(NOW + timedelta(seconds=30)) == []  # waits for its time
    (second,) = await scheduler.run_due(NOW + timedelta(seconds=60))
    assert not second.sent
    stored = await store.get_report_schedule(schedule.id)
    assert stored.attempts == 2 and stored.next_attempt_at == NOW + timedelta(seconds=180)
    inbox.refuse = None
    (third,) = await scheduler.run_due(NOW + timedelta(seconds=180))
    assert third.sent and len(inbox.mails) == 1
    stored = await store.get_report_schedule(schedule.id)
    assert (stored.attempts, stored.last_error, stored.next_attempt_at) == (0, None, None)


async def test_unreachable_server_is_a_clear_error(store, unused_tcp_port) -> None:
    await _daily(store)
    (outcome,) = await _scheduler(store, unused_tcp_port).run_due(NOW)
    assert not outcome.sent
    assert outcome.error.startswith(f"cannot reach the mail server 127.0.0.1:{unused_tcp_port}")


async def test_a_send_cut_off_by_a_crash_is_sent_again_with_the_same_id(store, smtp) -> None:
    inbox, port = smtp
    schedule = await _daily(store)
    # the previous run wrote "sending" and died before the server's answer was recorded
    await store.report_schedule_sending(schedule.id, "2026-03-09..2026-03-09")
    await _scheduler(store, port).run_due(NOW)
    (mail,) = inbox.mails
    assert mail["Message-ID"] == f"<report-{schedule.id}-2026-03-09..2026-03-09@office.example>"
    assert (await store.get_report_schedule(schedule.id)).last_period == (
        "2026-03-09..2026-03-09")


async def test_the_loop_sends_when_due_and_wakes_on_a_change(store, smtp) -> None:
    inbox, port = smtp
    scheduler = _scheduler(store, port)
    async with scheduler.running():
        await _daily(store)
        scheduler.changed()  # an admin saved a schedule: the loop looks now, not in 5 min
        await asyncio.wait_for(scheduler.sent_event.wait(), 10)
    # stopped right after: the loop ended, the period was recorded
    assert len(inbox.mails) == 1
    (schedule,) = await store.list_report_schedules()
    assert schedule.last_period == "2026-03-09..2026-03-09"


class BrokenRowStore:
    """A stored weekly schedule without a weekday (a hand-edited row): no next firing."""

    def __init__(self) -> None:
        self.listed = 0
        self.second = asyncio.Event()
        self.third = asyncio.Event()

    async def list_report_schedules(self):
        self.listed += 1
        if self.listed >= 2:
            self.second.set()
        if self.listed >= 3:
            self.third.set()
        s = validate(name="w", reports=["missed_calls"], recipients=["a@b.cd"],
                     frequency="weekly", time_of_day="08:00", weekday=0, period="yesterday")
        return [Schedule(id=1, name=s.name, reports=s.reports, recipients=s.recipients,
                         frequency=s.frequency, time_of_day=s.time_of_day, weekday=None,
                         period=s.period, created_at=NOW)]


async def test_the_loop_survives_an_unexpected_error_in_its_own_bookkeeping() -> None:
    store = BrokenRowStore()
    scheduler = ReportScheduler(store, FakeReports(), smtp=lambda: None,
                                translate_for=lambda lang: lambda key: key,
                                timezone=lambda: "Europe/Moscow", clock=lambda: NOW)
    async with scheduler.running():
        await store.second.wait()  # the first pass: run_due, then the wake-up time
        scheduler.changed()
        # a dead loop never lists again: the wait ends in a TimeoutError
        await asyncio.wait_for(store.third.wait(), 10)


class TwoRowStore:
    """A corrupt row (an unreadable time of day) before a good, due schedule."""

    def __init__(self) -> None:
        s = validate(name="d", reports=["missed_calls"], recipients=["a@b.cd"],
                     frequency="daily", time_of_day="08:00", weekday=None, period="yesterday")
        fields = dict(name=s.name, reports=s.reports, recipients=s.recipients,
                      frequency=s.frequency, weekday=None, period=s.period,
                      created_at=NOW - timedelta(days=3))
        self.rows = [Schedule(id=1, time_of_day="8 o'clock", **fields),
                     Schedule(id=2, time_of_day="08:00", **fields)]
        self.sent: list[int] = []

    async def list_report_schedules(self):
        return self.rows

    async def report_schedule_sending(self, schedule_id, period):
        pass

    async def report_schedule_sent(self, schedule_id, period, at):
        self.sent.append(schedule_id)


async def test_one_unreadable_schedule_does_not_stop_the_others() -> None:
    store = TwoRowStore()
    mails = []

    async def sender(settings, message):
        mails.append(message)

    async def smtp():
        return SmtpSettings(host="x", from_address="r@x.example")

    scheduler = ReportScheduler(store, FakeReports(), smtp=smtp,
                                translate_for=lambda lang: lambda key: key,
                                timezone=lambda: "Europe/Moscow", clock=lambda: NOW,
                                sender=sender)
    outcomes = await scheduler.run_due()
    assert store.sent == [2] and len(mails) == 1
    assert [o.schedule_id for o in outcomes if o.sent] == [2]

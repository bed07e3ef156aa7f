"""Outbound SMS as durable jobs through the pool, with fake modems (no serial port)."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.config import SmsConfig
from callcenter.errors import LineUnavailable
from callcenter.sms.events import ReportStatus
from callcenter.sms.pool import ModemPool, SimLimits
from callcenter.sms.ports import SmsSendError, SmsSendUnknown
from callcenter.sms.service import OptedOut, SmsService
from tests.sms.harness import Clock, FakeModem, sms_core

TO = "+79161234567"
LONG = "x" * 400  # GSM 7-bit: 3 parts of 153


async def test_a_message_is_stored_queued_before_any_modem_is_asked(store):
    core = await sms_core(store)  # no modem at all
    message_id = await core.service.enqueue(TO, LONG)
    message = await core.message(message_id)
    assert message["state"] == "queued"
    assert [p["state"] for p in message["parts"]] == ["queued"] * 3
    assert [p["seq"] for p in message["parts"]] == [1, 2, 3]
    assert "".join(p["text"] for p in message["parts"]) == LONG
    assert await core.drain() == 0


async def test_all_parts_of_a_message_go_through_the_same_modem(store):
    a, b = FakeModem("a"), FakeModem("b")
    core = await sms_core(store, a, b)
    first = await core.service.enqueue(TO, LONG)
    second = await core.service.enqueue("+79162222222", LONG)
    await core.drain()
    for message_id in (first, second):
        message = await core.message(message_id)
        modems = {p["modem"] for p in message["parts"]}
        assert len(modems) == 1 and message["modem"] in modems
        assert message["state"] == "sent"
    # balanced: one message each
    assert len(a.sent) == 3 and len(b.sent) == 3
    assert {p.to.value for p in a.sent} != {p.to.value for p in b.sent}
    assert [p.seq for p in a.sent] == [1, 2, 3]
    assert len({p.concat_ref for p in a.sent}) == 1


async def test_singles_are_balanced_across_ready_modems(store):
    a, b, c = FakeModem("a"), FakeModem("b"), FakeModem("c", ready=False)
    core = await sms_core(store, a, b, c)
    for i in range(6):
        await core.service.enqueue(f"+7916000000{i}", "hello")
    await core.drain()
    assert (len(a.sent), len(b.sent), len(c.sent)) == (3, 3, 0)


async def test_messages_per_minute_limit(store):
    modem = FakeModem("a")
    core = await sms_core(store, (modem, SimLimits(per_minute=2, per_day=100)))
    for i in range(5):
        await core.service.enqueue(f"+7916000000{i}", "hi")
    await core.drain()
    assert len(modem.sent) == 2
    core.clock.advance(61)
    await core.drain()
    assert len(modem.sent) == 4


async def test_daily_limit_is_counted_from_the_store_after_a_restart(store):
    clock = Clock()
    modem = FakeModem("a")
    limits = SimLimits(per_minute=100, per_day=3)
    core = await sms_core(store, (modem, limits), clock=clock)
    for i in range(5):
        await core.service.enqueue(f"+7916000000{i}", "hi")
    await core.drain()
    assert len(modem.sent) == 3
    # a new process: the counter comes back from the part rows, not from zero
    again = await sms_core(store, (modem, limits), clock=clock)
    assert again.pool.slots["a"].sent_today == 3
    await again.drain()
    assert len(modem.sent) == 3
    clock.advance(86400)  # the next day
    await again.drain()
    assert len(modem.sent) == 5


async def test_send_window_in_the_office_time_zone(store):
    # 2026-05-28 20:30 UTC is 23:30 in Moscow: outside 08:00-21:00
    clock = Clock(1_780_000_000.0 - (1_780_000_000 % 86400) + 20.5 * 3600)
    modem = FakeModem("a")
    limits = SimLimits.parse(100, 100, "08:00", "21:00")
    core = await sms_core(store, (modem, limits), timezone="Europe/Moscow", clock=clock)
    await core.service.enqueue(TO, "good night")
    await core.drain()
    assert modem.sent == []
    clock.advance(8.6 * 3600)  # 08:06 Moscow
    await core.drain()
    assert len(modem.sent) == 1


async def test_a_part_being_sent_at_a_crash_becomes_unknown_and_is_never_resent(store):
    modem = FakeModem("a", hold=asyncio.Event())
    core = await sms_core(store, modem)
    caught = await core.service.enqueue(TO, "in flight when we die")
    waiting = await core.service.enqueue("+79162222222", "still queued")
    tasks = await core.pool.run_once()
    assert len(tasks) == 1
    await modem.entered.wait()  # marked "sending" before the modem is asked
    assert (await core.message(caught))["parts"][0]["state"] == "sending"
    tasks[0].cancel()  # the process is gone while +CMGS is unanswered
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (await core.message(caught))["parts"][0]["state"] == "sending"

    modem.hold = None
    restarted = await sms_core(store, modem)
    message = await restarted.message(caught)
    assert message["state"] == "unknown"
    assert message["parts"][0]["state"] == "unknown"
    await restarted.drain()
    assert [p.text for p in modem.sent] == ["still queued"]  # the queued one resumed
    assert (await restarted.message(waiting))["state"] == "sent"
    # a later report for that recipient from that modem resolves it
    assert await restarted.report("a", 42, TO) == caught
    resolved = await restarted.message(caught)
    assert resolved["state"] == "delivered" and resolved["parts"][0]["mr"] == 42


async def test_unknown_answer_is_never_retried(store):
    modem = FakeModem("a", fail=[SmsSendUnknown("timeout after the PDU")])
    core = await sms_core(store, modem)
    message_id = await core.service.enqueue(TO, "once")
    await core.drain()
    core.clock.advance(3600)
    await core.drain()
    assert modem.sent == []
    message = await core.message(message_id)
    assert message["state"] == "unknown" and "check delivery" in message["error"]


async def test_a_temporary_refusal_is_retried_after_a_backoff(store):
    modem = FakeModem("a", fail=[SmsSendError("congestion", code=42)])
    core = await sms_core(store, modem, sms=SmsConfig(retry_seconds=30))
    message_id = await core.service.enqueue(TO, "retry me")
    await core.drain()
    assert modem.sent == [] and (await core.message(message_id))["state"] == "queued"
    core.clock.advance(10)
    await core.drain()
    assert modem.sent == []
    core.clock.advance(25)
    await core.drain()
    assert len(modem.sent) == 1
    message = await core.message(message_id)
    assert message["state"] == "sent" and message["parts"][0]["attempts"] == 2


async def test_a_permanent_refusal_fails_the_message_naming_the_part(store):
    modem = FakeModem("b", fail=[SmsSendError("invalid destination", code=1, permanent=True)])
    core = await sms_core(store, modem)
    message_id = await core.service.enqueue("+79162222222", LONG)
    await core.drain()
    message = await core.message(message_id)
    assert modem.sent == []
    assert message["state"] == "failed"
    assert message["error"] == "part 1 of 3 failed: invalid destination"
    assert [p["state"] for p in message["parts"]] == ["failed"] * 3
    assert message["parts"][1]["error"] == "not sent: part 1 failed"


async def test_delivered_only_when_every_part_is_and_mr_wraps(store):
    modem = FakeModem("a", mr=254)
    core = await sms_core(store, modem)
    message_id = await core.service.enqueue(TO, LONG)
    await core.drain()
    mrs = [p["mr"] for p in (await core.message(message_id))["parts"]]
    assert mrs == [254, 255, 0]
    for i, mr in enumerate(mrs):
        assert (await core.message(message_id))["state"] == "sent"
        assert await core.report("a", mr, "89161234567") == message_id  # national form
        states = [p["state"] for p in (await core.message(message_id))["parts"]]
        assert states == ["delivered"] * (i + 1) + ["sent"] * (2 - i)
    message = await core.message(message_id)
    assert message["state"] == "delivered" and message["delivered_at"]
    statuses = [e for e in core.events if e.topic == "sms.status"]
    assert statuses[-1].data["sms"]["state"] == "delivered"


async def test_a_report_goes_to_the_most_recent_part_with_that_mr(store):
    modem = FakeModem("a", mr=7)
    core = await sms_core(store, modem)
    old = await core.service.enqueue(TO, "first")
    await core.drain()
    core.clock.advance(600)
    modem.mr = 7  # 256 messages later the reference comes round again
    new = await core.service.enqueue(TO, "second")
    await core.drain()
    assert await core.report("a", 7, TO) == new
    assert (await core.message(new))["state"] == "delivered"
    assert (await core.message(old))["state"] == "sent"
    # same MR, other modem or other recipient: not theirs
    assert await core.report("b", 7, TO) is None
    assert await core.report("a", 7, "+79990000000") is None


async def test_a_failed_report_names_the_part(store):
    core = await sms_core(store, FakeModem("a"))
    message_id = await core.service.enqueue(TO, LONG)
    await core.drain()
    parts = (await core.message(message_id))["parts"]
    await core.report("a", parts[0]["mr"], TO)
    await core.report("a", parts[1]["mr"], TO, ReportStatus.FAILED, 0x41)
    message = await core.message(message_id)
    assert message["state"] == "failed"
    assert message["error"].startswith("part 2 of 3 failed: not delivered")


async def test_a_report_that_beats_the_cmgs_commit_is_kept_and_applied(store):
    core = await sms_core(store, FakeModem("a", mr=9))
    await core.report("a", 9, TO)  # arrives first: nothing to match yet
    message_id = await core.service.enqueue(TO, "quick network")
    await core.drain()
    assert (await core.message(message_id))["state"] == "delivered"


async def test_expiry(store):
    core = await sms_core(store, FakeModem("a", ready=False))
    message_id = await core.service.enqueue(TO, "too late", valid_for=60)
    await core.drain()
    core.clock.advance(61)
    await core.drain()
    message = await core.message(message_id)
    assert message["state"] == "expired" and message["parts"][0]["state"] == "expired"


async def test_a_modem_going_down_leaves_unstarted_work_to_others_started_waits(store):
    a, b = FakeModem("a"), FakeModem("b")
    core = await sms_core(store, a, b)
    started = await core.service.enqueue(TO, LONG)
    tasks = await core.pool.run_once()  # part 1 of the long one goes out on one modem
    await asyncio.gather(*tasks)
    first = core.modems[(await core.message(started))["modem"]]
    other = b if first is a else a
    first.ready = False
    fresh = await core.service.enqueue("+79163333333", "new")
    await core.drain()
    assert [p.text for p in other.sent] == ["new"]
    assert (await core.message(started))["state"] == "sending"  # waits for its modem
    first.ready = True
    await core.drain()
    assert (await core.message(started))["state"] == "sent"
    assert {p["modem"] for p in (await core.message(started))["parts"]} == {first.name}
    assert (await core.message(fresh))["modem"] == other.name


async def test_a_modem_refusing_because_it_is_down_hands_the_message_on(store):
    a = FakeModem("a")
    core = await sms_core(store, a)
    message_id = await core.service.enqueue(TO, "hello")
    a.ready = True
    a.fail = [LineUnavailable("unplugged")]
    await core.drain()
    message = await core.message(message_id)
    assert message["state"] == "queued" and message["modem"] is None
    assert core.pool.slots["a"].last_error == "unplugged"
    row = next(r for r in await core.pool.status() if r["name"] == "a")
    assert row["last_error_at"] == "2026-05-28T20:26:40.000+00:00"  # the clock, in ISO


async def test_opted_out_numbers(store):
    core = await sms_core(store, FakeModem("a"))
    await core.service.opt_out("8 916 123-45-67", source="test")
    assert core.service.is_opted_out("+79161234567")
    with pytest.raises(OptedOut):
        await core.service.enqueue(TO, "promo", campaign_id=1)
    with pytest.raises(OptedOut):
        await core.service.enqueue(TO, "hello")
    assert await core.service.enqueue(TO, "hello", confirm_opted_out=True)
    # the list survives a restart
    again = SmsService(store, core.bus, core.service.matcher, SmsConfig())
    await again.start()
    assert again.is_opted_out(TO)


async def test_pool_status(store):
    core = await sms_core(store, (FakeModem("a"), SimLimits(5, 50)))
    await core.service.enqueue(TO, "x")
    status = await core.pool.status()
    assert status[0]["queue"] == 0 and status[0]["sent_today"] == 0
    await core.drain()
    assert await core.pool.check_balance("a") == "Balance: 100.00 RUB"
    (row,) = await core.pool.status()
    assert row["sent_today"] == 1 and row["per_day"] == 50 and row["operator"] == "TestNet"
    assert row["balance"] == "Balance: 100.00 RUB" and row["signal_dbm"] == -71
    assert isinstance(core.pool, ModemPool)


def test_send_windows_across_midnight():
    from datetime import datetime

    from callcenter.sms.pool import in_window

    night = SimLimits.parse(1, 1, "22:00", "06:00").window
    day = SimLimits.parse(1, 1, "08:00", "21:00").window
    at = lambda hh, mm: datetime(2026, 5, 28, hh, mm)  # noqa: E731
    assert in_window(night, at(23, 0)) and in_window(night, at(5, 59))
    assert not in_window(night, at(6, 0)) and not in_window(night, at(12, 0))
    assert in_window(day, at(8, 0)) and not in_window(day, at(21, 0))
    assert in_window(None, at(3, 0))


async def test_a_managers_message_does_not_wait_behind_a_campaign(store):
    modem = FakeModem("a")
    core = await sms_core(store, (modem, SimLimits(per_minute=1, per_day=100)))
    for i in range(5):
        await core.service.enqueue(f"+7916000000{i}", f"promo {i}", campaign_id=7)
    await core.service.enqueue(TO, "reply to the client")
    await core.drain()
    assert [p.text for p in modem.sent] == ["reply to the client"]
    core.clock.advance(61)
    await core.drain()
    assert [p.text for p in modem.sent] == ["reply to the client", "promo 0"]


async def test_a_report_racing_the_commit_of_its_mr_is_not_lost(store):
    core = await sms_core(store)
    message_id = await core.service.enqueue(TO, "race")
    (part,) = (await core.message(message_id))["parts"]
    await store.sms_mark_sending(part["id"], message_id, "a", core.clock())
    keeping, gate = asyncio.Event(), asyncio.Event()
    keep = store.sms_keep_report

    async def slow_keep(*args):
        keeping.set()  # the report found no part with that MR yet...
        await gate.wait()  # ...and the MR's commit would run now
        await keep(*args)

    store.sms_keep_report = slow_keep
    report = asyncio.create_task(core.report("a", 9, TO))
    await keeping.wait()
    # the MR's commit waits for the report to be kept (it then takes it), never runs between
    assert core.service._reports.locked()
    sent = asyncio.create_task(core.service.part_sent(
        dict(part, sending_at=core.clock()), "a", 9, TO))
    gate.set()
    await asyncio.gather(report, sent)
    assert (await core.message(message_id))["state"] == "delivered"


async def test_the_status_counts_each_modems_queue(store):
    a = FakeModem("a")
    core = await sms_core(store, a)
    started = await core.service.enqueue(TO, LONG)
    await core.service.enqueue("+79162222222", "later")
    await asyncio.gather(*await core.pool.run_once())  # part 1 of 3 out: bound to "a"
    (row,) = await core.pool.status()
    assert row["queue"] == 1 and await core.pool.waiting_unassigned() == 1
    assert (await core.message(started))["modem"] == "a"


async def test_a_campaign_part_to_a_number_that_opted_out_meanwhile_is_not_sent(store):
    modem = FakeModem("a")
    core = await sms_core(store, modem)
    campaign = await core.service.enqueue(TO, LONG, campaign_id=1)
    manual = await core.service.enqueue("+79162222222", "hi")
    # the STOP arrives after the job was queued, before the pool reaches it
    await core.service.opt_out(TO, source="sms:1", keyword="STOP")
    await core.drain()
    assert [p.to.value for p in modem.sent] == ["+79162222222"]
    message = await core.message(campaign)
    assert message["state"] == "failed" and "opted out" in message["error"]
    assert [p["state"] for p in message["parts"]] == ["failed"] * 3
    assert all(p["error"] == "opted out" for p in message["parts"])
    assert (await core.message(manual))["state"] == "sent"


async def test_a_part_is_not_started_on_another_modem_than_its_message(store):
    core = await sms_core(store)
    message_id = await core.service.enqueue(TO, LONG)
    first, second, _ = (await core.message(message_id))["parts"]
    now = core.clock()
    assert await store.sms_mark_sending(first["id"], message_id, "a", now)
    assert not await store.sms_mark_sending(second["id"], message_id, "b", now)
    message = await core.message(message_id)
    assert message["modem"] == "a"
    assert message["parts"][1]["state"] == "queued" and message["parts"][1]["modem"] is None
    assert message["parts"][1]["attempts"] == 0
    assert await store.sms_mark_sending(second["id"], message_id, "a", now)


async def test_expiry_does_not_wait_for_the_backoff(store):
    modem = FakeModem("a", fail=[SmsSendError("congestion", code=42)])
    core = await sms_core(store, modem, sms=SmsConfig(retry_seconds=3600))
    message_id = await core.service.enqueue(TO, "soon stale", valid_for=60)
    await core.drain()
    assert (await core.message(message_id))["state"] == "queued"  # backing off for an hour
    core.clock.advance(61)
    await core.drain()
    message = await core.message(message_id)
    assert message["state"] == "expired" and modem.sent == []


async def test_a_failed_commit_of_the_mr_is_retried(store, monkeypatch):
    import sqlite3

    from callcenter.sms import pool as pool_module

    monkeypatch.setattr(pool_module, "COMMIT_RETRY", 0.0)
    core = await sms_core(store, FakeModem("a", mr=17))
    message_id = await core.service.enqueue(TO, "went out")
    real = store.sms_update_part
    busy = [sqlite3.OperationalError("database is locked")]

    async def flaky(part_id, **changes):
        if changes.get("state") == "sent" and busy:
            raise busy.pop()
        return await real(part_id, **changes)

    monkeypatch.setattr(store, "sms_update_part", flaky)
    await core.drain()
    message = await core.message(message_id)
    assert message["state"] == "sent" and message["parts"][0]["mr"] == 17 and not busy


async def test_a_late_answer_to_a_cancelled_send_stores_its_mr(store):
    modem = FakeModem("a", hold=asyncio.Event())
    core = await sms_core(store, modem)
    message_id = await core.service.enqueue(TO, "answered late")
    (task,) = await core.pool.run_once()
    await modem.entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # the modem's on_late_result: the PDU had gone out, the MR came after the cancel
    core.pool.late_result("a", modem.offered[0], 42)
    await asyncio.gather(*core.pool._late_tasks)
    part = (await core.message(message_id))["parts"][0]
    assert part["state"] == "sent" and part["mr"] == 42
    assert await core.report("a", 42, TO) == message_id


async def test_a_part_that_did_not_go_out_is_not_counted_against_the_sim(store):
    modem = FakeModem("a", fail=[LineUnavailable("port closed"),
                                 SmsSendError("congestion", code=42)])
    limits = SimLimits(per_minute=1, per_day=1)
    core = await sms_core(store, (modem, limits), sms=SmsConfig(retry_seconds=5))
    message_id = await core.service.enqueue(TO, "once")
    for _ in range(3):  # down, then refused, then sent: the one send the SIM allows
        await core.drain()
        core.clock.advance(30)
    assert len(modem.sent) == 1 and (await core.message(message_id))["state"] == "sent"
    slot = core.pool.slots["a"]
    assert slot.sent_today == 1 and len(slot.recent) == 1
    # and the store agrees after a restart
    again = await sms_core(store, (modem, limits), clock=core.clock)
    assert again.pool.slots["a"].sent_today == 1


async def test_day_rollover_and_window_across_the_berlin_dst_change(store):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-28 23:30 CET; at 02:00 on the 29th the clocks go to 03:00 CEST
    clock = Clock(datetime(2026, 3, 28, 23, 30, tzinfo=berlin).timestamp())
    modem = FakeModem("a")
    limits = SimLimits.parse(100, 2, "08:00", "21:00")
    core = await sms_core(store, (modem, limits), timezone="Europe/Berlin", clock=clock)
    core.pool.slots["a"].limits = SimLimits.parse(100, 2, "", "")
    for i in range(3):
        await core.service.enqueue(f"+7916000000{i}", "late")
    await core.drain()
    assert len(modem.sent) == 2  # the day's limit
    clock.now = datetime(2026, 3, 29, 0, 30, tzinfo=berlin).timestamp()  # a new day
    await core.drain()
    assert len(modem.sent) == 3
    # the window in local time: 07:30 CEST (05:30 UTC) is outside 08:00-21:00, 08:30 inside
    core.pool.slots["a"].limits = limits
    await core.service.enqueue("+79169999999", "morning")
    clock.now = datetime(2026, 3, 29, 7, 30, tzinfo=berlin).timestamp()
    await core.drain()
    assert len(modem.sent) == 3
    clock.now = datetime(2026, 3, 29, 8, 30, tzinfo=berlin).timestamp()
    await core.drain()
    assert len(modem.sent) == 4
    # a restart on the short day counts that day's sends from its local midnight
    again = await sms_core(store, (modem, limits), timezone="Europe/Berlin", clock=clock)
    assert again.pool.slots["a"].sent_today == 2

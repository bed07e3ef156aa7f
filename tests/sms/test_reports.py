"""Matching status reports to parts: repeated reports, the time window, unknown parts."""

from __future__ import annotations

from callcenter.sms.ports import SmsSendUnknown
from tests.sms.harness import FakeModem, sms_core

TO = "+79161234567"


async def test_a_repeated_report_does_not_resolve_the_next_unknown_part(store):
    modem = FakeModem("a", mr=5)
    core = await sms_core(store, modem)
    first = await core.service.enqueue(TO, "first")
    await core.drain()
    assert await core.report("a", 5, TO) == first
    modem.fail = [SmsSendUnknown("no answer after the PDU")]
    second = await core.service.enqueue(TO, "second")
    await core.drain()
    assert (await core.message(second))["state"] == "unknown"
    # the SMSC repeats the report for MR 5: it is about the first message, not the second
    assert await core.report("a", 5, TO) is None
    assert (await core.message(second))["parts"][0]["state"] == "unknown"
    assert (await core.message(first))["state"] == "delivered"


async def test_an_unknown_part_is_resolved_by_the_mr_its_modem_would_have_given(store):
    modem = FakeModem("a", mr=9)
    core = await sms_core(store, modem)
    await core.service.enqueue(TO, "gets 9")
    await core.drain()
    modem.fail = [SmsSendUnknown("lost")]
    lost_10 = await core.service.enqueue(TO, "was 10")
    core.clock.advance(1)
    await core.drain()
    modem.mr = 11  # the modem did use 10
    await core.service.enqueue("+79162222222", "gets 11")
    core.clock.advance(1)
    await core.drain()
    modem.fail = [SmsSendUnknown("lost")]
    newest = await core.service.enqueue(TO, "newest unknown")
    core.clock.advance(1)
    await core.drain()
    assert (await core.message(newest))["state"] == "unknown"
    # MR 10 follows the stored 9: it is the first lost part's, not the newest unknown one's
    assert await core.report("a", 10, TO) == lost_10
    assert (await core.message(newest))["state"] == "unknown"


async def test_a_report_matches_only_a_part_sent_shortly_before_its_smsc_time(store):
    modem = FakeModem("a", mr=3)
    core = await sms_core(store, modem)
    sent_at = core.clock()
    message_id = await core.service.enqueue(TO, "hello")
    await core.drain()
    # an SMSC time stamp two hours later: a report about another, older-wrapped MR 3
    assert await core.report("a", 3, TO, submitted=sent_at + 7200) is None
    # and one from before the part was handed to the modem (beyond the clock skew)
    assert await core.report("a", 3, TO, submitted=sent_at - 900) is None
    assert (await core.message(message_id))["state"] == "sent"
    assert await core.report("a", 3, TO, submitted=sent_at + 20) == message_id


async def test_without_an_smsc_time_a_report_older_than_the_validity_matches_nothing(store):
    modem = FakeModem("a", mr=3)
    core = await sms_core(store, modem)
    message_id = await core.service.enqueue(TO, "hello")
    await core.drain()
    core.clock.advance(core.service.config.validity_hours * 3600 + 3600)
    assert await core.report("a", 3, TO) is None
    assert (await core.message(message_id))["state"] == "sent"


async def test_an_empty_recipient_matches_no_part(store):
    modem = FakeModem("a", mr=3)
    core = await sms_core(store, modem)
    message_id = await core.service.enqueue(TO, "hello")
    await core.drain()
    assert await core.report("a", 3, "") is None
    assert (await core.message(message_id))["state"] == "sent"


async def test_unmatched_reports_are_dropped_after_the_validity_period(store):
    core = await sms_core(store, FakeModem("a"))
    assert await core.report("a", 77, TO) is None
    await core.pool.housekeeping()
    assert len(await store._db.rows("SELECT id FROM sms_reports_unmatched")) == 1
    core.clock.advance(core.service.config.validity_hours * 3600 + 1)
    await core.pool.housekeeping()
    assert await store._db.rows("SELECT id FROM sms_reports_unmatched") == []

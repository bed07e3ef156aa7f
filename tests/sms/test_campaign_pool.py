"""Campaigns over the real SMS core: jobs in the SMS tables, the pool scheduler, fake modems,
inbound STOP through the inbox, and jobs taken back from the queue never sent."""

from __future__ import annotations

import asyncio
import time

import pytest

from callcenter.config import CampaignsConfig
from callcenter.errors import ValidationError
from callcenter.sms.campaign_sms import CoreCampaignSms
from callcenter.sms.campaigns import CampaignService
from callcenter.sms.events import Address, AddressKind, SmsEncoding, SmsPartReceived
from callcenter.store.sqlite import SqliteStore
from tests.sms.campaign_fakes import NOON_MSK, Base, seed
from tests.sms.harness import Clock, Core, FakeModem, sms_core

ALL_DAY = {"window_start": "00:00", "window_end": "23:59", "per_minute": 0}


@pytest.fixture
async def base(store: SqliteStore) -> Base:
    return await seed(store)


@pytest.fixture
async def core(store: SqliteStore, base: Base) -> Core:
    # the SMS clock is the real one: the campaign's start time is stamped by the store
    return await sms_core(store, FakeModem("gsm1"), FakeModem("gsm2"), clock=Clock(time.time()))


def campaigns(store: SqliteStore, core: Core, max_queued: int = 100) -> CampaignService:
    svc = CampaignService(store, CoreCampaignSms(core.service, store, clock=core.clock),
                          CampaignsConfig(max_queued=max_queued), time_zone="UTC",
                          bus=core.bus, now=lambda: NOON_MSK,
                          monotonic=core.clock)
    svc._unsubscribe = core.bus.subscribe(svc._on_event)  # what start_runner does
    return svc


def sent_to(core: Core) -> list[str]:
    return sorted(p.to.value for m in core.modems.values() for p in m.sent)


async def run(svc: CampaignService, core: Core, rounds: int = 20) -> None:
    for _ in range(rounds):
        await svc.step()
        if not await core.drain() and not await svc.store.list_campaigns(states=["running"]):
            return


async def test_every_recipient_once_then_delivered(store, core, base) -> None:
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi {contact.first_name}",
                                      **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await run(svc, core)
    assert sent_to(core) == ["+79161111111", "+79161234567", "+79165554433", "+79167778899"]
    for modem in core.modems.values():
        for mr, part in enumerate(modem.sent):
            await core.report(modem.name, mr, part.to.value)
    report = await svc.report(base.admin, c["id"])
    assert (report.sent, report.delivered, report.failed) == (4, 4, 0)
    progress = await svc.progress(base.admin, c["id"])
    assert all(r.parts and r.parts[0].state == "delivered" for r in progress["recipients"])
    assert (await store.get_campaign(c["id"]))["state"] == "finished"


async def test_a_stop_received_mid_campaign_takes_back_its_queued_job(store, core, base
                                                                      ) -> None:
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await svc.step()  # all four jobs are in the SMS queue, no modem has any yet
    core.clock.now = time.time() + 1
    await core.service.handle(SmsPartReceived(
        "gsm1", Address(AddressKind.INTERNATIONAL, "+79167778899"), " СТОП! ",
        SmsEncoding.UCS2, core.clock(), None, "00"))
    await run(svc, core)
    assert "+79167778899" not in sent_to(core)
    assert len(sent_to(core)) == 3
    report = await svc.report(base.admin, c["id"])
    assert (report.opted_out, report.sent, report.replies) == (1, 3, 0)  # STOP: no reply


async def test_a_campaign_started_after_the_stop_skips_the_number(store, core, base) -> None:
    await core.service.opt_out("+79161234567", source="test")
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await run(svc, core)
    assert "+79161234567" not in sent_to(core)
    assert (await svc.report(base.admin, c["id"])).opted_out == 1


async def test_a_job_taken_back_while_the_pool_picks_it_is_never_sent(store, core, base
                                                                      ) -> None:
    svc = campaigns(store, core, max_queued=1)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await svc.step()
    # The pool has read the job and started its send task; the pause lands before the
    # task claims the part.
    paused = asyncio.Event()
    claim = store.sms_mark_sending

    async def late_claim(*args, **kw):
        await paused.wait()
        return await claim(*args, **kw)

    store.sms_mark_sending = late_claim  # type: ignore[method-assign]
    tasks = await core.pool.run_once()
    assert len(tasks) == 1
    await svc.pause(base.admin, c["id"])
    paused.set()
    await asyncio.gather(*tasks)
    store.sms_mark_sending = claim  # type: ignore[method-assign]
    assert sent_to(core) == []
    assert (await store.recipient_counts(c["id"])) == {"pending": 4}
    await svc.resume(base.admin, c["id"])
    await run(svc, core)
    assert len(sent_to(core)) == 4 and len(set(sent_to(core))) == 4


async def test_cancel_leaves_what_a_modem_has_to_finish(store, core, base) -> None:
    svc = campaigns(store, core, max_queued=100)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await svc.step()
    hold = asyncio.Event()
    for modem in core.modems.values():
        modem.hold = hold
    tasks = await core.pool.run_once()  # two sends in flight, two jobs still queued
    await asyncio.gather(*(m.entered.wait() for m in core.modems.values()))
    await svc.cancel(base.admin, c["id"])
    hold.set()
    await asyncio.gather(*tasks)
    await core.drain()
    assert len(sent_to(core)) == 2
    report = await svc.report(base.admin, c["id"])
    assert (report.sent, report.cancelled, report.waiting) == (2, 2, 0)


async def test_a_crash_mid_hand_over_leaves_no_job_cancel_cannot_see(store, core, base
                                                                     ) -> None:
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    real_mark = store.mark_recipient

    async def killed(recipient_id, state, **kw):
        if state == "queued":  # the job is written; the process dies before the mark
            raise RuntimeError("killed")
        return await real_mark(recipient_id, state, **kw)

    store.mark_recipient = killed  # type: ignore[method-assign]
    await svc.step()
    store.mark_recipient = real_mark  # type: ignore[method-assign]
    # the job and the mark are one transaction: no job was left behind
    assert await store.campaign_live_job(c["id"], "+79161234567", "-") is None
    await svc.cancel(base.admin, c["id"])
    await core.drain()
    assert sent_to(core) == []
    assert (await svc.report(base.admin, c["id"])).cancelled == 4


async def test_a_message_too_long_for_a_recipient_refuses_the_start(store, core, base
                                                                    ) -> None:
    svc = campaigns(store, core)
    # 60 names: Latin ones fit 6 GSM parts, the Cyrillic one would need 15 UCS2 parts
    c = await svc.create(base.admin, {"name": "x", "template": "{contact.name} " * 60,
                                      **ALL_DAY})
    with pytest.raises(ValidationError, match=r"\+79167778899.*parts"):
        await svc.start(base.admin, c["id"])
    assert (await store.get_campaign(c["id"]))["state"] == "draft"


async def test_a_recipient_the_sms_side_refuses_fails_alone(store, core, base) -> None:
    svc = campaigns(store, core)
    bad = await svc.create(base.admin, {"name": "bad", "template": "Hi", **ALL_DAY})
    # written past start()'s checks: a number no SMS can go to (an extension)
    assert await store.start_campaign(bad["id"], [(None, None, "101", "Hi"),
                                                  (None, None, "+79161234567", "Hi")])
    good = await svc.create(base.admin, {"name": "good", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, good["id"])
    await run(svc, core)
    rows = (await svc.progress(base.admin, bad["id"]))["recipients"]
    assert [(r.number, r.status) for r in rows] == [("101", "failed"),
                                                    ("+79161234567", "sent")]
    assert "not a phone number" in rows[0].error
    assert (await svc.report(base.admin, good["id"])).sent == 4
    assert (await store.get_campaign(bad["id"]))["state"] == "finished"


async def test_an_admins_opt_out_takes_back_the_queued_job(store, core, base) -> None:
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await svc.step()  # four jobs in the SMS queue
    await core.service.opt_out("+79167778899", source="admin:test")
    await run(svc, core)
    assert "+79167778899" not in sent_to(core)
    report = await svc.report(base.admin, c["id"])
    assert (report.opted_out, report.failed, report.sent) == (1, 0, 3)


async def test_a_stop_committed_before_the_list_in_memory_knows_is_honoured(
        store, core, base) -> None:
    # the inbox commits the opt-out with the message, then announces it, then tells the list
    await store.sms_optout_add("+79161234567", "+79161234567", time.time(), "sms:1", "STOP")
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await run(svc, core)
    assert "+79161234567" not in sent_to(core)
    report = await svc.report(base.admin, c["id"])
    assert (report.opted_out, report.failed, report.sent) == (1, 0, 3)


async def test_a_pause_that_fails_half_way_leaves_the_campaign_running(store, core, base
                                                                       ) -> None:
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await svc.step()  # four jobs in the SMS queue
    real = store.recall_recipient

    async def killed(*args, **kw):
        raise RuntimeError("killed")  # the first job is taken back, its recipient not told

    store.recall_recipient = killed  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await svc.pause(base.admin, c["id"])
    store.recall_recipient = real  # type: ignore[method-assign]
    assert (await store.get_campaign(c["id"]))["state"] == "running"
    jobs = await svc.sms.jobs([r["job_id"] for r in await store.queued_recipients()])
    assert sorted(j.state for j in jobs.values()) == ["queued"] * 4  # none taken back


async def test_a_pause_the_last_run_did_not_finish_is_tidied_at_start_up(store, core, base
                                                                         ) -> None:
    first = campaigns(store, core)
    c = await first.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await first.start(base.admin, c["id"])
    await first.step()  # four jobs in the SMS queue
    # the state changed, the process died before the take-back
    assert await store.set_campaign_state(c["id"], ["running"], "paused")
    first._unsubscribe()
    second = campaigns(store, core)
    await run(second, core)
    assert sent_to(core) == []
    assert await store.recipient_counts(c["id"]) == {"pending": 4}


async def test_replies_are_counted_after_each_send_and_for_their_own_campaign(store, core, base
                                                                            ) -> None:
    svc = campaigns(store, core)
    t0 = core.clock.now

    async def inbound(number: str, text: str, at: float) -> None:
        core.clock.now = at
        await core.service.handle(SmsPartReceived(
            "gsm1", Address(AddressKind.INTERNATIONAL, number), text, SmsEncoding.GSM7, at,
            None, "00"))

    await inbound("+79161234567", "an old message", t0 + 1)  # before any send: not a reply
    core.clock.now = t0 + 10
    a = await svc.create(base.admin, {"name": "a", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, a["id"])
    await run(svc, core)
    await inbound("+79161234567", "Thanks!", t0 + 20)
    await inbound("+79167778899", "STOP", t0 + 30)  # no reply, but it unsubscribed
    core.clock.now = t0 + 40
    b = await svc.create(base.admin, {"name": "b", "template": "Again",
                                      "audience": {"client_ids": [base.clients["Alfa"]]},
                                      **ALL_DAY})
    await svc.start(base.admin, b["id"])
    await run(svc, core)
    await inbound("+79161234567", "Yes to the second", t0 + 50)  # campaign b's, not a's
    ra, rb = await svc.report(base.admin, a["id"]), await svc.report(base.admin, b["id"])
    assert (ra.replies, ra.repliers, ra.unsubscribed) == (1, 1, 1)
    assert (rb.recipients, rb.replies, rb.unsubscribed) == (1, 1, 0)
    rows = {r.number: r for r in (await svc.progress(base.admin, a["id"]))["recipients"]}
    assert rows["+79167778899"].unsubscribed and not rows["+79161234567"].unsubscribed


async def test_progress_reads_one_page_and_counts_the_rest_in_sql(store, core, base) -> None:
    svc = campaigns(store, core)
    c = await svc.create(base.admin, {"name": "x", "template": "Hi", **ALL_DAY})
    await svc.start(base.admin, c["id"])
    await run(svc, core)
    asked: list[int] = []
    real = store.list_recipients

    async def spy(campaign_id, **kw):
        asked.append(kw.get("limit", 100_000))
        return await real(campaign_id, **kw)

    store.list_recipients = spy  # type: ignore[method-assign]
    progress = await svc.progress(base.admin, c["id"], limit=2, offset=1)
    assert asked == [2]
    assert len(progress["recipients"]) == 2
    report = progress["report"]
    assert (report.recipients, report.sent, report.waiting) == (4, 4, 0)
    assert report == await svc.report(base.admin, c["id"])

"""Campaigns over a real SQLite store and a fake SMS queue: audience, preview, start, the
runner's window and throttle, opt-out, pause/resume/cancel, crash safety, report and CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.bus import EventBus
from callcenter.calls.visibility import can_see_event
from callcenter.errors import PermissionDenied, ValidationError
from callcenter.sms.campaigns import CampaignService
from callcenter.store.sqlite import SqliteStore
from tests.sms.campaign_fakes import NOON_MSK, Base, Clock, FakeSms, seed, service

TEMPLATE = "Hello {contact.first_name|friend}, news from {client.name} ({custom.segment})"


@pytest.fixture
async def base(store: SqliteStore) -> Base:
    return await seed(store)


@pytest.fixture
def sms() -> FakeSms:
    return FakeSms()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON_MSK)


@pytest.fixture
def svc(store: SqliteStore, sms: FakeSms, clock: Clock) -> CampaignService:
    return service(store, sms, clock, per_minute=0, max_queued=100)


async def draft(svc: CampaignService, user, **data) -> dict:
    return await svc.create(user, {"name": "Autumn", "template": TEMPLATE, **data})


async def run_until_idle(svc: CampaignService, sms: FakeSms, state: str = "delivered") -> None:
    for _ in range(50):
        await svc.step()
        if not sms.queued():
            campaigns = await svc.store.list_campaigns(states=["running"])
            if not campaigns:
                return
        sms.finish(state)
    raise AssertionError("the campaign did not finish")


async def test_audience_one_mobile_per_contact_each_number_once(svc, base) -> None:
    c = await draft(svc, base.admin)
    preview = await svc.preview(base.admin, c["id"])
    numbers = sorted(s["number"] for s in (await svc.preview(base.admin, c["id"],
                                                             samples=100))["samples"])
    # Alfa's Ivan; Gamma's Anna (her first mobile, not the landline or the second mobile);
    # Epsilon's two contacts. Beta has only a landline, Delta shares Ivan's number.
    assert numbers == ["+79161111111", "+79161234567", "+79165554433", "+79167778899"]
    assert preview["count"] == 4
    assert preview["skipped"] == {"contacts": 6, "without_mobile": 1, "duplicates": 1,
                                  "empty_text": 0}


async def test_preview_renders_and_counts_parts(svc, base) -> None:
    c = await draft(svc, base.admin, audience={"custom": {"segment": "basic"}})
    preview = await svc.preview(base.admin, c["id"])
    by_number = {s["number"]: s for s in preview["samples"]}
    assert preview["count"] == 3  # Delta's Boris and Epsilon's two contacts
    cyr = by_number["+79167778899"]
    assert cyr["text"] == "Hello Сергей, news from Epsilon (basic)"
    assert (cyr["encoding"], cyr["parts"]) == ("ucs2", 1)
    latin = by_number["+79165554433"]
    # the control characters in the contact's name never reach the message
    assert latin["text"] == "Hello Pavel, news from Epsilon (basic)"
    assert (latin["encoding"], latin["parts"]) == ("gsm7", 1)


async def test_audience_filters(svc, base) -> None:
    async def numbers(**audience) -> list[str]:
        p = await svc.preview(base.admin, data={"name": "x", "template": "hi",
                                                "audience": audience}, samples=100)
        return sorted(s["number"] for s in p["samples"])

    assert await numbers(manager_id=base.dmitry.id) == ["+79161111111", "+79161234567"]
    assert await numbers(custom={"segment": "VIP"}) == ["+79161111111", "+79161234567"]
    assert await numbers(search="anna") == ["+79161111111"]
    assert await numbers(search="кузн") == ["+79167778899"]
    assert await numbers(client_ids=[base.clients["Beta"]]) == []


async def test_unknown_template_field_is_refused_when_saved(svc, base) -> None:
    with pytest.raises(ValidationError) as err:
        await draft(svc, base.admin, template="Hi {contact.password}")
    assert "unknown field {contact.password}" in err.value.message


async def test_start_materialises_each_recipient_once(svc, store, base) -> None:
    c = await draft(svc, base.admin)
    started = await svc.start(base.admin, c["id"])
    assert started["state"] == "running"
    assert started["counts"] == {"pending": 4}
    rows = await store.list_recipients(c["id"])
    assert {r["text"] for r in rows} >= {"Hello Ivan, news from Alfa (vip)"}
    with pytest.raises(ValidationError):
        await svc.start(base.admin, c["id"])  # twice: refused, nothing added
    assert len(await store.list_recipients(c["id"])) == 4
    # the texts are frozen at start: a later change to the client base changes nothing
    await store.update_client(base.clients["Alfa"], name="Renamed")
    assert {r["text"] for r in await store.list_recipients(c["id"])} == {r["text"] for r in rows}


async def test_runner_sends_everyone_once_and_finishes(svc, sms, store, base) -> None:
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await run_until_idle(svc, sms)
    assert sorted(sms.sent_numbers()) == ["+79161111111", "+79161234567", "+79165554433",
                                          "+79167778899"]
    assert (await store.get_campaign(c["id"]))["state"] == "finished"
    report = await svc.report(base.admin, c["id"])
    assert (report.recipients, report.sent, report.delivered, report.waiting) == (4, 4, 4, 0)


async def test_handover_repeated_after_a_crash_finds_its_job(store, sms, clock, base) -> None:
    first = service(store, sms, clock, per_minute=0, max_queued=100)
    c = await draft(first, base.admin)
    await first.start(base.admin, c["id"])
    # The crash: jobs were written, but the recipients were never marked queued.
    real_mark = store.mark_recipient
    calls = 0

    async def crash_after_enqueue(*args, **kw):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("killed")
        return await real_mark(*args, **kw)

    store.mark_recipient = crash_after_enqueue  # type: ignore[method-assign]
    await first.step()  # the campaign's step fails (logged); the runner would try again
    store.mark_recipient = real_mark  # type: ignore[method-assign]
    assert len(sms.jobs_) == 3
    # A new process (a new service, nothing in memory) carries on.
    second = service(store, sms, clock, per_minute=0, max_queued=100)
    await run_until_idle(second, sms)
    assert len(sms.jobs_) == 4  # the third recipient's job was found again, not made twice
    assert sorted(sms.sent_numbers()) == sorted(set(sms.sent_numbers()))


async def test_window_closed_holds_messages_until_morning(store, sms, base) -> None:
    clock = Clock(datetime(2026, 11, 24, 19, 30, tzinfo=UTC))  # 22:30 in Moscow
    svc = service(store, sms, clock, per_minute=0, max_queued=100)
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    assert await svc.step() > 0
    assert sms.jobs_ == {}
    clock.advance(timedelta(hours=10, minutes=29, seconds=59).total_seconds())  # 08:59:59
    await svc.step()
    assert sms.jobs_ == {}
    clock.advance(1)
    await svc.step()
    assert len(sms.queued()) == 4


async def test_window_closing_takes_back_what_waits_in_the_queue(store, sms, base) -> None:
    clock = Clock(datetime(2026, 11, 24, 17, 59, 50, tzinfo=UTC))  # 20:59:50 Moscow
    svc = service(store, sms, clock, per_minute=0, max_queued=100)
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await svc.step()
    sms.finish("sending", sms.queued()[:1])  # a modem has this one: it finishes
    clock.advance(15)  # 21:00:05
    await svc.step()
    assert [j.state for j in sms.jobs_.values()] == ["sending", "cancelled", "cancelled",
                                                     "cancelled"]
    counts = await store.recipient_counts(c["id"])
    assert counts == {"pending": 3, "queued": 1}
    clock.advance(12 * 3600)  # the next morning the three get new jobs
    await svc.step()
    assert len(sms.queued()) == 3


async def test_throttle_limits_messages_per_minute(store, sms, clock, base) -> None:
    svc = service(store, sms, clock, per_minute=2, max_queued=100)
    c = await draft(svc, base.admin, per_minute=2)
    await svc.start(base.admin, c["id"])
    assert await svc.step() == pytest.approx(30.0)
    assert len(sms.jobs_) == 1
    clock.advance(10)
    await svc.step()
    assert len(sms.jobs_) == 1
    clock.advance(20)
    await svc.step()
    assert len(sms.jobs_) == 2


async def test_at_most_max_queued_wait_in_the_sms_queue(store, sms, clock, base) -> None:
    svc = service(store, sms, clock, per_minute=0, max_queued=2)
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await svc.step()
    assert len(sms.queued()) == 2
    await svc.step()
    assert len(sms.queued()) == 2
    sms.finish("sent")
    await svc.step()
    assert len(sms.queued()) == 2 and len(sms.jobs_) == 4


async def test_opt_out_before_start_is_honoured(svc, sms, store, base) -> None:
    sms.opted.add("+79161234567")
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await run_until_idle(svc, sms)
    assert "+79161234567" not in sms.sent_numbers()
    report = await svc.report(base.admin, c["id"])
    assert (report.opted_out, report.sent) == (1, 3)


async def test_opt_out_during_a_running_campaign_is_honoured(store, sms, clock, base) -> None:
    svc = service(store, sms, clock, per_minute=0, max_queued=1)
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await svc.step()  # one handed over, three still pending
    queued = sms.queued()[0]
    # a STOP arrives from the one waiting in the queue and from one still pending
    later = (await store.list_recipients(c["id"], state="pending"))[0]["number"]
    sms.opted.update({queued.number, later})
    assert await svc.opted_out(queued.number) == 1
    assert await svc.opted_out(later) == 0  # not handed over: checked at its send time
    await run_until_idle(svc, sms)
    assert queued.number not in sms.sent_numbers() and later not in sms.sent_numbers()
    report = await svc.report(base.admin, c["id"])
    assert (report.opted_out, report.sent, report.recipients) == (2, 2, 4)


async def test_pause_resume_cancel(store, sms, clock, base) -> None:
    svc = service(store, sms, clock, per_minute=0, max_queued=2)
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await svc.step()
    first, second = sms.queued()
    sms.finish("sending", [first])  # a modem has it
    paused = await svc.pause(base.admin, c["id"])
    assert paused["state"] == "paused"
    assert second.state == "cancelled"  # taken back from the queue
    assert first.state == "sending"  # in flight: left to finish
    await svc.step()
    assert len(sms.queued()) == 0  # paused: nothing handed over
    with pytest.raises(ValidationError):
        await svc.pause(base.admin, c["id"])
    await svc.resume(base.admin, c["id"])
    await svc.step()
    assert len(sms.queued()) == 1  # room for one more beside the one sending
    cancelled = await svc.cancel(base.admin, c["id"])
    assert cancelled["state"] == "cancelled"
    sms.finish("delivered", [first])
    await svc.step()
    report = await svc.report(base.admin, c["id"])
    assert (report.delivered, report.cancelled, report.waiting) == (1, 3, 0)
    with pytest.raises(ValidationError):
        await svc.resume(base.admin, c["id"])


async def test_report_numbers_and_replies(store, sms, clock, base) -> None:
    svc = service(store, sms, clock, per_minute=0, max_queued=100)
    sms.opted.add("+79165554433")
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await svc.step()
    jobs = {j.number: j for j in sms.queued()}
    sms.finish("delivered", [jobs["+79161234567"]])
    sms.finish("failed", [jobs["+79161111111"]])
    sms.finish("unknown", [jobs["+79167778899"]])
    started = (await store.get_campaign(c["id"]))["started_at"]
    before = (datetime.fromisoformat(started) - timedelta(minutes=1)).isoformat()
    after = (datetime.fromisoformat(started) + timedelta(minutes=1)).isoformat()
    sms.inbound += [("+79161234567", after), ("+79161234567", after),
                    ("+79161111111", before)]  # before the start: not a reply
    r = await svc.report(base.admin, c["id"])
    assert (r.recipients, r.sent, r.delivered, r.failed, r.unknown, r.opted_out, r.replies,
            r.repliers) == (4, 1, 1, 1, 1, 1, 2, 1)
    progress = await svc.progress(base.admin, c["id"])
    status = {p.number: p.status for p in progress["recipients"]}
    assert status["+79167778899"] == "unknown"
    assert status["+79165554433"] == "opted_out"


async def test_csv_export_is_formula_safe(store, sms, clock, base) -> None:
    svc = service(store, sms, clock, per_minute=0, max_queued=100)
    await store.update_client(base.clients["Alfa"], name="=HYPERLINK(\"http://x\")")
    c = await draft(svc, base.admin, name="+cmd|' /C calc'!A0",
                    audience={"client_ids": [base.clients["Alfa"]]})
    await svc.start(base.admin, c["id"])
    await run_until_idle(svc, sms)
    name, text = await svc.export_csv(base.admin, c["id"])
    assert name == f"campaign-{c['id']}.csv"
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["campaign", "'+cmd|' /C calc'!A0"]
    assert ["delivered", "1"] in rows and ["sent", "1"] in rows
    header = rows.index(["number", "client", "contact", "status", "parts", "parts_delivered",
                         "error", "sent_at", "replies", "text"])
    line = rows[header + 1]
    assert line[0] == "'+79161234567"  # a number starting with + would be a formula too
    assert line[1] == "'=HYPERLINK(\"http://x\")"
    assert line[3] == "delivered"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


async def test_roles(store, sms, clock, base) -> None:
    svc = service(store, sms, clock)
    with pytest.raises(PermissionDenied):
        await draft(svc, base.secretary)
    # a manager's campaign goes to their own clients only, whatever the filter says
    mine = await draft(svc, base.maria)
    assert mine["audience"]["manager_id"] == base.maria.id
    numbers = {s["number"] for s in (await svc.preview(base.maria, mine["id"],
                                                       samples=100))["samples"]}
    assert numbers == {"+79161234567", "+79167778899", "+79165554433"}
    with pytest.raises(PermissionDenied):
        await draft(svc, base.maria, audience={"manager_id": base.dmitry.id})
    # and nobody else's campaign is theirs to see or run
    with pytest.raises(PermissionDenied):
        await svc.get(base.dmitry, mine["id"])
    with pytest.raises(PermissionDenied):
        await svc.start(base.dmitry, mine["id"])
    assert [c["id"] for c in await svc.list_for(base.dmitry)] == []
    assert [c["id"] for c in await svc.list_for(base.admin)] == [mine["id"]]
    await svc.get(base.admin, mine["id"])  # an admin sees every campaign


async def test_only_drafts_change_or_go(svc, base) -> None:
    c = await draft(svc, base.admin)
    changed = await svc.update(base.admin, c["id"], {"template": "Hi {client.name}"})
    assert changed["template"] == "Hi {client.name}"
    await svc.start(base.admin, c["id"])
    with pytest.raises(ValidationError):
        await svc.update(base.admin, c["id"], {"name": "Other"})
    with pytest.raises(ValidationError):
        await svc.delete(base.admin, c["id"])


async def test_demo_campaign_once_per_database(store, sms, clock, config) -> None:
    from callcenter.demo import seed_demo
    from callcenter.services import Services
    from callcenter.sms.campaign_runtime import demo_campaign

    await seed_demo(store, "x")
    svc = service(store, sms, clock, per_minute=0, max_queued=100)
    services = Services.build(config, store)
    cid = await demo_campaign(services, svc)
    assert cid is not None
    campaign = await store.get_campaign(cid)
    assert campaign["state"] == "running"
    assert sum((await store.recipient_counts(cid)).values()) == 7
    assert await demo_campaign(services, svc) is None  # a restart does not start another


def test_runner_wakes_only_when_a_campaign_job_leaves_the_queue(store, sms, clock) -> None:
    from callcenter.bus import EventBus

    bus = EventBus()
    svc = service(store, sms, clock)
    bus.subscribe(svc._on_event)

    def woke(data: dict) -> bool:
        svc._wake.clear()
        bus.publish("sms.status", {"sms": data})
        return svc._wake.is_set()

    assert woke({"campaign_id": 1, "state": "sent"})
    assert woke({"campaign_id": 1, "state": "failed"})
    assert not woke({"campaign_id": 1, "state": "sending"})
    assert not woke({"campaign_id": 1, "state": "delivered"})  # already counted at "sent"
    assert not woke({"campaign_id": None, "state": "sent"})  # not a campaign's


async def test_campaign_events_go_to_the_owner_and_the_admins(store, sms, clock, base
                                                              ) -> None:
    svc = service(store, sms, clock, per_minute=0)
    svc.bus = EventBus()
    seen: list[dict] = []
    svc.bus.subscribe(lambda e: seen.append(e.data) if e.topic == "campaign.status" else None)
    c = await draft(svc, base.maria)
    await svc.start(base.maria, c["id"])
    assert seen == [{"campaign": {"id": c["id"], "state": "running",
                                  "owner_id": base.maria.id}}]
    who = {u.login: can_see_event(u, seen[0], managers_see_all=True)
           for u in (base.admin, base.maria, base.dmitry, base.secretary)}
    assert who == {"admin": True, "maria": True, "dmitry": False, "sveta": False}
    opt_out = {"opt_out": {"number": "+79161234567"}}
    assert [can_see_event(u, opt_out, managers_see_all=True)
            for u in (base.admin, base.maria, base.secretary)] == [True, False, False]


async def test_a_noted_stop_whose_take_back_fails_is_tried_again(store, sms, clock, base
                                                                 ) -> None:
    svc = service(store, sms, clock, per_minute=0, max_queued=100)
    c = await draft(svc, base.admin)
    await svc.start(base.admin, c["id"])
    await svc.step()
    number = sms.queued()[0].number
    sms.opted.add(number)
    svc.note_opt_out(number)
    real = sms.cancel_queued
    failing = True

    async def flaky(job_id: int) -> bool:
        if failing:
            raise RuntimeError("database is locked")
        return await real(job_id)

    sms.cancel_queued = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await svc.step()
    failing = False
    await run_until_idle(svc, sms)
    assert number not in sms.sent_numbers()
    assert (await svc.report(base.admin, c["id"])).opted_out == 1


async def test_an_audience_over_the_limit_is_refused_not_cut(svc, base, monkeypatch) -> None:
    monkeypatch.setattr("callcenter.sms.campaigns.MAX_AUDIENCE", 3)
    c = await draft(svc, base.admin)
    with pytest.raises(ValidationError, match="more than 3 phone numbers"):
        await svc.preview(base.admin, c["id"])
    with pytest.raises(ValidationError, match="more than 3 phone numbers"):
        await svc.start(base.admin, c["id"])


async def test_a_held_runner_takes_its_first_step_once_released(store, sms, clock) -> None:
    svc = service(store, sms, clock)
    stepped = asyncio.Event()

    async def step() -> float:
        stepped.set()
        return 60.0

    svc.step = step  # type: ignore[method-assign]
    await svc.start_runner(hold=True)
    try:
        svc.wake()  # a wake-up is not a release
        assert svc._task is not None and not svc._task.done()
        assert not stepped.is_set()
        svc.release()
        async with asyncio.timeout(10):
            await stepped.wait()
    finally:
        await svc.stop_runner()

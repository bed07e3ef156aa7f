"""Several instances on one PostgreSQL store all run every fax line and GSM modem: a due fax
job or SMS part is sent by exactly one of them (an atomic claim in the store), and the
restart of one instance settles only what it left mid-send itself, never a job another live
instance is sending."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from callcenter.bus import EventBus
from callcenter.config import PhonesConfig, SmsConfig
from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.ports import FaxOutcome
from callcenter.faxes.service import FaxService
from callcenter.matching import CallerMatcher
from callcenter.sms.pool import ModemPool, SimLimits
from callcenter.sms.service import SmsService
from callcenter.store.postgres import PostgresStore
from tests.faxes.fakes import Core, FakeBackend, FakeConverter
from tests.sms.harness import Clock, FakeModem

SENDING = ("dialing", "sending")


@contextlib.asynccontextmanager
async def _instance(tmp_path: Path, pg_url: str, name: str) -> AsyncIterator[Core]:
    """One instance's fax service (its own store connection and line) named ``name``."""
    store = await PostgresStore.open(pg_url)
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    service = FaxService(store, bus, FakeConverter(tmp_path),
                         CallerMatcher(store.caller_index, PhonesConfig()), tmp_path / "data")
    service.instance = name
    backend = FakeBackend()
    backend.sink = service.sink("fax")
    service.add_line("fax", backend, RetryPolicy(retry_seconds=0.0))
    try:
        yield Core(store, service, backend, events, tmp_path)
    finally:
        await service.stop()
        await store.close()


async def test_a_due_fax_job_is_sent_once_by_two_instances(tmp_path: Path,
                                                           pg_url: str) -> None:
    async with _instance(tmp_path, pg_url, "a") as a, _instance(tmp_path, pg_url, "b") as b:
        await asyncio.gather(a.service.start(), b.service.start())
        job = await a.send(pages=1, client_id=None)
        # both dispatchers are woken for it (a's by the send, b's by its own wake-up)
        b.service._wake["fax"].set()
        # each service hears only its own changes: wait on both, for whichever took it
        waits = [asyncio.ensure_future(c.until_submits(1)) for c in (a, b)]
        done, pending = await asyncio.wait(waits, timeout=10,
                                           return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        assert done
        owner = a if a.backend.submits else b
        await owner.until_state(job["id"], *SENDING)
        submits = a.backend.submits + b.backend.submits
        assert [s[1] for s in submits] == [job["id"]]
        owner.backend.result(submits[0][2], FaxOutcome.SENT, 1, 1)
        assert (await owner.until_state(job["id"], "sent"))["attempts"] == 1
        assert len(a.backend.submits + b.backend.submits) == 1


async def test_restarting_one_instance_leaves_the_others_fax_alone(tmp_path: Path,
                                                                   pg_url: str) -> None:
    async with _instance(tmp_path, pg_url, "a") as a:
        await a.service.start()
        job = await a.send(pages=1, client_id=None)
        ref = await a.until_submits(1)
        await a.until_state(job["id"], *SENDING)
        async with _instance(tmp_path, pg_url, "b") as b:
            await b.service.start()  # b (re)starts while a is sending the job
            assert await b.service.recover() == []
            assert (await b.job(job["id"]))["state"] in SENDING
            a.backend.result(ref, FaxOutcome.SENT, 1, 1)
            done = await a.until_state(job["id"], "sent")
            assert done["interrupted"] in (0, False)
            assert b.backend.submits == []


async def test_an_instance_restarting_settles_its_own_fax(tmp_path: Path, pg_url: str) -> None:
    async with _instance(tmp_path, pg_url, "a") as a:
        await a.service.start()
        job = await a.send(pages=1, client_id=None)
        await a.until_submits(1)
        await a.until_state(job["id"], *SENDING)
        async with _instance(tmp_path, pg_url, "a") as again:  # a, after a crash
            changed = await again.service.recover()
            assert [j["id"] for j in changed] == [job["id"]]


async def _sms_instance(store: PostgresStore, name: str, modem: FakeModem,
                        clock: Clock) -> tuple[SmsService, ModemPool]:
    service = SmsService(store, EventBus(), CallerMatcher(store.caller_index, PhonesConfig()),
                         SmsConfig(), clock=clock)
    service.instance = name
    await service.start()
    pool = ModemPool(service, [(modem, SimLimits(per_minute=1000, per_day=100_000))],
                     clock=clock)
    await pool.load_counters()
    return service, pool


async def test_an_sms_is_sent_once_and_a_restart_leaves_the_others_part_alone(
        pg_url: str) -> None:
    stores = [await PostgresStore.open(pg_url) for _ in range(3)]
    try:
        clock = Clock()
        # every instance runs the same modem (its own connection to it)
        modem_a, modem_b = FakeModem("gsm1", hold=asyncio.Event()), FakeModem("gsm1")
        service_a, pool_a = await _sms_instance(stores[0], "a", modem_a, clock)
        _, pool_b = await _sms_instance(stores[1], "b", modem_b, clock)
        message_id = await service_a.enqueue("+79161234567", "one SMS, sent once")
        tasks = await pool_a.run_once()
        await asyncio.wait_for(modem_a.entered.wait(), 10)  # a's modem has the part now
        tasks += await pool_b.run_once()  # b's modem is idle: the part is a's
        assert modem_b.offered == []
        # b restarts while a is handing the part to its modem: not b's to settle
        restarted, _ = await _sms_instance(stores[2], "b", FakeModem("gsm1"), clock)
        assert await restarted.start() == []
        assert {p["state"] for p in await stores[2].sms_parts(message_id)} == {"sending"}
        modem_a.hold.set()
        await asyncio.gather(*tasks)
        assert {p["state"] for p in await stores[0].sms_parts(message_id)} == {"sent"}
        assert len(modem_a.sent) == 1
    finally:
        for store in stores:
            await store.close()

"""A fake SmsModem and an SMS core on a temporary store, for the pool and job tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from callcenter.bus import BusEvent, EventBus
from callcenter.config import PhonesConfig, SmsConfig
from callcenter.errors import LineUnavailable
from callcenter.matching import CallerMatcher
from callcenter.sms.events import Address, AddressKind, ReportStatus, SmsStatusReport
from callcenter.sms.pool import ModemPool, SimLimits
from callcenter.sms.ports import ModemInfo, OutboundPart
from callcenter.sms.service import SmsService
from callcenter.store.sqlite import SqliteStore


class Clock:
    def __init__(self, now: float = 1_780_000_000.0) -> None:  # 2026-05-28, a Thursday
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeModem:
    """Answers each send with the next TP-MR (wrapping at 256) or with what ``fail`` holds."""

    name: str
    ready: bool = True
    mr: int = 0
    sent: list[OutboundPart] = field(default_factory=list)
    offered: list[OutboundPart] = field(default_factory=list)  # every part handed over
    fail: list[BaseException] = field(default_factory=list)  # raised by the next sends
    hold: asyncio.Event | None = None  # when set, a send waits for it
    ussd_reply: str = "Balance: 100.00 RUB"
    entered: asyncio.Event = field(default_factory=asyncio.Event)  # a send_part has begun

    def info(self) -> ModemInfo:
        return ModemInfo(model="fake", operator="TestNet", signal_dbm=-71,
                         registered=self.ready, sim_ready=True)

    async def send_part(self, part: OutboundPart) -> int:
        self.offered.append(part)
        if not self.ready:
            raise LineUnavailable(f"{self.name} is down")
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(part)
        mr = self.mr
        self.mr = (self.mr + 1) % 256
        return mr

    async def ussd(self, code: str, timeout: float = 30.0) -> str:
        return self.ussd_reply


@dataclass
class Core:
    store: SqliteStore
    bus: EventBus
    service: SmsService
    pool: ModemPool
    clock: Clock
    modems: dict[str, FakeModem]
    events: list[BusEvent] = field(default_factory=list)

    async def drain(self, passes: int = 50) -> int:
        """Scheduler passes (each awaiting the sends it started) until nothing starts."""
        total = 0
        for _ in range(passes):
            tasks = await self.pool.run_once()
            if not tasks:
                return total
            await asyncio.gather(*tasks)
            total += len(tasks)
        return total

    async def message(self, message_id: int) -> dict[str, Any]:
        return await self.store.sms_get(message_id)

    async def report(self, modem: str, mr: int, to: str,
                     status: ReportStatus = ReportStatus.DELIVERED, code: int = 0,
                     submitted: float | None = None) -> int | None:
        return await self.service.on_report(SmsStatusReport(
            modem, mr, Address(AddressKind.INTERNATIONAL, to), status, code, None, "",
            submitted_time=submitted))


async def sms_core(store: SqliteStore, *modems: FakeModem | tuple[FakeModem, SimLimits],
                   sms: SmsConfig | None = None, timezone: str = "UTC",
                   clock: Clock | None = None) -> Core:
    clock = clock or Clock()
    bus = EventBus()
    core_events: list[BusEvent] = []
    bus.subscribe(core_events.append)
    service = SmsService(store, bus, CallerMatcher(store.caller_index, PhonesConfig()),
                         sms or SmsConfig(), clock=clock)
    await service.start()
    pairs = [m if isinstance(m, tuple) else (m, SimLimits(per_minute=1000, per_day=100_000))
             for m in modems]
    pool = ModemPool(service, pairs, timezone=timezone, clock=clock)
    await pool.load_counters()
    return Core(store, bus, service, pool, clock, {m.name: m for m, _ in pairs}, core_events)

"""The SMS core over real modems (gsm/modem.py) on emulated modems behind real
pseudo-terminals: parts, reports, reassembly, a modem unplugged and back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.bus import BusEvent, EventBus
from callcenter.config import PhonesConfig, SmsConfig
from callcenter.matching import CallerMatcher
from callcenter.models import ClientKind
from callcenter.phones import normalize
from callcenter.sms.pool import ModemPool, SimLimits
from callcenter.sms.service import SmsService
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite_sms import SmsFilter
from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig as EmulatorConfig
from gsm.modem import Modem
from gsm.modem_settings import ModemSettings

WAIT = 30.0  # seconds a test waits for an event before it fails (never a sleep)


@dataclass
class Rig:
    store: Any
    bus: EventBus
    service: SmsService
    pool: ModemPool
    emulators: dict[str, ModemEmulator]
    modems: dict[str, Modem]
    events: list[BusEvent] = field(default_factory=list)
    _waiters: list[tuple[Callable[[], bool], asyncio.Event]] = field(default_factory=list)

    def on_event(self, event: BusEvent) -> None:
        self.events.append(event)
        for predicate, flag in self._waiters:
            if predicate():
                flag.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        if predicate():
            return
        flag = asyncio.Event()
        self._waiters.append((predicate, flag))
        try:
            await asyncio.wait_for(flag.wait(), WAIT)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None
        finally:
            self._waiters.remove((predicate, flag))

    def last_state(self, message_id: int) -> dict[str, Any] | None:
        for event in reversed(self.events):
            if event.topic == "sms.status" and event.data["sms"]["id"] == message_id:
                return event.data["sms"]
        return None

    def sent_log(self, name: str) -> list[dict[str, Any]]:
        path = Path(self.emulators[name].send_log_path or "")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)  # a modem reports readiness to nobody: polled, bounded
    raise AssertionError(f"timed out waiting for {what}")


async def wait_ready(modem: Modem) -> None:
    await modem.wait_ready(WAIT)


@pytest.fixture
async def rig(tmp_path: Path, store) -> AsyncIterator[Rig]:
    bus = EventBus()
    service = SmsService(store, bus, CallerMatcher(store.caller_index, PhonesConfig()),
                         SmsConfig(reassembly_timeout=60))
    await service.start()
    emulators: dict[str, ModemEmulator] = {}
    modems: dict[str, Modem] = {}
    for name in ("gsm1", "gsm2"):
        emu = ModemEmulator(str(tmp_path / name), EmulatorConfig(time_scale=0.002),
                            name=name, send_log=str(tmp_path / f"{name}.jsonl"))
        await emu.start()
        emulators[name] = emu
        modem = Modem(ModemSettings(name=name, path=emu.path, backoff_initial=0.02,
                                    backoff_max=0.2, poll_interval=0.2),
                      sms_sink=service.handle, call_sink=lambda event: None)
        await modem.start()
        modems[name] = modem
    for modem in modems.values():
        await wait_ready(modem)
    pool = ModemPool(service, [(m, SimLimits(per_minute=1000, per_day=10_000))
                               for m in modems.values()])
    r = Rig(store, bus, service, pool, emulators, modems)
    bus.subscribe(r.on_event)
    await pool.start()
    try:
        yield r
    finally:
        await pool.stop()
        for modem in modems.values():
            await modem.stop()
        for emu in emulators.values():
            await emu.stop()


async def test_a_long_cyrillic_sms_goes_out_as_ucs2_parts_delivered_after_the_last(rig: Rig):
    text = ("Здравствуйте! Ваш заказ собран и ждёт вас на складе. " * 4)[:200]
    message_id = await rig.service.enqueue("+79161234567", text)
    await rig.until(lambda: (rig.last_state(message_id) or {}).get("state") == "delivered",
                    "the message to be delivered")
    final = rig.last_state(message_id)
    assert final is not None and final["encoding"] == "ucs2" and final["parts_total"] == 3
    assert [p["state"] for p in final["parts"]] == ["delivered"] * 3
    # never "delivered" while a part was not
    for event in rig.events:
        sms = event.data["sms"]
        if event.topic == "sms.status" and sms["id"] == message_id and \
                sms["state"] == "delivered":
            assert all(p["state"] == "delivered" for p in sms["parts"])
    seen = [tuple(p["state"] for p in e.data["sms"]["parts"]) for e in rig.events
            if e.topic == "sms.status" and e.data["sms"]["id"] == message_id]
    assert any(s.count("delivered") in (1, 2) for s in seen)  # reports came one by one
    log = rig.sent_log(final["modem"])
    assert len(log) == 3 and len({entry["ref"] for entry in log}) == 1
    assert [entry["seq"] for entry in log] == [1, 2, 3]
    assert "".join(entry["text"] for entry in log) == text


async def test_an_emoji_on_a_part_boundary_arrives_whole(rig: Rig):
    text = "a" * 66 + "😀" + "b" * 10  # UCS2: the emoji would straddle units 67/68
    message_id = await rig.service.enqueue("+79161234567", text)
    await rig.until(lambda: (rig.last_state(message_id) or {}).get("state") == "delivered",
                    "the message to be delivered")
    log = rig.sent_log(rig.last_state(message_id)["modem"])  # type: ignore[index]
    assert "".join(entry["text"] for entry in log) == text
    assert any(entry["text"].startswith("😀") for entry in log)


async def test_an_inbound_multipart_sms_arrives_whole_on_the_right_client(rig: Rig):
    client = await rig.store.create_client(ClientInput(
        "Ivan", ClientKind.PERSON,
        contacts=[ContactInput("Ivan", phones=[PhoneInput("89161234567",
                                                          normalize("89161234567"))])]))
    text = "Добрый день! " * 15  # 195 characters: three UCS2 parts
    rig.emulators["gsm2"].deliver_sms("+79161234567", text)
    await rig.until(lambda: any(e.topic == "sms.received" for e in rig.events),
                    "the SMS to arrive")
    (received,) = [e.data["sms"] for e in rig.events if e.topic == "sms.received"]
    assert received["text"] == text and received["client_id"] == client.id
    assert received["state"] == "received" and received["modem"] == "gsm2"


async def test_an_unplugged_modem_comes_back_and_its_queue_drains(rig: Rig):
    for emu in rig.emulators.values():
        emu.unplug()
    for modem in rig.modems.values():
        await modem.wait_down(WAIT)
    ids = [await rig.service.enqueue(f"+7916123456{i}", f"queued {i}") for i in range(3)]
    await rig.pool.run_once()
    assert all((rig.last_state(i) or {}).get("state") == "queued" for i in ids)
    rig.emulators["gsm1"].plug()
    await rig.until(lambda: all((rig.last_state(i) or {}).get("state") == "delivered"
                                for i in ids), "the queue to drain")
    assert sorted(entry["text"] for entry in rig.sent_log("gsm1")) == [
        "queued 0", "queued 1", "queued 2"]


async def test_a_duplicate_delivery_and_three_sms_at_once_are_stored_once_each(rig: Rig):
    emu = rig.emulators["gsm1"]
    emu.deliver_sms("+79035556677", "Длинное сообщение, которое придёт дважды. " * 3,
                    duplicate=True)
    for i in range(3):
        emu.deliver_sms("+79162222222", f"quick {i}")
    await rig.until(lambda: len([e for e in rig.events if e.topic == "sms.received"]) >= 4,
                    "four messages")
    texts = sorted(e.data["sms"]["text"] for e in rig.events if e.topic == "sms.received")
    assert texts == sorted(["Длинное сообщение, которое придёт дважды. " * 3,
                            "quick 0", "quick 1", "quick 2"])
    # the SIM is emptied only after each part was stored (nothing left to read again)
    await wait_for(lambda: not emu.sim, "the SIM to be emptied")
    rows = await rig.store.sms_list(SmsFilter(direction="in"))
    assert len(rows) == 4

"""Test harnesses over TCP: a recorded AMI trace replayed into the real line, registry, call
log and store (``replay``), and a bare line against an emulator that answers chosen actions
(``line_pbx``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.bus import BusEvent, EventBus
from callcenter.calls.log import CallLog
from callcenter.calls.registry import CallRegistry
from callcenter.calls.service import CallService
from callcenter.config import PbxLineConfig, PhonesConfig
from callcenter.demo import seed_demo
from callcenter.line_events import LineEvent
from callcenter.matching import CallerMatcher
from callcenter.models import User
from callcenter.store.base import CallFilter
from callcenter.store.sqlite import SqliteStore
from pbx.ami.connection import AmiConnection
from pbx.ami.emulator import AmiEmulator, Responder
from pbx.ami.trace import Trace, load_trace
from pbx.asterisk_line import AsteriskLine
from tests.conftest import FIXTURES

# argon2 is slow on purpose; the replay tests never log in.
FAKE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$0000000000000000000000000000000000000000000"


@dataclass
class CallCore:
    """The core's call path on a store, with no line: tests feed line events to ``registry``."""

    bus: EventBus
    events: list[BusEvent]
    log: CallLog
    registry: CallRegistry


async def call_core(store: SqliteStore, **log_options: Any) -> CallCore:
    """A started call log and a registry publishing to a bus whose events are collected."""
    bus = EventBus()
    events: list[BusEvent] = []
    bus.subscribe(events.append)
    log = CallLog(store, **log_options)
    registry = CallRegistry(CallerMatcher(store.caller_index, PhonesConfig()),
                            store.caller_index, bus, log)
    await log.start()
    return CallCore(bus, events, log, registry)


@dataclass
class Replay:
    store: SqliteStore
    bus: EventBus
    registry: CallRegistry
    call_log: CallLog
    line: AsteriskLine
    emulator: AmiEmulator
    service: CallService
    events: list[BusEvent] = field(default_factory=list)

    async def user(self, login: str) -> User:
        found = await self.store.user_by_login(login)
        assert found is not None
        return found[0]

    async def calls(self) -> list[dict[str, Any]]:
        return list(reversed(await self.store.list_calls(CallFilter(limit=100))))

    def topics(self, call_id: str | None = None) -> list[str]:
        return [e.topic for e in self.events
                if call_id is None or e.data["call"]["id"] == call_id]

    async def wait_event(self, topic: str, timeout: float = 10.0) -> BusEvent:
        async def poll() -> BusEvent:
            while True:
                for e in self.events:
                    if e.topic == topic:
                        return e
                await asyncio.sleep(0.01)

        return await asyncio.wait_for(poll(), timeout)

    async def connected(self, timeout: float = 10.0) -> None:
        async def poll() -> None:
            while not self.line.connected:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout)

    async def finish(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.emulator.finished.wait(), timeout)
        for _ in range(100):  # let the reader hand the last events over
            if not self.registry.live() and not self.line.holding:
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(self.call_log.drained(), 10)


@contextlib.asynccontextmanager
async def replay(
    tmp_path: Path,
    scenario: str,
    *,
    action_wait: float = 0.3,
    channel_ids: Callable[[], str] | None = None,
    speed: float = 0.0,
    prepare: Callable[[SqliteStore], Awaitable[None]] | None = None,
    trace: Trace | None = None,
    line: dict[str, Any] | None = None,
    emulator_options: dict[str, Any] | None = None,
    region: str | Callable[[], str] = "RU",
) -> AsyncIterator[Replay]:
    """``trace`` replaces the recording named ``scenario``; ``line``: PbxLineConfig values;
    ``emulator_options``: AmiEmulator keywords (``variables``, ``held_answers``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = await SqliteStore.open(tmp_path / f"{scenario}.db")
    await seed_demo(store, FAKE_HASH)
    if prepare is not None:
        await prepare(store)  # before the PBX starts talking
    bus = EventBus()
    options = {"name": "office", "port": 0, "username": "crm", "secret": "crm-secret",
               "trunk_endpoints": ["trunk", "faxtrunk"], **(line or {})}
    call_log = CallLog(store, callback_on={options["name"]: options.get(
        "callback_on", "waited_or_voicemail")})
    registry = CallRegistry(CallerMatcher(store.caller_index, PhonesConfig()),
                            store.caller_index, bus, call_log)
    await call_log.start()
    emulator = AmiEmulator(trace or load_trace(FIXTURES / f"{scenario}.log"), speed=speed,
                           action_wait=action_wait, auth_failure_delay=0,
                           **(emulator_options or {}))
    await emulator.start()
    config = PbxLineConfig(**{**options, "port": emulator.port})
    line = AsteriskLine(config, registry.handle, channel_ids=channel_ids, region=region)
    service = CallService(registry, {"office": line})
    result = Replay(store, bus, registry, call_log, line, emulator, service)
    bus.subscribe(result.events.append)
    await line.start()
    try:
        yield result
    finally:
        await line.stop()
        await emulator.close()
        await call_log.stop()
        await store.close()


@dataclass
class LinePbx:
    """An AsteriskLine logged in to an emulator; ``events`` are the line events it emitted."""

    emulator: AmiEmulator
    line: AsteriskLine
    events: list[LineEvent]
    resyncs: int = 0  # resyncs finished (after each login)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition`` holds, re-checked after each line event and resync."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def of(self, kind: type, key: str) -> list[LineEvent]:
        return [e for e in self.events if isinstance(e, kind) and e.call_key == key]

    async def play(self, blocks: list[bytes], until: type) -> None:
        """Write ``blocks`` to the line in one TCP write; wait for a line event of ``until``."""
        await self.emulator.inject(b"".join(blocks))
        await self.until(lambda: any(isinstance(e, until) for e in self.events))

    def sent(self, name: str) -> dict[str, str | None]:
        [action] = self.emulator.actions_named(name)
        return {k: action.get(k) for k in ("Channel", "Exten", "MixMonitorID")}


@contextlib.asynccontextmanager
async def line_pbx(
    responders: Mapping[str, Responder], *, trunk_endpoints: tuple[str, ...] = ("trunk",),
    **config: Any,
) -> AsyncIterator[LinePbx]:
    """A line (``office``) logged in to an emulator with no recording that answers the actions
    in ``responders``; ``config`` overrides PbxLineConfig fields."""
    emulator = AmiEmulator([], auth_failure_delay=0, responders=responders)
    await emulator.start()
    events: list[LineEvent] = []
    line_config = PbxLineConfig(name="office", port=emulator.port, username="crm",
                                secret="crm-secret", trunk_endpoints=list(trunk_endpoints),
                                **config)
    state: LinePbx

    def sink(event: LineEvent) -> None:
        events.append(event)
        state.changed.set()

    line = AsteriskLine(line_config, sink)
    state = LinePbx(emulator, line, events)
    resync = line._resync

    async def counted(conn: AmiConnection) -> None:  # a test can wait for each resync's end
        await resync(conn)
        state.resyncs += 1
        state.changed.set()

    line._resync = counted  # type: ignore[method-assign]
    await line.start()
    await emulator.wait_for_client()
    try:
        yield state
    finally:
        await line.stop()
        await emulator.close()

"""Composition root: builds the store, the bus, the lines and the web app, and owns their tasks.

The only core module allowed to import adapters (pbx/, gsm/, fax/) and the UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from starlette.applications import Starlette

from callcenter.bus import BusEvent
from callcenter.calls.registry import CallRegistry
from callcenter.config import Config, GsmModemConfig, PbxLineConfig
from callcenter.demo import DEMO_PASSWORD, seed_demo
from callcenter.passwords import shutdown_pool
from callcenter.services import Services
from callcenter.sms.runtime import Sink, limits_of, sms_running
from callcenter.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from callcenter.calls.log import CallLog

log = logging.getLogger(__name__)


def session_secret(config: Config) -> str:
    """The configured secret, or one generated on first start and kept beside the database."""
    if config.server.secret_key:
        return config.server.secret_key
    path = config.data_dir / "session-secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@contextlib.asynccontextmanager
async def call_handling(services: Services, demo: bool, demo_calls: bool = True
                        ) -> AsyncIterator[None]:
    """The call registry, the call log, the PBX lines, the recording fetcher (and in demo
    mode a built-in PBX emulator): started in order, stopped in reverse."""
    from callcenter.calls.log import CallLog
    from callcenter.calls.service import CallService
    from callcenter.recordings import RecordingFetcher
    from pbx.asterisk_line import AsteriskLine

    config = services.config
    store = services.store
    # What the call log could not write before the last stop is replayed by start(), below,
    # before any line connects.
    call_log = CallLog(store, journal=config.data_dir / "call-log.journal",
                       callback_on={line.name: line.callback_on for line in config.pbx})
    registry = CallRegistry(services.matcher, store.caller_index, services.bus, call_log,
                            region=config.phones.default_region)
    async with contextlib.AsyncExitStack() as stack:
        line_configs = [line for line in config.pbx if line.enabled]
        if demo and demo_calls:
            line_configs = [await stack.enter_async_context(
                demo_pbx(config.demo.call_interval))]
            stack.callback(services.bus.subscribe(_demo_recordings(config, registry)))
        lines = {cfg.name: AsteriskLine(cfg, registry.handle,
                                        recordings_dir=config.recordings.pbx_path,
                                        region=config.phones.default_region)
                 for cfg in line_configs}
        services.extra["calls"] = CallService(
            registry, dict(lines), config.console.managers_see_all_clients)
        services.extra["call_log"] = call_log
        await call_log.start()
        stack.push_async_callback(call_log.stop)
        for line in lines.values():
            await line.start()
            stack.push_async_callback(line.stop)
        left_open = asyncio.create_task(finish_left_open(call_log, list(lines.values())),
                                        name="left-open-calls")
        stack.push_async_callback(_cancel, left_open)
        fetcher = RecordingFetcher(store, config.recordings, config.data_dir / "recordings")
        await fetcher.start()
        stack.push_async_callback(fetcher.stop)
        services.extra["recordings"] = fetcher
        sweeper = asyncio.create_task(_sweep(registry), name="call-sweeper")
        stack.push_async_callback(_cancel, sweeper)
        yield


# How long the lines have to re-adopt the calls still up before the calls the last run left
# open are taken as over (a PBX that is down must not hold their callback tasks for ever).
LEFT_OPEN_GRACE = 60.0


class _Synced(Protocol):
    synced: asyncio.Event


async def finish_left_open(call_log: CallLog, lines: list[_Synced],
                           grace: float = LEFT_OPEN_GRACE) -> int:
    """Once every line's first resync is done (or after ``grace``), the calls the previous run
    left open that no line re-adopted get their finish step; returns how many."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(line.synced.wait() for line in lines)), grace)
    return call_log.finish_left_open()


async def _sweep(registry: CallRegistry) -> None:
    while True:
        await asyncio.sleep(60)
        registry.sweep(time.time())


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def demo_pbx(call_interval: float = 15.0) -> AsyncIterator[PbxLineConfig]:
    """The demo's PBX: recorded Asterisk calls replayed with the demo base's numbers."""
    from importlib import resources

    from callcenter.demo import DEMO_CALLERS
    from pbx.ami.demo import DemoPbx
    from pbx.ami.emulator import response
    from pbx.ami.message import Message

    traces = resources.files("pbx.ami") / "demo_traces"
    with resources.as_file(traces) as folder:
        pbx = DemoPbx(DEMO_CALLERS, fixtures=Path(folder), secret=_DEMO_AMI_SECRET,
                      interval=(call_interval * 0.7, call_interval * 1.3))

        # The demo's calls are recordings: actions are accepted but change nothing.
        def accept(message: Message) -> list[bytes]:
            return [response(message.action_id, ("Response", "Success"),
                             ("Message", "Accepted by the demo PBX"))]

        def no_channels(message: Message) -> list[bytes]:
            return [response(message.action_id, ("Response", "Success"), ("EventList", "start"),
                             ("Message", "Channels will follow")),
                    response(message.action_id, ("Event", "CoreShowChannelsComplete"),
                             ("EventList", "Complete"), ("ListItems", "0"))]

        for name in ("blindtransfer", "atxfer", "redirect", "hangup", "mixmonitor",
                     "stopmixmonitor", "originate"):
            pbx.emulator.responders[name] = accept
        pbx.emulator.responders["coreshowchannels"] = no_channels
        async with pbx:
            log.info("demo PBX emulator on 127.0.0.1:%d", pbx.port)
            yield PbxLineConfig(name="demo", host="127.0.0.1", port=pbx.port,
                                username="crm", secret=_DEMO_AMI_SECRET)


_DEMO_AMI_SECRET = "crm-secret"


def _demo_recordings(config: Config, registry: CallRegistry) -> Callable[[BusEvent], None]:
    """Plays the PBX's part for recordings in demo mode: when a call ends, the file its
    MixMonitor would have written appears in a local "monitor" folder (a short tone), and the
    recording fetcher picks it up from there as from a mounted PBX folder."""
    import math
    import struct
    import wave

    folder = config.data_dir / "demo-pbx-monitor"
    folder.mkdir(parents=True, exist_ok=True)
    config.recordings.fetch = "mount"
    config.recordings.mount_path = str(folder)
    pbx_root = PurePosixPath(config.recordings.pbx_path)
    rate = 8000
    tone = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                    for i in range(rate * 2))

    # The bus gives no PBX paths (they may hold the caller's number): the live calls do.
    paths: dict[str, list[str]] = {}

    def write(event: BusEvent) -> None:
        if "call" not in event.data:
            return  # an SMS or fax event
        call_id = event.data["call"]["id"]
        if event.topic not in ("call.ended", "call.missed"):
            live = registry.get(call_id)
            if live is not None and live.recordings:
                paths[call_id] = list(live.recordings)
            return
        for path in paths.pop(call_id, []):
            pure = PurePosixPath(path)
            if not pure.is_relative_to(pbx_root) or ".." in pure.parts:
                continue
            target = folder / pure.relative_to(pbx_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(target), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(tone)

    return write


@contextlib.asynccontextmanager
async def sms_handling(services: Services, demo_modems: bool) -> AsyncIterator[None]:
    """The SMS core and the modem pool over the configured GSM modems (and, in demo mode,
    two emulated modems on pseudo-terminals)."""
    async with contextlib.AsyncExitStack() as stack:

        async def build(sink: Sink) -> list[tuple[object, object]]:
            return await gsm_modems(services, sink, stack, demo_modems)

        await stack.enter_async_context(sms_running(services, build))  # type: ignore[arg-type]
        from callcenter.sms.campaign_runtime import campaigns_running

        await stack.enter_async_context(campaigns_running(services, demo_modems))
        yield


async def gsm_modems(services: Services, sink: object, stack: contextlib.AsyncExitStack,
                     demo: bool) -> list[tuple[object, object]]:
    """The modems of the [[gsm]] tables (in demo mode two emulated ones instead), each
    started, with its SIM's limits. A modem that cannot open its device yet is still
    handed to the pool: it stays down and retries on its own."""
    config = services.config
    configs = [cfg for cfg in config.gsm if cfg.enabled]
    if demo:
        configs = await stack.enter_async_context(demo_gsm(config))
    modems: list[tuple[object, object]] = []
    calls = services.extra.get("calls")
    call_sink = calls.registry.handle if calls is not None else (lambda event: None)
    async with contextlib.AsyncExitStack() as started:
        for cfg in configs:
            modem = _gsm_modem(cfg, sink, call_sink, config.sms.balance_ussd,
                               _late_result(services, cfg.name))
            await modem.start()
            # a later modem failing to start stops the ones already started
            started.push_async_callback(modem.stop)
            modems.append((modem, limits_of(cfg)))
        started.pop_all()  # all started: sms_running stops them, before the emulators
    return modems


def _gsm_modem(cfg: GsmModemConfig, sink: object, call_sink: object, balance: str,
               on_late_result: Any = None) -> Any:
    from gsm.modem import Modem
    from gsm.modem_settings import ModemSettings

    return Modem(ModemSettings(name=cfg.name, path=cfg.device, baudrate=cfg.baudrate,
                               pin=cfg.pin, balance_code=balance or "*100#"),
                 sms_sink=sink, call_sink=call_sink, on_late_result=on_late_result)


def _late_result(services: Services, name: str) -> Any:
    """A cancelled send's late +CMGS answer goes to the pool (made after the modems)."""

    def late(part: object, mr: int | None) -> None:
        pool = services.extra.get("sms_pool")
        if pool is not None:
            pool.late_result(name, part, mr)

    return late


@contextlib.asynccontextmanager
async def demo_gsm(config: Config) -> AsyncIterator[list[GsmModemConfig]]:
    """Two emulated modems on pseudo-terminals (a Huawei and a SIMCom) and, now and then,
    an SMS from a demo client to one of them."""
    import random

    from callcenter.demo import DEMO_SMS
    from gsm.emulator import ModemEmulator
    from gsm.emulator_families import ModemConfig

    folder = config.data_dir / "demo-gsm"
    folder.mkdir(parents=True, exist_ok=True)
    emulators = [
        ModemEmulator(str(folder / "modem1"), ModemConfig(
            family="huawei", operator="MTS RUS", own_number="+79160000001", send_time=1.5,
            report_delay=3.0), name="demo-gsm1", send_log=str(folder / "sent-gsm1.jsonl")),
        ModemEmulator(str(folder / "modem2"), ModemConfig(
            family="simcom", operator="Beeline", own_number="+79030000002", send_time=2.0,
            report_delay=4.0, imei="867123456789013"), name="demo-gsm2",
            send_log=str(folder / "sent-gsm2.jsonl")),
    ]
    async with contextlib.AsyncExitStack() as stack:
        for emulator in emulators:
            await stack.enter_async_context(emulator)

        async def texts() -> None:
            rng = random.Random()
            # the first one within seconds of start-up
            await asyncio.sleep(min(8.0, config.demo.sms_interval))
            for i in itertools.count():
                sender, text = DEMO_SMS[i % len(DEMO_SMS)]
                rng.choice(emulators).deliver_sms(sender, text)
                interval = config.demo.sms_interval
                await asyncio.sleep(rng.uniform(interval * 0.7, interval * 1.3))

        task = asyncio.create_task(texts(), name="demo-sms")
        stack.push_async_callback(_cancel, task)
        log.info("demo GSM modems on %s", folder)
        yield [GsmModemConfig(name=e.name, device=e.path, per_minute=20, per_day=1000)
               for e in emulators]


def create_app(config: Config, *, demo: bool | None = None, demo_calls: bool = True
               ) -> Starlette:
    """The product. ``demo`` seeds the demo base on an empty database and, unless
    ``demo_calls`` is false, replaces the configured lines with the built-in demo PBX."""
    from ui.app import build_web_app

    demo = config.demo.enabled if demo is None else demo

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await SqliteStore.open(config.database_path)
        services = Services.build(config, store)
        app.state.services = services
        try:
            if demo:
                from callcenter.passwords import hash_password

                if await seed_demo(store, hash_password(DEMO_PASSWORD)):
                    log.info("demo users: admin, secretary, maria, dmitry; password %r",
                             DEMO_PASSWORD)
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(call_handling(services, demo, demo_calls))
                await stack.enter_async_context(sms_handling(services, demo and demo_calls))
                for component in app.state.components:
                    await stack.enter_async_context(component(services, demo))
                if "campaigns" in services.extra:  # its runner waits for the start-up's end
                    services.extra["campaigns"].release()
                yield
        finally:
            await store.close()
            shutdown_pool()

    app = build_web_app(
        secret_key=session_secret(config),
        secure_cookies=config.server.secure_cookies,
        session_hours=config.server.session_hours,
        body_timeout=config.server.body_timeout,
        lifespan=lifespan,
    )
    app.state.config = config
    # Long-running parts (PBX lines, recording fetcher, demo PBX) register here as async
    # context managers taking (services, demo); each starts its tasks and stops them on exit.
    app.state.components = []
    return app

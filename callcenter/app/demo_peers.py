"""The demo's peers: an emulated PBX replaying recorded calls, its recordings, two emulated GSM
modems, started for ``serve --demo``. Part of the composition root (callcenter/app/), which
alone may import the adapters."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath

from callcenter.bus import BusEvent
from callcenter.calls.registry import CallRegistry
from callcenter.config import Config, GsmModemConfig, PbxLineConfig

log = logging.getLogger(__name__)


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancels ``task`` and waits for it to end (an exit-stack callback)."""
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
        pbx = DemoPbx(DEMO_CALLERS, fixtures=Path(folder), secret=DEMO_AMI_SECRET,
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
                                username="crm", secret=DEMO_AMI_SECRET)


DEMO_AMI_SECRET = "crm-secret"


def demo_recordings(config: Config, registry: CallRegistry) -> Callable[[BusEvent], None]:
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
        stack.push_async_callback(cancel_task, task)
        log.info("demo GSM modems on %s", folder)
        yield [GsmModemConfig(name=e.name, device=e.path, per_minute=20, per_day=1000)
               for e in emulators]

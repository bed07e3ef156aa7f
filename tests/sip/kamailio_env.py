"""A kamailio PBX with phones and the SIP line under test, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sip.sip_line import SipLine, SipLineConfig
from tests.sip.baresip import Baresip, free_port
from tests.sip.kamailio_pbx import Kamailio

PASSWORDS = {"crm": "crm-secret", "101": "pw-101", "102": "pw-102", "103": "pw-103"}


@dataclass
class Recorder:
    """The line's sink: every event, and a wake-up for whoever waits on one."""

    events: list[Any] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, pred, timeout: float = 20) -> Any:
        async def wait() -> Any:
            while True:
                for event in self.events:
                    if pred(event):
                        return event
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(wait(), timeout)

    def of(self, key: str) -> list[Any]:
        return [e for e in self.events if getattr(e, "call_key", None) == key]


async def wait_until(pred, changed: asyncio.Event, timeout: float = 20) -> None:
    async def wait() -> None:
        while not pred():
            changed.clear()
            await changed.wait()
    await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def kamailio(tmp: Path, **kw: Any) -> AsyncIterator[Kamailio]:
    pbx = Kamailio(tmp / "kamailio", dict(PASSWORDS), **kw)
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


@contextlib.asynccontextmanager
async def phone(tmp: Path, pbx: Kamailio, user: str, **kw: Any) -> AsyncIterator[Baresip]:
    p = Baresip(tmp, user, PASSWORDS[user], pbx.address, **kw)
    try:
        await p.start()
        yield p
    finally:
        await p.stop()


@contextlib.asynccontextmanager
async def sip_line(pbx: Kamailio, recorder: Recorder, **kw: Any) -> AsyncIterator[SipLine]:
    settings: dict[str, Any] = {"registrar": pbx.address, "username": "crm",
                                "secret": PASSWORDS["crm"], "listen_host": "127.0.0.1",
                                "listen_port": free_port(), "keepalive": 0.5,
                                "keepalive_timeout": 1.0,
                                "retry_max": 1.0}
    settings.update(kw)
    line = SipLine(SipLineConfig(name="office", **settings), recorder)
    await line.start()
    try:
        await asyncio.wait_for(line.registered.wait(), 20)
        yield line
    finally:
        await line.stop()

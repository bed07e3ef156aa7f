"""What the Modem tests share: the sinks it reports to, its test settings, the wait for ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from callcenter.sms.events import Address, AddressKind, SmsPartReceived
from gsm.emulator import ModemEmulator
from gsm.modem import Modem, ModemSettings

TO = Address(AddressKind.INTERNATIONAL, "+79161234567")


class Sinks:
    def __init__(self) -> None:
        self.sms: list[Any] = []
        self.calls: list[Any] = []
        self.fail_sms = 0  # refuse this many sink calls
        self.seen_in_sim: list[bool] = []  # was the part still on the SIM when the sink ran?
        self.emu: ModemEmulator | None = None
        self._cond = asyncio.Condition()
        self._wakes: set[asyncio.Task[None]] = set()

    async def sms_sink(self, ev: Any) -> None:
        if self.emu is not None and isinstance(ev, SmsPartReceived):
            self.seen_in_sim.append(ev.storage_index in self.emu.sim)
        if self.fail_sms:
            self.fail_sms -= 1
            raise RuntimeError("database is locked")
        self.sms.append(ev)
        async with self._cond:
            self._cond.notify_all()

    def call_sink(self, ev: Any) -> None:
        self.calls.append(ev)
        task = asyncio.get_running_loop().create_task(self._wake())
        self._wakes.add(task)  # referenced until done: the loop holds tasks only weakly
        task.add_done_callback(self._wakes.discard)

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def wait(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            async with self._cond:
                await self._cond.wait_for(pred)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.sms if isinstance(e, kind)]


def settings(path: str, **kw: Any) -> ModemSettings:
    base = dict(
        name="gsm1",
        path=path,
        poll_interval=3600.0,
        backoff_initial=0.02,
        backoff_max=0.2,
        command_timeout=2.0,
        send_timeout=3.0,
        clip_wait=0.2,
        ring_gap=0.3,
        ring_extensions=("101",),
    )
    base.update(kw)
    return ModemSettings(**base)  # type: ignore[arg-type]


async def up(modem: Modem) -> None:
    await modem.wait_ready(10)


class PinEntries:
    """Every ``AT+CPIN="…"`` the emulator gets (its ``commands`` log has only the name, which
    the queries share). ``answer``: "" as the emulator would, "silent" (swallowed: the command
    times out), "ok" (OK, yet the SIM keeps asking)."""

    def __init__(self, emu: ModemEmulator, answer: str = "") -> None:
        self.lines: list[str] = []
        inner = emu._command

        async def command(line: str) -> None:
            if not line.upper().startswith("AT+CPIN="):
                await inner(line)
                return
            self.lines.append(line)
            emu.commands.append("AT+CPIN")
            if answer == "silent":
                return
            if answer == "ok":
                emu._final("OK")
                return
            await inner(line)

        emu._command = command  # type: ignore[method-assign]

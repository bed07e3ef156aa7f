"""A fax line that sends to itself: for the demo and the tests of everything above a real
line (the console, restarts). A submitted fax is "sent" one page every ``page_seconds``, then
comes back as a received fax from the number it was sent to, so a newcomer sends a fax and
receives one. It goes through the same events as a real backend; no audio, no T.30 (the
spandsp engine, fax/spandsp.py, is the real thing)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from callcenter.config import FaxLineConfig
from callcenter.faxes.ports import (
    FaxDocument,
    FaxEvent,
    FaxOutcome,
    FaxProgress,
    FaxReceived,
    FaxResult,
)
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from fax.handover import hand_over


class LoopbackFaxLine:
    kind = "fax-loopback"

    def __init__(self, config: FaxLineConfig, sink: Callable[[FaxEvent], object],
                 incoming: Path) -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self.incoming = incoming
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._count = 0
        self._state = LineState.STOPPED
        self._since = time.time()

    async def check(self) -> CheckResult:
        return CheckResult(True, "loopback fax line (sends to itself)")

    async def start(self) -> None:
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._state, self._since = LineState.UP, time.time()

    async def stop(self) -> None:
        for task in self._calls.values():
            task.cancel()
        for task in list(self._calls.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._calls.clear()
        self._state, self._since = LineState.STOPPED, time.time()

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, "sends to itself", "", self._since)

    async def submit(self, number: str, document: FaxDocument, *, job_id: int) -> str:
        self._count += 1
        # Random too: a restarted process counts from 1 again, and the name names a file.
        ref = f"loop-{int(job_id)}-{self._count}-{secrets.token_hex(3)}"
        task = asyncio.create_task(self._call(ref, number, document))
        self._calls[ref] = task
        # Kept until done: after the result the task still hands the received fax over.
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return ref

    async def cancel(self, job_ref: str) -> None:
        task = self._calls.get(job_ref)
        if task is not None:
            task.cancel()

    async def _call(self, ref: str, number: str, document: FaxDocument) -> None:
        station = self.config.local_station_id or "LOOPBACK"
        confirmed = 0
        try:
            await asyncio.sleep(self.config.page_seconds / 2)
            self._sink(FaxProgress(ref, time.time(), "sending", 0, document.pages, station))
            for page in range(1, document.pages + 1):
                await asyncio.sleep(self.config.page_seconds)
                confirmed = page
                self._sink(FaxProgress(ref, time.time(), "sending", page, document.pages,
                                       station))
        except asyncio.CancelledError:
            self._sink(FaxResult(ref, time.time(), FaxOutcome.CANCELLED, confirmed,
                                 document.pages, station, detail="cancelled"))
            self._calls.pop(ref, None)
            raise
        self._sink(FaxResult(ref, time.time(), FaxOutcome.SENT, confirmed, document.pages,
                             station, t30_code=0, detail="loopback"))
        self._calls.pop(ref, None)
        copy = self.incoming / f"{ref}.tif"
        await asyncio.to_thread(shutil.copyfile, document.tiff, copy)
        if await hand_over(self._sink, FaxReceived(self.name, time.time(), copy, document.pages,
                                                   number, station, True, "loopback")):
            copy.unlink(missing_ok=True)

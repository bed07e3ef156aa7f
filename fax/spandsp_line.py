"""The spandsp loopback line: a fax line whose "far end" is a second libspandsp terminal in the
same process. A sent fax really goes through T.30 (over T.38 or G.711 audio, ECM on) and comes
back as a received fax on the same line, so the demo and the tests see honest per-page progress,
T.30 result codes and received TIFFs without a PBX.

Implements :class:`callcenter.faxes.ports.FaxBackend` and :class:`callcenter.lines.lifecycle.Line`.
The engine (:class:`fax.spandsp.BackToBack`) runs in a worker thread in slices of line time; its
events are turned into :class:`FaxProgress`, :class:`FaxResult` and :class:`FaxReceived` on the
event loop thread. ``speed`` paces the line (1.0 = real time, 10.0 = ten times faster,
``None`` = as fast as the CPU goes, for tests). For the demo, T.38 paced at ``speed=10`` shows a
page every second or so.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callcenter.errors import LineUnavailable
from callcenter.faxes.ports import (
    FaxDocument,
    FaxEvent,
    FaxOutcome,
    FaxProgress,
    FaxReceived,
    FaxResult,
)
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from fax import spandsp_lib as sp
from fax.spandsp import BackToBack, EngineEvent, EventKind, Side, SideReport, Transport

log = logging.getLogger(__name__)

SLICE_SAMPLES = sp.SAMPLE_RATE  # one second of line time per trip to the worker thread

# T.30 completion codes that mean "no fax machine talked to us" or "the line was bad": the job
# may retry. Anything else after the call was made is a failed fax.
_NO_ANSWER = {sp.T30_ERR.CEDTONE, sp.T30_ERR.T0_EXPIRED, sp.T30_ERR.T1_EXPIRED}
_LINE_ERROR = {sp.T30_ERR.HDLC_CARRIER, sp.T30_ERR.CANNOT_TRAIN, sp.T30_ERR.TX_PHBDEAD,
               sp.T30_ERR.TX_BADDCS, sp.T30_ERR.RX_NOCARRIER}


def outcome_of(report: SideReport, pages: int, *, cancelled: bool = False,
               interrupted: bool = False) -> FaxOutcome:
    """SENT only when T.30 ended cleanly *and* the far end confirmed every page. ``cancelled``:
    the user cancelled the job; ``interrupted``: the line was stopped under it (shutdown, a
    restart of the line), a line error the job may retry."""
    if report.code == sp.T30_ERR.OK and report.pages == pages and pages > 0:
        return FaxOutcome.SENT
    if cancelled:
        return FaxOutcome.CANCELLED
    if interrupted:
        return FaxOutcome.LINE_ERROR
    if report.pages == 0 and report.code in _NO_ANSWER:
        return FaxOutcome.NO_ANSWER
    if report.pages == 0 and report.code in _LINE_ERROR:
        return FaxOutcome.LINE_ERROR
    return FaxOutcome.FAILED


class Answer(enum.StrEnum):
    FAX = "fax"  # a fax machine answers
    VOICE = "voice"  # a person answers: no fax handshake, T.30 gives up (T0 timer)
    BUSY = "busy"
    NO_ANSWER = "no_answer"


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What the simulated far end does for one dialled number (tests and the demo)."""

    answer: Answer = Answer.FAX
    hang_up_after: int | None = None  # the line drops once this many pages are confirmed


@dataclass(slots=True)
class _Call:
    ref: str
    engine: BackToBack | None = None
    cancelled: bool = False  # by the user: the job ends cancelled
    interrupted: bool = False  # by stop(): the job ends with a line error, retryable
    task: asyncio.Task[object] | None = None


class SpandspLoopbackLine:
    kind = "fax-spandsp"

    def __init__(self, name: str, sink: Callable[[FaxEvent], object], spool: Path, *,
                 transport: Transport = Transport.T38, speed: float | None = 1.0,
                 paced: bool = True,
                 own_number: str = "", station_id: str = "CALLCENTER",
                 far_station_id: str = "LOOPBACK FAX",
                 plan: Callable[[str], CallPlan] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._sink = sink
        self.spool = Path(spool)
        self.transport = Transport(transport)
        self.speed = speed
        self.paced = paced  # T.38 packets at the modem's rate, so pages take real line time
        self.own_number = own_number
        self.station_id = station_id
        self.far_station_id = far_station_id
        self._plan = plan or (lambda _number: CallPlan())
        self._clock = clock
        self._calls: dict[str, _Call] = {}
        self._state = LineState.STOPPED
        self._detail = ""
        self._last_error = ""
        self._since = clock()

    # -- Line -----------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        try:
            await asyncio.to_thread(sp.load)
        except sp.SpandspMissing as exc:
            return CheckResult(False, "libspandsp is missing", error=str(exc),
                               hint="Install the Debian package libspandsp2.")
        return CheckResult(True, "spandsp fax engine ready",
                           facts={"engine": "libspandsp 0.0.6", "transport": self._words()})

    async def start(self) -> None:
        result = await self.check()
        if result.ok:
            self.spool.mkdir(parents=True, exist_ok=True)
            self._set(LineState.UP, f"loopback over {self._words()}, ECM")
        else:
            self._last_error = result.error
            self._set(LineState.DOWN, result.error)

    async def stop(self) -> None:
        """Hang up every call in progress (sends and receives) and wait until each has
        reported its end: a send stopped here ends as a line error, not as the user's cancel."""
        self._set(LineState.STOPPED, "")  # no new calls from here on
        calls = list(self._calls.values())
        for call in calls:
            call.interrupted = True
            if call.engine is not None:
                call.engine.hang_up()
        me = asyncio.current_task()
        tasks = [c.task for c in calls if c.task is not None and c.task is not me]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, self._detail, self._last_error,
                          self._since)

    def _set(self, state: LineState, detail: str) -> None:
        if state is not self._state:
            self._since = self._clock()
        self._state, self._detail = state, detail

    def _words(self) -> str:
        return "T.38" if self.transport is Transport.T38 else "G.711 audio"

    # -- FaxBackend -----------------------------------------------------------------------

    async def submit(self, number: str, document: FaxDocument, *, job_id: int) -> str:
        if not self.status().connected:
            raise LineUnavailable(f"fax line {self.name} is not running")
        ref = f"spandsp-{job_id}-{uuid.uuid4().hex[:8]}"
        call = _Call(ref)
        self._calls[ref] = call
        call.task = asyncio.create_task(self._send(call, number, document),
                                        name=f"fax {self.name} {ref}")
        return ref

    async def cancel(self, job_ref: str) -> None:
        call = self._calls.get(job_ref)
        if call is None:
            return
        call.cancelled = True
        if call.engine is not None:
            call.engine.hang_up()  # picked up by the worker at its next step

    async def receive(self, tiff: Path, *, caller_num: str, station_id: str) -> None:
        """A fax arriving from outside: ``tiff`` is sent by a simulated far machine into this
        line's receive path (the demo's incoming fax)."""
        if not self.status().connected:
            raise LineUnavailable(f"fax line {self.name} is not running")
        call = _Call(f"rx-{uuid.uuid4().hex[:8]}", task=asyncio.current_task())
        self._calls[call.ref] = call  # stop() hangs it up and waits for it too
        try:
            await self._exchange(call, tiff, sender_ident=station_id,
                                 receiver_ident=self.station_id, caller_num=caller_num,
                                 pages=None, sending=False)
        finally:
            self._calls.pop(call.ref, None)

    # -- the call -------------------------------------------------------------------------

    async def _send(self, call: _Call, number: str, document: FaxDocument) -> None:
        try:
            await self._emit(FaxProgress(call.ref, self._clock(), "dialing", 0,
                                         document.pages))
            plan = self._plan(number)
            if plan.answer in (Answer.BUSY, Answer.NO_ANSWER):
                outcome = (FaxOutcome.BUSY if plan.answer is Answer.BUSY
                           else FaxOutcome.NO_ANSWER)
                await self._emit(FaxResult(call.ref, self._clock(), outcome, 0,
                                           document.pages,
                                           detail=f"simulated {plan.answer.value}"))
                return
            await self._exchange(call, document.tiff, sender_ident=self.station_id,
                                 receiver_ident=self.far_station_id,
                                 caller_num=self.own_number, pages=document.pages,
                                 sending=True, hang_up_after=plan.hang_up_after,
                                 fax_answers=plan.answer is Answer.FAX)
        except Exception as exc:  # the job must end with a result, whatever broke
            log.exception("spandsp call %s failed", call.ref)
            await self._emit(FaxResult(call.ref, self._clock(), FaxOutcome.LINE_ERROR, 0,
                                       document.pages, detail=f"engine error: {exc}"))
        finally:
            self._calls.pop(call.ref, None)

    async def _exchange(self, call: _Call, tiff: Path, *, sender_ident: str,
                        receiver_ident: str, caller_num: str, pages: int | None,
                        sending: bool, hang_up_after: int | None = None,
                        fax_answers: bool = True) -> None:
        """Run one T.30 call; the send side's events are reported when ``sending`` (a job
        of ours), the receive side's result always (a fax lands in the inbox)."""
        rx_tiff = self.spool / f"rx-{uuid.uuid4().hex}.tiff"
        # spandsp reads the file while the job may delete the document: a private copy
        tx_tiff = self.spool / f"tx-{uuid.uuid4().hex}.tiff"
        await asyncio.to_thread(shutil.copyfile, tiff, tx_tiff)
        try:
            engine = BackToBack(self.transport, tx_tiff, rx_tiff, sender_ident=sender_ident,
                                receiver_ident=receiver_ident, paced=self.paced,
                                hang_up_after=hang_up_after, fax_answers=fax_answers)
        except BaseException:
            tx_tiff.unlink(missing_ok=True)
            raise
        call.engine = engine
        if call.cancelled or call.interrupted:
            engine.hang_up()
        seen = 0
        started = time.monotonic()
        keep_rx = False
        try:
            while True:
                done = await _uncancellable_slice(engine)
                new, seen = engine.events[seen:], len(engine.events)
                for event in new:
                    if await self._report(call, event, engine, pages, caller_num, rx_tiff,
                                          sending=sending) is False:
                        keep_rx = True
                if done:
                    break
                if self.speed:
                    due = started + engine.samples / sp.SAMPLE_RATE / self.speed
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            engine.close()
            tx_tiff.unlink(missing_ok=True)
            # Kept only when the sink failed to store a received fax: it stays in the spool
            # (logged) rather than being lost. Stored, or nothing received: removed.
            if not keep_rx:
                rx_tiff.unlink(missing_ok=True)

    async def _report(self, call: _Call, event: EngineEvent, engine: BackToBack,
                      pages: int | None, caller_num: str, rx_tiff: Path, *,
                      sending: bool) -> bool | None:
        """Hand one engine event on; for a received fax, whether the sink stored it."""
        now = self._clock()
        if event.side is Side.SEND:
            if not sending:
                return None
            if event.kind is EventKind.DONE:
                report = engine.sender.report()
                total = pages if pages is not None else (report.pages_in_file or 0)
                outcome = outcome_of(report, total, cancelled=call.cancelled,
                                     interrupted=call.interrupted)
                await self._emit(FaxResult(call.ref, now, outcome, report.pages, pages,
                                           report.remote_station, report.code,
                                           f"{report.code_name}: {report.words}"))
            else:
                await self._emit(FaxProgress(call.ref, now, "sending", event.pages, pages,
                                             event.remote_station))
        elif event.kind is EventKind.DONE:
            report = engine.receiver.report()
            if report.pages == 0:  # nothing arrived: no inbox entry
                return None
            # The sink (the core) stores the file from the spool before its future resolves;
            # only then is the spool's copy removed.
            return await self._emit(FaxReceived(
                self.name, now, rx_tiff, report.pages, caller_num, report.remote_station,
                report.code == sp.T30_ERR.OK, f"{report.code_name}: {report.words}"))
        return None

    async def _emit(self, event: FaxEvent) -> bool:
        """Hand an event to the sink; True when it took it. An async sink (or the future it
        returns) is awaited before the next event, so events arrive in order and a received
        fax is stored before the call is over."""
        try:
            result = self._sink(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("fax event sink failed on %r", event)
            return False
        return True


def _slice(engine: BackToBack) -> bool:
    end = engine.samples + SLICE_SAMPLES
    while engine.samples < end:
        if engine.step():
            return True
    return False


async def _uncancellable_slice(engine: BackToBack) -> bool:
    """One slice in the worker thread. If our task is cancelled meanwhile, the thread still
    holds the engine: ask it to hang up (the slice's next step terminates the call, so the
    slice ends early), wait for the thread, and only then let the cancel through, so the
    engine is never freed under a running thread. The call's end is then not reported: a
    cancelled task is the loop going away, stop() and cancel() hang up without cancelling."""
    future = asyncio.get_running_loop().run_in_executor(None, _slice, engine)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        engine.hang_up()
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(future)
        raise

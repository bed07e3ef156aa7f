"""Inbound SMS and status reports of one modem: read, hand to the core, only then delete.

One worker task takes jobs in order (a ``+CMTI``/``+CDSI`` index, a ``+CDS``/``+CMT`` PDU, a
sweep of the whole storage), so three notices 1 ms apart are three reads, never a race.

* A part is deleted from the SIM (``AT+CMGD``) only after ``await sms_sink(event)`` returned.
  A sink that raises leaves it on the SIM; the next sweep (every poll) tries again.
* A PDU that cannot be decoded stays on the SIM, is named in the modem's status and skipped
  by later sweeps: nothing is deleted that nobody could store.
* A direct ``+CDS`` / ``+CMT`` is acknowledged with ``AT+CNMA`` (when ``AT+CSMS`` service 1
  requires it) after the sink returned, or refused with ``AT+CNMA=2`` so the SMSC delivers
  again; with service 0 the modem acknowledged it already, so a failed sink keeps it in a
  bounded retry list in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callcenter.sms.events import (
    ReportStatus,
    SmsLineEvent,
    SmsPartReceived,
    SmsStatusReport,
)

from . import pdu as pducodec
from .modem_parse import listing
from .port import AtCommandError, AtPort, AtPortError

log = logging.getLogger(__name__)

SmsSink = Callable[[SmsLineEvent], Awaitable[None]]
MAX_RETRY_EVENTS = 200


def report_status(st: int) -> ReportStatus:
    """TP-ST (23.040 §9.2.3.15): 0x00-0x1F done, 0x20-0x3F still trying, else failed."""
    if st <= 0x1F:
        return ReportStatus.DELIVERED
    if st <= 0x3F:
        return ReportStatus.PENDING
    return ReportStatus.FAILED


def to_event(
    line: str, p: pducodec.Pdu, raw: str, index: int | None, now: float
) -> SmsLineEvent | None:
    """The core's event for a decoded PDU; None for an SMS-SUBMIT (a sent copy on the SIM)."""
    if isinstance(p, pducodec.DeliverPdu):
        return SmsPartReceived(
            line=line,
            sender=p.sender,
            text=p.text,
            encoding=p.encoding,
            smsc_time=p.scts.timestamp() if p.scts else now,
            concat=p.concat,
            pdu=raw.upper(),
            storage_index=index,
            truncated=p.truncated,
        )
    if isinstance(p, pducodec.StatusReportPdu):
        return SmsStatusReport(
            line=line,
            message_ref=p.message_ref,
            recipient=p.recipient,
            status=report_status(p.status),
            status_code=p.status,
            discharge_time=p.discharge.timestamp() if p.discharge else None,
            pdu=raw.upper(),
            submitted_time=p.scts.timestamp() if p.scts else None,
        )
    return None


@dataclass(frozen=True, slots=True)
class _Read:
    mem: str
    index: int


@dataclass(frozen=True, slots=True)
class _Direct:
    pdu: str
    length: int | None
    ack: bool  # +CNMA is required


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


@dataclass(frozen=True, slots=True)
class _Event:
    event: SmsLineEvent


_Job = _Read | _Direct | _Sweep | _Event


class InboundSms:
    def __init__(
        self,
        line: str,
        port: AtPort,
        sink: SmsSink,
        *,
        storage: str = "SM",
        clock: Callable[[], float] = time.time,
        command_timeout: float = 10.0,
    ) -> None:
        self.line = line
        self.port = port
        self.sink = sink
        self.storage = storage  # the mem1 the init selected with AT+CPMS
        self.clock = clock
        self.timeout = command_timeout
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.kept: dict[tuple[str, int], str] = {}  # undecodable: (mem, index) -> PDU hex
        self._retry: deque[SmsLineEvent] = deque()
        self.retry_dropped = 0  # acknowledged reports/SMS lost: the retry list was full
        self.kept_direct: list[str] = []  # undecodable direct PDUs nobody can resend (hex)
        self.report_mem = ""  # "SR" in CDSI mode when reports are stored apart: swept too
        self.sink_failed = False  # a sink call failed; the next sweep tries again
        self.last_error = ""
        self.received = 0
        self.reports = 0
        self.idle = asyncio.Event()  # set while no job waits (tests and stop() wait on it)
        self.idle.set()

    # -- feeding ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sms-inbound {self.line}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _put(self, job: _Job) -> None:
        self.idle.clear()
        self._jobs.put_nowait(job)

    def notice(self, mem: str, index: int, *, report: bool = False) -> None:
        """``+CMTI: "SM",3`` or ``+CDSI: "SR",1``."""
        mem = mem.upper() or self.storage
        if report and mem != self.storage and mem.isalnum() and len(mem) <= 4:
            self.report_mem = mem  # where this modem keeps its reports: the sweep looks there
        self._put(_Read(mem, index))

    def direct(self, pdu: str, length: int | None, *, ack: bool) -> None:
        """``+CDS: <length>`` / ``+CMT: ,<length>`` followed by the PDU line."""
        self._put(_Direct(pdu, length, ack))

    def sweep(self) -> None:
        self._put(_Sweep())

    def event(self, ev: SmsLineEvent) -> None:
        """Any other event for the sink (a USSD reply), in order with the rest."""
        self._put(_Event(ev))

    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    # -- the worker ---------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await self._do(job)
            except asyncio.CancelledError:
                raise
            except AtPortError as exc:
                # the modem went away mid-job: the message is still on the SIM; the sweep
                # after the reopen reads it again
                self.last_error = f"reading an SMS failed: {exc}"
                log.warning("modem %s: %s", self.line, self.last_error)
            except Exception:
                self.last_error = "reading an SMS failed (see the log)"
                log.exception("modem %s: inbound job failed", self.line)
            finally:
                if self._jobs.empty():
                    self.idle.set()

    async def _do(self, job: _Job) -> None:
        if isinstance(job, _Read):
            await self._read(job.mem, job.index)
        elif isinstance(job, _Direct):
            await self._direct(job)
        elif isinstance(job, _Sweep):
            await self._sweep()
        else:
            await self._deliver(job.event)

    async def _deliver(self, ev: SmsLineEvent) -> bool:
        try:
            await self.sink(ev)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.sink_failed = True
            self.last_error = f"storing an inbound message failed: {type(exc).__name__}"
            log.warning("modem %s: sink refused %s: %r", self.line, type(ev).__name__, exc)
            return False
        if isinstance(ev, SmsPartReceived):
            self.received += 1
        elif isinstance(ev, SmsStatusReport):
            self.reports += 1
        return True

    async def _use_mem(self, mem: str) -> bool:
        """Point mem1 (read/delete) at ``mem``; True when it had to change."""
        if mem == self.storage:
            return False
        await self.port.command(
            f'AT+CPMS="{mem}"', timeout=self.timeout, expect=("+CPMS",), may_fail=True
        )
        return True

    async def _restore_mem(self) -> None:
        with contextlib.suppress(AtCommandError):
            await self.port.command(
                f'AT+CPMS="{self.storage}"', timeout=self.timeout, expect=("+CPMS",)
            )

    async def _read(self, mem: str, index: int) -> None:
        if not mem.isalnum() or len(mem) > 4:
            return  # a notice we cannot turn into a command safely
        switched = await self._use_mem(mem)
        try:
            try:
                resp = await self.port.command(
                    f"AT+CMGR={index}", timeout=self.timeout, expect=("+CMGR",), may_fail=True
                )
            except AtCommandError:
                return  # already read and deleted (a sweep got there first), or a bad index
            stored = listing(resp.lines, "+CMGR")
            if not stored:
                return  # empty slot
            await self._handle_stored(mem, index, stored[0].pdu, stored[0].length)
        finally:
            if switched:
                await self._restore_mem()

    async def _handle_stored(self, mem: str, index: int, raw: str, length: int | None) -> None:
        if (mem, index) in self.kept and self.kept[(mem, index)] == raw:
            return
        now = self.clock()
        try:
            decoded = pducodec.decode(raw, length)
        except pducodec.PduError as exc:
            self.kept[(mem, index)] = raw
            self.last_error = f"an SMS that cannot be decoded is kept on the SIM ({mem} {index})"
            log.warning("modem %s: undecodable PDU kept at %s %d: %s", self.line, mem, index, exc)
            return
        ev = to_event(self.line, decoded, raw, index, now)
        if ev is None:
            return  # a sent or draft message stored on the SIM: not ours to delete
        if await self._deliver(ev):
            await self.port.command(f"AT+CMGD={index}", timeout=self.timeout, may_fail=True)

    async def _direct(self, job: _Direct) -> None:
        now = self.clock()
        try:
            decoded = pducodec.decode(job.pdu, job.length)
        except pducodec.PduError as exc:
            log.warning("modem %s: undecodable direct PDU: %s", self.line, exc)
            self.last_error = "a status report or SMS could not be decoded"
            if job.ack:  # refuse it: the SMSC keeps it and tries again later
                await self.port.command("AT+CNMA=2", timeout=self.timeout, may_fail=True)
            elif len(self.kept_direct) < MAX_RETRY_EVENTS:
                # the modem took it already: this copy is the only one left, for an admin
                self.kept_direct.append(job.pdu[:1024])
                log.warning("modem %s: undecodable direct PDU kept: %s", self.line,
                            job.pdu[:1024])  # fmt: skip
            return
        ev = to_event(self.line, decoded, job.pdu, None, now)
        if ev is None:
            return
        ok = await self._deliver(ev)
        if job.ack:
            await self.port.command(
                "AT+CNMA" if ok else "AT+CNMA=2", timeout=self.timeout, may_fail=True
            )
        elif not ok:
            if len(self._retry) >= MAX_RETRY_EVENTS:
                # the modem acknowledged it already: nobody has it but this list
                dropped = self._retry.popleft()
                self.retry_dropped += 1
                self.last_error = (
                    f"{self.retry_dropped} acknowledged inbound message(s) lost: "
                    "the store refused them too long"
                )
                log.error("modem %s: retry list full, %s dropped (pdu %s)", self.line,
                          type(dropped).__name__, getattr(dropped, "pdu", "")[:400])  # fmt: skip
            self._retry.append(ev)

    async def _sweep(self) -> None:
        """Everything in the storage (AT+CMGL=4), and events a sink refused before."""
        self.sink_failed = False
        while self._retry:
            ev = self._retry.popleft()
            if not await self._deliver(ev):
                self._retry.appendleft(ev)
                break
        resp = await self.port.command(
            "AT+CMGL=4", timeout=max(self.timeout, 30.0), expect=("+CMGL",), may_fail=True
        )
        for stored in listing(resp.lines, "+CMGL"):
            if stored.index is not None:
                await self._handle_stored(self.storage, stored.index, stored.pdu, stored.length)
        mem = self.report_mem
        if mem and mem != self.storage:
            await self._sweep_mem(mem)

    async def _sweep_mem(self, mem: str) -> None:
        """The reports a +CDSI announced in a storage of their own ("SR") and whose notice was
        lost (sent while the port was reopening): read there, mem1 put back after."""
        try:
            switched = await self._use_mem(mem)
        except AtCommandError:
            self.report_mem = ""  # no such storage here: reports are where the SMS are
            return
        try:
            resp = await self.port.command(
                "AT+CMGL=4", timeout=max(self.timeout, 30.0), expect=("+CMGL",), may_fail=True
            )
            for stored in listing(resp.lines, "+CMGL"):
                if stored.index is not None:
                    await self._handle_stored(mem, stored.index, stored.pdu, stored.length)
        finally:
            if switched:
                await self._restore_mem()

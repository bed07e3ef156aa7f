"""A GSM modem on a real pseudo-terminal, byte for byte, for tests, benchmarks and the demo.

The product opens ``path`` (a symlink to the pty's slave, e.g. ``/tmp/x/modem0``) exactly like a
USB modem's ``/dev/ttyUSB2``. The emulator answers AT commands as the chosen family does (echo on
until ``ATE0``, ``\\r\\n`` framing, the ``> `` prompt of ``AT+CMGS``, Ctrl-Z/ESC), sends its URCs
(``+CMTI``, ``+CDS``/``+CDSI``, ``RING`` + ``+CLIP``, ``+CUSD``, Huawei ``^RSSI``/``^MODE``/
``^BOOT`` and ``^ORIG``/``^CONF``/``^CONN``/``^CEND``, Wavecom ``+WIND``, SIMCom/Quectel boot
lines), and takes faults on demand: no answer, an error instead of the answer, garbage bytes, a
URC inside a reply or inside the ``> `` prompt, and unplugging (the pty closes, the symlink
vanishes; plugging back makes a new pty behind the same path, and the modem has rebooted: echo on,
PIN asked again).

Every SMS it sends to the "network" goes to an append-only JSON-lines send log first (time,
modem, mr, destination, text, concat ref/seq/total, pdu), which is what the crash tests read to
prove that nothing was sent twice. Run in-process (``async with ModemEmulator(...)``) or as its
own process, ``python -m gsm.emulator --path /tmp/x/modem0 --control /tmp/x/ctl.sock`` (see
``gsm/emulator_control.py``), so it outlives a product killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gsm import emulator_pdu as P
from gsm.emulator_commands import handle
from gsm.emulator_families import FAMILIES, ModemConfig
from gsm.emulator_pty import PtyLink

log = logging.getLogger(__name__)

MAX_INPUT_LINE = 4096


_FAULTS = frozenset(
    {"no_answer", "error", "urc_in_reply", "urc_in_prompt", "lost_answer", "report_failed",
     "no_report", "late"}
)  # fmt: skip


@dataclass(slots=True)
class Fault:
    # "no_answer", "error" (text instead of the answer; for AT+CMGS after the PDU, nothing
    # sent), "urc_in_reply", "urc_in_prompt", "lost_answer" (AT+CMGS sent, answer never comes),
    # "report_failed" (the next sent part's report says TP-ST 0x41), "no_report" (it never comes),
    # "late" (the answer comes ``after`` seconds, real time; the commands behind it wait; for
    # AT+CMGS the "> " is late)
    kind: str
    command: str | None = None  # "AT+CMGS": only that command; None: the next command
    text: str = ""  # the error or the URC
    count: int = 1
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class SentSms:
    t: float
    modem: str
    mr: int
    destination: str
    text: str
    ref: int | None
    seq: int | None
    total: int | None
    pdu: str
    status_report: bool


@dataclass(slots=True)
class _Slot:
    stat: int  # 0 REC UNREAD, 1 REC READ
    pdu: str


@dataclass(slots=True)
class _Call:
    number: str
    answered: bool = False
    ended: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Volatile:
    """What a power cycle resets."""

    echo: bool = True
    cmee: int = 0
    pin_ok: bool = False
    cmgf: int = 0
    cnmi_mode: int = 2
    cnmi_mt: int = 0
    cnmi_bm: int = 0
    cnmi_ds: int = 0
    cnmi_bfr: int = 0
    clip: bool = False
    creg_n: int = 0
    cscs: str = "GSM"
    curc: bool = True  # Huawei periodic URCs on
    csms: int = 0  # 1: +CMT and +CDS must be acknowledged with AT+CNMA


class ModemEmulator:
    def __init__(
        self,
        path: str,
        config: ModemConfig | None = None,
        *,
        name: str | None = None,
        send_log: str | None = None,
    ) -> None:
        self.path = path
        self.config = config or ModemConfig()
        self.name = name or os.path.basename(path)
        self.fam = FAMILIES[self.config.family]
        self.send_log_path = send_log
        self._log_fd: int | None = None
        self.sent: list[SentSms] = []
        self.sim: dict[int, _Slot] = {}
        self.faults: list[Fault] = []
        self.commands: list[str] = []  # command names received, for the tests
        self.received_pdus: list[str] = []  # every PDU after a "> ", sent or not
        self.state = _Volatile(pin_ok=self.config.pin is None)
        self.plugged = False
        self.changed = asyncio.Event()  # set on every command answered / SMS sent (tests wait)
        self._link = PtyLink(path, self._data)
        self._inbuf = bytearray()
        self._text: asyncio.Future[bytes | None] | None = None
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._mr = itertools.count(1)
        self._ref = itertools.count(1)
        self._call: _Call | None = None
        self._pending_reports: deque[str] = deque()  # reports the link could not take yet
        self._pending_sms: deque[str] = deque()  # +CMT not acknowledged: the SMSC retries
        self._unacked: deque[tuple[str, str, asyncio.TimerHandle]] = deque()
        self.stored_at_start: list[int] = []
        self._boot_pending = False
        self._on_input: list[str] = []  # URCs written as soon as the DTE sends anything

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> ModemEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.send_log_path:
            self._log_fd = os.open(
                self.send_log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
            )
        self.plug()
        if self.config.periodic_interval and self.fam.periodic_urc:
            self._spawn(self._periodic())

    async def stop(self) -> None:
        self.unplug()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def plug(self, *, boot: bool = True) -> None:
        """Power up behind ``path``: a new pty, the symlink pointed at it, boot URCs."""
        if self.plugged:
            return
        self.state = _Volatile(pin_ok=self.config.pin is None)
        self._inbuf.clear()
        self._lines = asyncio.Queue()
        self._link.open()
        self.plugged = True
        self._worker = self._spawn(self._work())
        # Boot lines written now would sit in a pty nobody has opened, and opening flushes it;
        # a real USB modem's port also appears before its firmware talks. So they come with
        # the DTE's first command, ahead of the answer (a stress for URC routing in a probe).
        self._boot_pending = boot

    def unplug(self) -> None:
        """Pull the stick: the pty closes under the reader and the path disappears."""
        if not self.plugged:
            return
        self.plugged = False
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        if self._text is not None and not self._text.done():
            self._text.cancel()
        self._link.close()
        while self._unacked:
            self._requeue(self._unacked.popleft())

    async def replug(self, after: float) -> None:
        self.unplug()
        await asyncio.sleep(after)
        self.plug()

    # -- what tests and the control channel inject -------------------------------------------
    def urc(self, text: str) -> None:
        self._write(b"\r\n" + text.encode() + b"\r\n")

    def urc_on_next_input(self, *texts: str) -> None:
        """Write ``texts`` as URCs when the DTE next sends a byte, before reading it: after a
        reopen that is the product's ESC, while it settles (a +CDS the network held, "SMS
        Ready"). Lines written before the DTE opens the pty would be flushed by its open."""
        self._on_input += texts

    def garbage(self, data: bytes | None = None) -> None:
        self._write(
            data if data is not None else b"\r\n\xff\xfe\x80\x81\r\n\xc3\x28\xa0\r\n\xf0\x9f\r\n"
        )

    def fault(
        self,
        kind: str,
        *,
        command: str | None = None,
        text: str = "",
        count: int = 1,
        after: float = 0.0,
    ) -> None:
        if kind == "not_supported":
            kind, text = "error", text or "COMMAND NOT SUPPORT"
        if kind not in _FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        if kind == "error" and not text:
            text = "+CMS ERROR: 500"
        if kind in ("urc_in_reply", "urc_in_prompt") and not text:
            text = '+CMTI: "SM",1'
        self.faults.append(Fault(kind, command.upper() if command else None, text, count, after))

    def deliver_sms(
        self,
        sender: str,
        text: str,
        *,
        alphabet: str | None = None,
        ref: int | None = None,
        when: float | None = None,
        duplicate: bool = False,
        notify: bool = True,
    ) -> list[int]:
        """An SMS from the network: split into parts like a phone would, each stored in the SIM
        and announced (+CMTI per CNMI), or handed over directly (+CMT) when CNMI mt=2.
        ``duplicate``: the SMSC delivers every part twice. Returns the SIM slots used."""
        alpha, parts = P.split_text(text)
        alpha = alphabet or alpha
        if len(parts) > 1 and ref is None:
            ref = next(self._ref) & 0xFF
        when = time.time() if when is None else when
        slots: list[int] = []
        for seq, part in enumerate(parts, 1):
            concat = (ref, seq, len(parts)) if len(parts) > 1 and ref is not None else None
            pdu = P.encode_deliver(
                sender, part, smsc=self.config.smsc, when=when, alphabet=alpha, concat=concat
            )
            for _ in range(2 if duplicate else 1):
                slot = self._incoming(pdu, notify=notify)
                if slot is not None:
                    slots.append(slot)
        return slots

    def store_sms(self, sender: str, text: str, **kw: object) -> list[int]:
        """A message already in the SIM at power-up (no +CMTI)."""
        slots = self.deliver_sms(sender, text, notify=False, **kw)  # type: ignore[arg-type]
        self.stored_at_start += slots
        return slots

    def store_pdu(self, pdu: str, *, stat: int = 0, slot: int | None = None) -> int:
        """Put a raw PDU (even a broken one) into the SIM without announcing it."""
        if slot is None:
            slot = self._free_slot()
            if slot is None:
                raise RuntimeError("SIM full")
        self.sim[slot] = _Slot(stat, pdu)
        return slot

    def ring(self, number: str, *, rings: int = 3) -> None:
        """An incoming call: RING (+CLIP when enabled) every ring_interval, ``rings`` times; if
        nobody answers, the caller gives up."""
        if self._call is not None and not self._call.ended:
            raise RuntimeError("a call is already in progress")
        call = _Call(number)
        self._call = call
        call.task = self._spawn(self._ringing(call, rings))

    def caller_hangs_up(self) -> None:
        call = self._call
        if call is None or call.ended:
            return
        self._end_call(call)

    @property
    def input_pending(self) -> bytes:
        """What the DTE typed that no line end or Ctrl-Z has finished yet (tests)."""
        return bytes(self._inbuf)

    @property
    def held_reports(self) -> tuple[str, ...]:
        """Status-report PDUs the "SMSC" holds until CNMI routes them (tests)."""
        return tuple(self._pending_reports)

    # -- pty I/O ------------------------------------------------------------------------------
    def _data(self, data: bytes) -> None:
        if self._boot_pending and self.config.boot_on_input:
            self._boot_lines()
        texts, self._on_input = self._on_input, []
        for text in texts:
            self.urc(text)
        self._feed(data)
        self.changed.set()

    def _write(self, data: bytes) -> None:
        if self.plugged:
            self._link.write(data)

    def _boot_lines(self) -> None:
        self._boot_pending = False
        for urc in self.fam.boot_urcs:
            if urc == "+CPIN: READY" and not self.state.pin_ok:
                urc = "+CPIN: SIM PIN"
            self.urc(urc)

    def _feed(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._text is not None and not self._text.done():
                # text entry after "> ": up to Ctrl-Z (send) or ESC (cancel), echoed
                m = re.search(rb"[\x1a\x1b]", data[i:])
                end = len(data) if m is None else i + m.start()
                self._inbuf += data[i:end]
                if self.state.echo:
                    self._write(data[i:end])
                if m is None:
                    return
                body = bytes(self._inbuf)
                self._inbuf.clear()
                self._text.set_result(body if data[end] == 0x1A else None)
                i = end + 1
                continue
            j = data.find(b"\r", i)
            chunk = data[i:] if j < 0 else data[i : j + 1]
            if self.state.echo:
                self._write(chunk)
            if b"\x1b" in chunk:
                # ESC in command mode abandons the line typed so far
                self._inbuf.clear()
                chunk = chunk[chunk.rindex(b"\x1b") + 1 :]
            self._inbuf += chunk.replace(b"\n", b"")
            if j < 0:
                if len(self._inbuf) > MAX_INPUT_LINE:
                    self._inbuf.clear()
                return
            line = bytes(self._inbuf[:-1]).decode("ascii", errors="replace").strip()
            self._inbuf.clear()
            if line:
                if self._boot_pending:
                    self._boot_lines()
                self._lines.put_nowait(line)
            i = j + 1

    # -- the command worker -------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            line = await self._lines.get()
            try:
                await self._command(line)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("emulator %s: a command failed", self.name)
                self._final("ERROR")
            self.changed.set()

    def _take_fault(self, name: str, *kinds: str) -> Fault | None:
        for f in self.faults:
            if f.kind in kinds and (f.command is None or f.command == name):
                f.count -= 1
                if f.count <= 0:
                    self.faults.remove(f)
                return f
        return None

    async def _command(self, line: str) -> None:
        upper = line.upper()
        m = re.match(r"AT([+^$%][A-Z0-9]+|[A-Z]&?[A-Z]?)?", upper)
        name = "AT" + (m.group(1) or "") if m else upper
        if re.match(r"ATD", upper):
            name = "ATD"
        self.commands.append(name)
        if not upper.startswith("AT"):
            self._final("ERROR")
            return
        if self._take_fault(name, "no_answer"):
            return
        if name != "AT+CMGS":
            err = self._take_fault(name, "error")
            if err is not None:
                self._final(err.text)
                return
        inject = self._take_fault(name, "urc_in_reply")
        late = None if name == "AT+CMGS" else self._take_fault(name, "late")  # its "> " is late
        rest = line[len(name) :] if name != "ATD" else line[3:]
        reply = await self._dispatch(name, rest, upper)
        if reply is None:
            return
        lines, final = reply
        if late is not None:
            await asyncio.sleep(late.after)  # a busy modem: what the DTE sends next waits
        if inject is not None:
            # a URC and an information line look alike on the wire: "\r\n<text>\r\n"
            at = len(lines) // 2
            lines = [*lines[:at], inject.text, *lines[at:]]
        out = bytearray()
        for ln in lines:
            out += b"\r\n" + ln.encode() + b"\r\n"
        out += b"\r\n" + final.encode() + b"\r\n"
        self._write(bytes(out))
        if late is not None:
            # the command the DTE sent meanwhile starts a moment later, as on a modem, so its
            # answer is a read of its own and not glued to the late one
            await asyncio.sleep(0.002)

    def _final(self, text: str) -> None:
        self._write(b"\r\n" + text.encode() + b"\r\n")

    def _cme(self, code: int, text: str) -> tuple[list[str], str]:
        if self.state.cmee == 0:
            return [], "ERROR"
        return [], f"+CME ERROR: {code if self.state.cmee == 1 else text}"

    async def _dispatch(self, name: str, rest: str, upper: str) -> tuple[list[str], str] | None:
        return await handle(self, name, rest, upper)

    # -- SMS and calls, used by the handlers ---------------------------------------------------
    def _incoming(self, pdu: str, *, notify: bool) -> int | None:
        st = self.state
        if notify and st.cnmi_mt == 2 and self.plugged:
            self.urc(f"+CMT: ,{P.tpdu_length(pdu)}")
            self._write(pdu.encode() + b"\r\n")
            if st.csms == 1:
                self._expect_ack("sms", pdu)
            return None
        slot = self._free_slot()
        if slot is None:
            log.info("emulator %s: SIM full, SMS refused", self.name)
            return None
        self.sim[slot] = _Slot(0, pdu)
        if notify and st.cnmi_mt in (1, 3):
            self.urc(f'+CMTI: "SM",{slot}')
        return slot

    def _free_slot(self) -> int | None:
        first = self.fam.first_slot
        for i in range(first, first + self.config.sim_slots):
            if i not in self.sim:
                return i
        return None

    def _record_sent(self, sub: P.Submit, pdu: str) -> int:
        mr = next(self._mr) & 0xFF
        ref, seq, total = sub.concat if sub.concat else (None, None, None)
        rec = SentSms(time.time(), self.name, mr, sub.destination, sub.text, ref, seq, total,
                      pdu, sub.status_report)  # fmt: skip
        if self._log_fd is not None:
            line = json.dumps(
                {k: getattr(rec, k) for k in rec.__slots__}, ensure_ascii=False
            )  # one write of one line: O_APPEND keeps lines whole
            # No fsync: the crash tests kill the product, not the emulator, whose write is in
            # the kernel's page cache before "+CMGS:" is written; only a power cut could lose it.
            os.write(self._log_fd, line.encode() + b"\n")
        self.sent.append(rec)
        self.changed.set()
        if sub.status_report and not self._take_fault("AT+CMGS", "no_report"):
            failed = self._take_fault("AT+CMGS", "report_failed") is not None
            self._spawn(self._report_later(rec, failed))
        return mr

    async def _report_later(self, rec: SentSms, failed: bool) -> None:
        await asyncio.sleep(self.config.delay(self.config.report_delay))
        cfg = self.config
        failed = failed or rec.destination in cfg.failed_destinations or rec.seq in cfg.failed_seqs
        status = 0x41 if failed else cfg.report_status
        pdu = P.encode_status_report(rec.mr, rec.destination, smsc=self.config.smsc,
                                     submitted=rec.t, done=time.time(), status=status)  # fmt: skip
        self._report_to_dte(pdu)

    def _report_to_dte(self, pdu: str) -> None:
        self.changed.set()
        ds = self.state.cnmi_ds
        if not self.plugged or ds == 0:
            self._pending_reports.append(pdu)  # the SMSC tries again later
            return
        if ds == 2:
            slot = self._free_slot()
            if slot is None:
                self._pending_reports.append(pdu)
                return
            self.sim[slot] = _Slot(0, pdu)
            self.urc(f'+CDSI: "SM",{slot}')
        else:
            self.urc(f"+CDS: {P.tpdu_length(pdu)}")
            self._write(pdu.encode() + b"\r\n")
            if self.state.csms == 1:
                self._expect_ack("report", pdu)

    def flush_reports(self) -> None:
        """Deliver what the "SMSC" held while CNMI did not route it (after the DTE set CNMI)."""
        for _ in range(len(self._pending_reports)):
            if not (self.plugged and self.state.cnmi_ds):
                break
            self._report_to_dte(self._pending_reports.popleft())
        for _ in range(len(self._pending_sms)):
            if not (self.plugged and self.state.cnmi_mt):
                break
            self._incoming(self._pending_sms.popleft(), notify=True)

    # AT+CSMS=1: a +CMT/+CDS not acknowledged with AT+CNMA in time goes back to the network,
    # which delivers it again later, and (3GPP TS 27.005 §3.4.1) the modem sets CNMI <mt> and
    # <ds> to 0, so nothing more is routed until the DTE sets CNMI again (a restarted product).
    def _expect_ack(self, kind: str, pdu: str) -> None:
        loop = asyncio.get_running_loop()
        entry: list[tuple[str, str, asyncio.TimerHandle]] = []
        handle = loop.call_later(
            self.config.delay(self.config.cnma_timeout), lambda: self._ack_timeout(entry[0])
        )
        entry.append((kind, pdu, handle))
        self._unacked.append(entry[0])

    def _ack_timeout(self, entry: tuple[str, str, asyncio.TimerHandle]) -> None:
        if entry in self._unacked:
            self._unacked.remove(entry)
            self._requeue(entry)
            self.state.cnmi_mt = self.state.cnmi_ds = 0
            log.info("emulator %s: %s not acknowledged, CNMI routing off", self.name, entry[0])
            self.changed.set()

    def _requeue(self, entry: tuple[str, str, asyncio.TimerHandle]) -> None:
        kind, pdu, handle = entry
        handle.cancel()
        (self._pending_reports if kind == "report" else self._pending_sms).append(pdu)

    def acknowledge(self) -> bool:
        """AT+CNMA: the oldest unacknowledged +CMT/+CDS was taken. False: none expected."""
        if not self._unacked:
            return False
        self._unacked.popleft()[2].cancel()
        return True

    async def _ringing(self, call: _Call, rings: int) -> None:
        if self.fam.call_created:
            self.urc(self.fam.call_created)
        for _ in range(rings):
            if call.answered or call.ended:
                return
            self.urc("RING")
            if self.state.clip:
                self.urc(
                    f'+CLIP: "{call.number}",{145 if call.number.startswith("+") else 129},,,,0'
                )
            await asyncio.sleep(self.config.delay(self.config.ring_interval))
        if not call.answered and not call.ended:
            self._end_call(call)

    def _end_call(self, call: _Call) -> None:
        call.ended = True
        self.urc(self.fam.caller_gone)
        if self.fam.call_released:
            self.urc(self.fam.call_released)

    async def _periodic(self) -> None:
        assert self.config.periodic_interval is not None
        while True:
            await asyncio.sleep(self.config.delay(self.config.periodic_interval))
            if self.plugged and self.state.curc:
                self.urc(self.fam.periodic_urc.format(rssi=self.config.rssi))

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def read_text(self) -> bytes | None:
        """After the ``> ``: the bytes up to Ctrl-Z, or None for ESC."""
        self._text = asyncio.get_running_loop().create_future()
        try:
            return await self._text
        finally:
            self._text = None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (on events, not sleeps) until ``predicate()`` holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


if __name__ == "__main__":
    from gsm.emulator_control import main

    main()

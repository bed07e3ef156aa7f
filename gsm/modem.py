"""A GSM modem as a line: SMS in PDU mode with per-part delivery reports, USSD, incoming calls.

Built on the AT port of ``gsm/port.py`` (which owns reopening with backoff, the command queue,
URC routing and "down with a reason"). This module adds what a modem *means*:

* **init** on every (re)open: echo off, numeric errors, SIM PIN (the PIN is sent at most once
  per rejection-free life: a wrong PIN is never retried, three tries would block the SIM), PDU
  mode, new-message and status-report indications, storage, SMSC, caller ID, USSD, then a
  sweep of the messages already stored;
* a **poll** of signal, registration and operator, which also retries inbound messages a sink
  refused and re-runs the SIM part of the init while the SIM is not ready;
* :meth:`send_part`: ``AT+CMGS`` with TP-SRR set; ``+CMGS: <mr>`` is the part's reference, the
  key its status report comes back with. The outcome is exact: refused (SmsSendError,
  permanent or not by the +CMS code), unknown (the PDU left and no answer came:
  SmsSendUnknown, never re-sent), or not tried (LineUnavailable);
* inbound SMS and status reports (:mod:`gsm.modem_inbound`), incoming calls
  (:mod:`gsm.modem_calls`), USSD with the balance kept in :class:`ModemInfo`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from callcenter.errors import LineUnavailable
from callcenter.line_events import LineEvent
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from callcenter.sms.events import UssdReply
from callcenter.sms.ports import (
    ModemInfo,
    OutboundPart,
    SmsSendUnknown,
)

from . import modem_parse as mp
from .at import Final, Urc
from .modem_call_urcs import CallUrcs
from .modem_calls import CallSettings, CallTracker
from .modem_check import check_cold, check_running
from .modem_inbound import InboundSms, SmsSink
from .modem_send import encode_part, send_encoded
from .modem_settings import ModemPort, ModemSettings
from .modem_ussd import UssdClient
from .port import AtCommandError, AtPort, AtPortError, PortState

log = logging.getLogger(__name__)

_CALL_ENDS = ("NO CARRIER", "BUSY", "NO ANSWER", "^CEND")


class Modem(CallUrcs):
    kind = "gsm"

    def __init__(
        self,
        config: ModemSettings,
        *,
        sms_sink: SmsSink,
        call_sink: Callable[[LineEvent], None],
        clock: Callable[[], float] = time.time,
        on_late_result: Callable[[OutboundPart, int | None], None] | None = None,
    ) -> None:
        self.config = config
        self._on_late_result = on_late_result  # see send_part()
        self._late_tasks: set[asyncio.Task[int]] = set()
        self.late_results = 0  # cancelled sends whose PDU had gone out
        self.name = config.name
        self._sms_sink = sms_sink
        self._call_sink = call_sink
        self._clock = clock
        self._info = ModemInfo()
        self._port: AtPort | None = None
        self._inbound: InboundSms | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._calls = CallTracker(
            CallSettings(
                line=config.name,
                called_num=config.own_number,
                ring_extensions=config.ring_extensions,
                clip_wait=config.clip_wait,
                ring_gap=config.ring_gap,
            )
        )
        self._call_timer: asyncio.TimerHandle | None = None
        self._ussd = UssdClient(config.name, mode=config.ussd_mode,
                                command_timeout=config.command_timeout,
                                on_reply=self._on_ussd_reply)  # fmt: skip
        self._pin_rejected = False
        self._pin_sent = False  # AT+CPIN="…" went out and AT+CPIN? has not said READY since
        self._cpin_ready = asyncio.Event()  # +CPIN: READY said as a URC
        self._sim_problem = "SIM not checked yet"
        self._ack_direct = False  # AT+CSMS service 1: +CDS/+CMT need +CNMA
        self._report_mode = ""
        self._ever_up = False
        self._started_at = self._clock()
        self._last_error = ""
        self._sms_ready = False
        self._changed = asyncio.Event()  # set after the init and every poll: wait_ready()

    # -- SmsModem -----------------------------------------------------------------------------
    def info(self) -> ModemInfo:
        return self._info

    @property
    def ready(self) -> bool:
        return self._port is not None and self._port.is_up and self._why_not_ready() == ""

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until the modem may be given a part (up, SIM ready, registered)."""
        async with asyncio.timeout(timeout):
            while not self.ready:
                self._changed.clear()
                port = self._port
                if port is not None and not port.is_up:
                    await port.wait_up()
                    continue
                await self._changed.wait()

    async def wait_down(self, timeout: float | None = None) -> None:
        """Until the port is down (unplugged, timed out, refused): for tests and the pool."""
        async with asyncio.timeout(timeout):
            while self._port is not None and self._port.state is not PortState.DOWN:
                self._changed.clear()
                await self._changed.wait()

    def _on_port_state(self, state: PortState) -> None:
        if state is PortState.DOWN:
            self._sms_ready = False
            with contextlib.suppress(RuntimeError):  # no loop: stopping
                self._emit(self._calls.line_lost(self._clock()))
        self._changed.set()

    async def wait_up(self, timeout: float | None = None) -> None:
        """Until the port is open and the init ran (ready or not: see status())."""
        async with asyncio.timeout(timeout):
            while self._port is None or not self._port.is_up:
                if self._port is None:
                    raise LineUnavailable(f"modem {self.name} is not started")
                await self._port.wait_up()

    async def wait_inbound_idle(self) -> None:
        """Until every notice received so far was read, handed to the sink and deleted."""
        if self._inbound is not None:
            await self._inbound.idle.wait()

    def _why_not_ready(self) -> str:
        if not self._info.sim_ready:
            return self._sim_problem
        if not self._sms_ready:
            return "SMS set-up not done"
        if not self._info.registered:
            return "not registered on a network"
        return ""

    # -- Line ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._port is not None:
            return
        c = self.config
        port = ModemPort(
            c.path,
            name=c.name,
            baudrate=c.baudrate,
            on_up=self._on_up,
            on_state=self._on_port_state,
            backoff_initial=c.backoff_initial,
            backoff_max=c.backoff_max,
        )
        self._port = port
        self._inbound = InboundSms(
            c.name,
            port,
            self._sms_sink,
            storage=c.storage,
            clock=self._clock,
            command_timeout=c.command_timeout,
        )
        subs = {
            "+CMTI": self._on_cmti,
            "+CDSI": self._on_cdsi,
            "+CDS": self._on_direct,
            "+CMT": self._on_direct,
            "RING": self._on_ring,
            "+CRING": self._on_cring,
            "+CLIP": self._on_clip,
            "^CONN": self._on_conn,
            "VOICE CALL": self._on_voice_call,  # SIM7600: BEGIN when answered, END: <time>
            "+WIND": self._on_wind,  # Wavecom: 6,<id> = call released
            "+CUSD": self._ussd.on_cusd,
            "+CREG": self._on_creg,
            "^RSSI": self._on_rssi,
            "+CPIN": self._on_cpin_urc,
        }
        for prefix in _CALL_ENDS:
            subs[prefix] = self._on_call_end
        for prefix, cb in subs.items():
            port.subscribe(prefix, cb)
        self._inbound.start()
        await port.start()
        self._tasks.append(asyncio.create_task(self._poll_loop(), name=f"modem-poll {c.name}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._call_timer is not None:
            self._call_timer.cancel()
            self._call_timer = None
        self._emit(self._calls.line_lost(self._clock()))
        if self._inbound is not None:
            await self._inbound.stop()
        if self._port is not None:
            await self._port.stop()
        self._port = None
        self._inbound = None

    def status(self) -> LineStatus:
        port = self._port
        if port is None:
            return LineStatus(self.name, self.kind, LineState.STOPPED, "", self._last_error,
                              self._started_at)  # fmt: skip
        ps = port.status()
        last_error = ps.last_error or self._last_error
        if self._inbound is not None and self._inbound.last_error:
            last_error = last_error or self._inbound.last_error
        if ps.state is not PortState.UP:
            state = LineState.DOWN if self._ever_up else LineState.STARTING
            return LineStatus(self.name, self.kind, state, ps.reason, last_error, ps.since)
        problems = self._problems()
        state = LineState.DEGRADED if problems else LineState.UP
        return LineStatus(
            self.name, self.kind, state, "; ".join([self._detail(), *problems]), last_error,
            ps.since,
        )  # fmt: skip

    def _detail(self) -> str:
        i = self._info
        parts = []
        if i.signal_dbm is not None:
            parts.append(f"signal {i.signal_dbm} dBm")
        if i.operator:
            parts.append(i.operator + (" (roaming)" if i.roaming else ""))
        if i.model:
            parts.append(i.model)
        return ", ".join(parts)

    def _problems(self) -> list[str]:
        out = []
        why = self._why_not_ready()
        if why:
            out.append(why)
        elif not self._info.smsc:
            out.append("no SMSC address on the SIM")
        i = self._info
        if i.signal_dbm is not None and i.signal_dbm < self.config.weak_signal_dbm:
            out.append("weak signal")
        inbound = self._inbound
        if inbound is not None:
            if inbound.kept:
                out.append(f"{len(inbound.kept)} undecodable SMS kept on the SIM")
            if inbound.sink_failed:
                out.append("an inbound SMS could not be stored yet (kept on the SIM)")
            if inbound.kept_direct:
                out.append(f"{len(inbound.kept_direct)} undecodable direct SMS/report(s) "
                           "kept in the log")  # fmt: skip
            if inbound.retry_dropped:
                out.append(f"{inbound.retry_dropped} acknowledged inbound message(s) lost "
                           "(the store refused them too long)")  # fmt: skip
        if self.late_results:
            out.append(f"{self.late_results} cancelled send(s) answered late")
        return out

    async def check(self) -> CheckResult:
        """AT, model, IMEI, SIM state. On a running modem through its own queue (a command
        among the others, nothing reset); otherwise on a port opened for the test only."""
        c = self.config
        if self._port is not None:
            return await check_running(self._port, c.command_timeout)
        return await check_cold(c)

    # -- init ---------------------------------------------------------------------------------
    async def _on_up(self, port: AtPort) -> None:
        t = self.config.command_timeout
        self._sms_ready = False
        await port.command("ATE0", timeout=t, urgent=True, check=False)
        await port.command("AT+CMEE=1", timeout=t, urgent=True, check=False)
        if not self._info.model:
            model = await self._value(port, "AT+CGMM", urgent=True)
            imei = await self._value(port, "AT+CGSN", urgent=True)
            self._info = dataclasses.replace(self._info, model=model, imei=imei)
        await self._init_sim(port, urgent=True)
        await self._poll_once(port, urgent=True)
        self._ever_up = True
        self._changed.set()
        if self._inbound is not None and self._sms_ready:
            self._inbound.sweep()  # messages stored while we were away

    async def _value(self, port: AtPort, cmd: str, *, urgent: bool) -> str:
        resp = await port.command(cmd, timeout=self.config.command_timeout, urgent=urgent,
                                  check=False, may_fail=True)  # fmt: skip
        if resp.final is not Final.OK:
            return ""
        return mp.first_value(resp.lines)

    async def _init_sim(self, port: AtPort, *, urgent: bool) -> None:
        c = self.config
        t = c.command_timeout
        state = await self._sim_state(port, urgent=urgent)
        if state == "READY":
            self._pin_sent = False  # taken (or not needed): a reboot may ask for it once more
        elif state == "SIM PIN" and c.pin and (self._pin_sent or self._pin_rejected):
            # Sent once and the SIM still asks: whatever the answer was (an error, a timeout and
            # a reopen, OK without effect) a second try would bring the SIM closer to its PUK.
            self._pin_rejected = True
            self._sim_problem = (
                "SIM PIN rejected: not tried again (check the PIN in the modem's settings)"
            )
            self._last_error = self._sim_problem
        elif state == "SIM PIN" and c.pin:
            if not c.pin.isdigit() or not 4 <= len(c.pin) <= 8:
                self._sim_problem = "the SIM PIN setting is not 4-8 digits"
                return
            self._pin_sent = True  # before the command: a timeout must not lead to a re-send
            self._cpin_ready.clear()
            try:
                await port.command(f'AT+CPIN="{c.pin}"', timeout=t, urgent=urgent)
            except AtCommandError:
                self._pin_rejected = True
                self._sim_problem = "SIM PIN rejected: not tried again (check the PIN)"
                self._last_error = self._sim_problem
                return
            for _ in range(c.sim_ready_tries):
                state = await self._sim_state(port, urgent=urgent)
                if state != "SIM PIN" and state != "SIM BUSY":
                    break
                # the SIM takes a moment after the PIN; some modems say +CPIN: READY when done
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cpin_ready.wait(), c.sim_ready_wait)
            if state == "READY":
                self._pin_sent = False
            elif state == "SIM PIN":
                self._pin_rejected = True
                self._sim_problem = (
                    "SIM PIN not taken (the SIM still asks for it): not tried again "
                    "(check the PIN in the modem's settings)"
                )
                self._last_error = self._sim_problem
        if state != "READY":
            self._info = dataclasses.replace(self._info, sim_ready=False)
            if state == "SIM PUK":
                self._sim_problem = "SIM blocked: it needs the PUK (unblock it in a phone)"
            elif state == "SIM PIN" and not c.pin:
                self._sim_problem = "SIM asks for a PIN: set it in the modem's settings"
            elif not self._pin_rejected:
                self._sim_problem = f"SIM not ready ({state[:40]})"
            return
        self._info = dataclasses.replace(self._info, sim_ready=True)
        self._sim_problem = ""
        await self._init_sms(port, urgent=urgent)

    async def _sim_state(self, port: AtPort, *, urgent: bool) -> str:
        try:
            resp = await port.command("AT+CPIN?", timeout=self.config.command_timeout,
                                      urgent=urgent, expect=("+CPIN",), may_fail=True)  # fmt: skip
        except AtCommandError as exc:
            if exc.code == 10:
                return "SIM not inserted"
            if exc.code == 14:
                return "SIM BUSY"
            return f"SIM not usable ({exc.response.final_text})"
        args = resp.first("+CPIN")
        return args[0].upper() if args else "unknown"

    async def _init_sms(self, port: AtPort, *, urgent: bool) -> None:
        c = self.config
        t = c.command_timeout

        async def opt(cmd: str, expect: tuple[str, ...] | None = None) -> bool:
            resp = await port.command(cmd, timeout=t, urgent=urgent, check=False,
                                      may_fail=True, expect=expect)  # fmt: skip
            return resp.final is Final.OK

        await port.command("AT+CMGF=0", timeout=t, urgent=urgent)  # PDU mode, or no SMS at all
        await opt(f'AT+CPMS="{c.storage}","{c.storage}","{c.storage}"', ("+CPMS",))
        csms = await port.command("AT+CSMS?", timeout=t, urgent=urgent, check=False,
                                  may_fail=True, expect=("+CSMS",))  # fmt: skip
        args = csms.first("+CSMS")
        self._ack_direct = bool(args) and args[0] == "1"
        modes = {"cdsi": ["2,1,0,2,0"], "cds": ["2,1,0,1,0"]}.get(
            c.status_reports, ["2,1,0,2,0", "2,1,0,1,0"]
        )
        self._report_mode = ""
        for m in modes:
            if await opt(f"AT+CNMI={m}"):
                self._report_mode = "cdsi" if m.endswith("2,0") else "cds"
                break
        if not self._report_mode:
            # new-message notices are essential; reports alone may be unsupported
            await port.command("AT+CNMI=2,1,0,0,0", timeout=t, urgent=urgent)
            self._report_mode = "none"
            self._last_error = "the modem refuses delivery-report indications (AT+CNMI)"
        if self._inbound is not None:
            # stored reports may live apart ("SR"); swept there unless the modem refuses it
            self._inbound.report_mem = "SR" if self._report_mode == "cdsi" else ""
        csca = await port.command("AT+CSCA?", timeout=t, urgent=urgent, check=False,
                                  may_fail=True, expect=("+CSCA",))  # fmt: skip
        smsc_args = csca.first("+CSCA")
        self._info = dataclasses.replace(self._info, smsc=smsc_args[0][:24] if smsc_args else "")
        await opt("AT+CLIP=1")
        await opt("AT+CREG=1")
        await opt("AT+CUSD=1")
        await opt("AT+COPS=3,0")
        self._sms_ready = True

    # -- poll ---------------------------------------------------------------------------------
    async def _poll_once(self, port: AtPort, *, urgent: bool = False) -> None:
        t = self.config.command_timeout
        # Standard commands every modem has: errors count towards the port's error limit, so a
        # modem that answers +CME ERROR to everything is reset (not during the init: urgent).
        kw = {"timeout": t, "urgent": urgent, "check": False, "wait": urgent}
        csq = await port.command("AT+CSQ", expect=("+CSQ",), **kw)
        creg = await port.command("AT+CREG?", expect=("+CREG",), **kw)
        cops = await port.command("AT+COPS?", expect=("+COPS",), **kw)
        info = self._info
        args = csq.first("+CSQ")
        if args is not None:
            info = dataclasses.replace(info, signal_dbm=mp.csq_dbm(args))
        args = creg.first("+CREG")
        reg = mp.creg(args, urc=False) if args else None
        if reg is not None:
            info = dataclasses.replace(info, registered=reg.registered, roaming=reg.roaming)
        args = cops.first("+COPS")
        if args is not None:
            info = dataclasses.replace(info, operator=mp.cops_operator(args))
        self._info = info

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            port = self._port
            if port is None:
                return
            if not port.is_up:
                self._emit(self._calls.line_lost(self._clock()))
                continue
            try:
                if not self._info.sim_ready or not self._sms_ready:
                    await self._init_sim(port, urgent=False)
                await self._poll_once(port)
                self._changed.set()
                inbound = self._inbound
                # The sweep is the safety net for a notice lost while the port was reopening
                # and the retry of a sink that failed; one at a time.
                if inbound is not None and self._sms_ready and inbound.pending == 0:
                    inbound.sweep()
            except AtPortError as exc:
                log.info("modem %s: poll failed: %s", self.name, exc)
            except Exception:
                # a bug or an answer nobody foresaw: the poll (and the SIM retry and the
                # inbound sweep it carries) must not stop unseen
                log.exception("modem %s: poll failed", self.name)
                self._last_error = "the modem's poll failed unexpectedly (see the log)"

    # -- sending ------------------------------------------------------------------------------
    def _require_up(self) -> AtPort:
        port = self._port
        if port is None:
            raise LineUnavailable(f"modem {self.name} is not started")
        if not port.is_up:
            raise LineUnavailable(f"modem {self.name} is down: {port.status().reason}")
        return port

    async def send_part(self, part: OutboundPart) -> int:
        """LineUnavailable when the modem is down or not ready at the call: nothing written.
        A part queued behind other commands when the modem drops waits in the port's queue
        for the reopen (never written twice). See :mod:`gsm.modem_send` for the answers.

        Cancelled (the pool stopping, a job cancelled): before its PDU was written the command
        is withdrawn (nothing is sent). After, the command runs on in the modem's own task and
        its outcome goes to ``on_late_result(part, mr)`` — ``mr`` None when it stays unknown
        (refused, or no answer) — so the pool can still match the part's report; without that
        callback it is logged, and counted in status()."""
        port = self._require_up()
        why = self._why_not_ready()
        if why:
            raise LineUnavailable(f"modem {self.name} cannot send: {why}")
        enc = encode_part(part)
        in_doubt = port.in_doubt
        task = asyncio.create_task(
            send_encoded(port, enc, self.config, self.name), name=f"modem-send {self.name}"
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            if not port.pdu_written_for(enc.hex):
                task.cancel()  # queued or at its "> ": withdrawn, ESC instead of the PDU
            task.add_done_callback(lambda t: self._late_result(part, t, port, in_doubt))
            self._late_tasks.add(task)
            task.add_done_callback(self._late_tasks.discard)
            raise

    def _late_result(
        self, part: OutboundPart, task: asyncio.Task[int], port: AtPort, in_doubt: int
    ) -> None:
        if task.cancelled():
            if port.in_doubt == in_doubt:
                return  # withdrawn in time: nothing was sent
            mr: int | None = None  # the prompt won the race: the PDU went, its answer is lost
        elif task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, SmsSendUnknown):
                return  # refused or never written: nothing went out
            mr = None
        else:
            mr = task.result()
        self.late_results += 1
        log.warning("modem %s: a cancelled send's outcome came late: %s", self.name,
                    "unknown" if mr is None else f"message reference {mr}")  # fmt: skip
        if self._on_late_result is None:
            return
        try:
            self._on_late_result(part, mr)
        except Exception:
            log.exception("modem %s: on_late_result failed", self.name)

    # -- USSD ---------------------------------------------------------------------------------
    async def ussd(self, code: str, timeout: float | None = None) -> str:
        """The reply's text; the balance in :meth:`info` is the reply to ``balance_code``
        only (a tariff's "300 руб/мес" is not a balance). Default timeout: ``ussd_timeout``."""
        port = self._require_up()
        if timeout is None:
            timeout = self.config.ussd_timeout
        reply = await self._ussd.request(port, code, timeout)
        if code == self.config.balance_code:
            self._info = dataclasses.replace(self._info, balance=reply.text[:160])
        return reply.text

    def _on_ussd_reply(self, reply: UssdReply) -> None:
        if self._inbound is not None:
            self._inbound.event(reply)

    # -- URCs ---------------------------------------------------------------------------------
    def _on_cmti(self, urc: Urc) -> None:
        args = urc.args
        if self._inbound is None or len(args) < 2 or not args[1].isdigit():
            return
        self._inbound.notice(args[0], int(args[1]))

    def _on_cdsi(self, urc: Urc) -> None:
        args = urc.args
        if self._inbound is None or len(args) < 2 or not args[1].isdigit():
            return
        self._inbound.notice(args[0], int(args[1]), report=True)

    def _on_direct(self, urc: Urc) -> None:
        if self._inbound is None or not urc.pdu:
            return
        args = urc.args
        length = int(args[-1]) if args and args[-1].isdigit() else None
        self._inbound.direct(urc.pdu, length, ack=self._ack_direct)

    def _on_creg(self, urc: Urc) -> None:
        reg = mp.creg(urc.args, urc=True)
        if reg is not None:
            self._info = dataclasses.replace(
                self._info, registered=reg.registered, roaming=reg.roaming
            )
            self._changed.set()

    def _on_rssi(self, urc: Urc) -> None:
        dbm = mp.csq_dbm(urc.args)
        if dbm is not None:
            self._info = dataclasses.replace(self._info, signal_dbm=dbm)

    def _on_cpin_urc(self, urc: Urc) -> None:
        args = urc.args
        if args and args[0].upper() == "READY":
            self._cpin_ready.set()
        if args and args[0].upper() != "READY":
            self._info = dataclasses.replace(self._info, sim_ready=False)
            self._sim_problem = f"SIM reports {args[0][:20]}"
            self._sms_ready = False

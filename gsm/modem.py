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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.errors import LineUnavailable
from callcenter.line_events import LineEvent
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from callcenter.sms.events import UssdReply
from callcenter.sms.ports import (
    ModemInfo,
    OutboundPart,
    SmsSendError,
    SmsSendUnknown,
    UssdError,
)

from . import modem_parse as mp
from . import pdu as pducodec
from .at import Final, Urc
from .modem_calls import CallSettings, CallTracker
from .modem_inbound import InboundSms, SmsSink
from .port import AtCommandError, AtPort, AtPortError, PortDown, PortState
from .ussd import UssdMode, decode_reply, encode_request, parse_balance

log = logging.getLogger(__name__)

_CALL_ENDS = ("NO CARRIER", "BUSY", "NO ANSWER", "^CEND")


@dataclass(slots=True)
class ModemConfig:
    name: str
    path: str
    baudrate: int = 115200
    pin: str = field(default="", repr=False)  # write-only secret: never logged, never shown
    storage: str = "SM"  # where new messages are stored and read (AT+CPMS)
    status_reports: str = "auto"  # "cdsi" (stored, +CDSI), "cds" (direct, +CDS), "auto"
    ussd_mode: UssdMode = UssdMode.AUTO  # AUTO: send packed, read whatever comes
    balance_code: str = "*100#"
    own_number: str = ""  # the SIM's number: the "called" number of its incoming calls
    ring_extensions: tuple[str, ...] = ()
    poll_interval: float = 30.0
    command_timeout: float = 10.0
    send_timeout: float = 60.0  # AT+CMGS waits for the network's RP-ACK
    ussd_timeout: float = 30.0
    clip_wait: float = 1.5
    ring_gap: float = 8.0
    weak_signal_dbm: int = -105
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    sim_ready_tries: int = 10  # after the PIN, AT+CPIN? until READY, a second apart
    check_timeout: float = 8.0


class Modem:
    kind = "gsm"

    def __init__(
        self,
        config: ModemConfig,
        *,
        sms_sink: SmsSink,
        call_sink: Callable[[LineEvent], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
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
        self._ussd_lock = asyncio.Lock()
        self._ussd_waiter: asyncio.Future[UssdReply] | None = None
        self._pin_rejected = False
        self._sim_problem = "SIM not checked yet"
        self._ack_direct = False  # AT+CSMS service 1: +CDS/+CMT need +CNMA
        self._report_mode = ""
        self._ever_up = False
        self._started_at = self._clock()
        self._last_error = ""
        self._sms_ready = False

    # -- SmsModem -----------------------------------------------------------------------------
    def info(self) -> ModemInfo:
        return self._info

    @property
    def ready(self) -> bool:
        return self._port is not None and self._port.is_up and self._why_not_ready() == ""

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
        port = AtPort(
            c.path,
            name=c.name,
            baudrate=c.baudrate,
            on_up=self._on_up,
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
            "+CDSI": self._on_cmti,
            "+CDS": self._on_direct,
            "+CMT": self._on_direct,
            "RING": self._on_ring,
            "+CRING": self._on_ring,
            "+CLIP": self._on_clip,
            "^CONN": self._on_conn,
            "+CUSD": self._on_cusd,
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
        return out

    async def check(self) -> CheckResult:
        """AT, model, IMEI, SIM state. On a running modem through its own queue (a command
        among the others, nothing reset); otherwise on a port opened for the test only."""
        port = self._port
        if port is not None:
            if not port.is_up:
                st = port.status()
                return CheckResult(False, "modem not answering", {"state": st.state.value},
                                   error=st.reason or "down", hint="is it plugged in?")  # fmt: skip
            return await self._check_on(port)
        c = self.config
        if not os.path.exists(c.path):
            return CheckResult(False, "device not found", error=f"{c.path} does not exist",
                               hint="plug the modem in, or check the device path")  # fmt: skip
        temp = AtPort(c.path, name=f"{c.name} (check)", baudrate=c.baudrate,
                      backoff_initial=c.backoff_initial, backoff_max=c.backoff_max)  # fmt: skip
        await temp.start()
        try:
            try:
                await asyncio.wait_for(temp.wait_up(), c.check_timeout)
            except TimeoutError:
                st = temp.status()
                return CheckResult(False, "modem not answering", error=st.reason or "no answer",
                                   hint="check the port path and baud rate")  # fmt: skip
            return await self._check_on(temp)
        finally:
            await temp.stop()

    async def _check_on(self, port: AtPort) -> CheckResult:
        facts: dict[str, str] = {}
        t = self.config.command_timeout

        async def ask(cmd: str, key: str) -> AtCommandError | None:
            try:
                resp = await port.command(cmd, timeout=t, may_fail=True)
            except AtCommandError as exc:
                return exc
            value = next((ln for ln in resp.lines if ln), "")
            facts[key] = value.split(":", 1)[-1].strip()[:64] if value.startswith("+") else value
            return None

        try:
            await ask("AT+CGMI", "manufacturer")
            await ask("AT+CGMM", "model")
            await ask("AT+CGSN", "IMEI")
            sim_err = await ask("AT+CPIN?", "SIM")
        except AtPortError as exc:
            return CheckResult(False, "modem stopped answering", facts, error=str(exc))
        if sim_err is not None:
            facts["SIM"] = sim_err.response.final_text
            return CheckResult(False, "modem answers, SIM not usable", facts,
                               error=sim_err.response.final_text,
                               hint="insert the SIM card, or check it in a phone")  # fmt: skip
        if facts.get("SIM") != "READY":
            return CheckResult(False, "modem answers, SIM locked", facts,
                               error=f"SIM says {facts.get('SIM')!r}",
                               hint="set the SIM PIN in the modem's settings")  # fmt: skip
        summary = " ".join(v for v in (facts.get("manufacturer"), facts.get("model")) if v)
        return CheckResult(True, summary or "modem answers", facts)

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
        if self._inbound is not None and self._sms_ready:
            self._inbound.sweep()  # messages stored while we were away

    async def _value(self, port: AtPort, cmd: str, *, urgent: bool) -> str:
        resp = await port.command(cmd, timeout=self.config.command_timeout, urgent=urgent,
                                  check=False, may_fail=True)  # fmt: skip
        if resp.final is not Final.OK:
            return ""
        value = next((ln for ln in resp.lines if ln), "")
        return (value.split(":", 1)[-1].strip() if value.startswith("+") else value)[:64]

    async def _init_sim(self, port: AtPort, *, urgent: bool) -> None:
        c = self.config
        t = c.command_timeout
        state = await self._sim_state(port, urgent=urgent)
        if state == "SIM PIN" and c.pin and not self._pin_rejected:
            if not c.pin.isdigit() or not 4 <= len(c.pin) <= 8:
                self._sim_problem = "the SIM PIN setting is not 4-8 digits"
                return
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
                await asyncio.sleep(1.0)  # the SIM takes a moment after the PIN
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
        kw = {"timeout": t, "urgent": urgent, "check": False, "may_fail": True, "wait": urgent}
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
                inbound = self._inbound
                if inbound is not None and self._sms_ready and (
                    inbound.sink_failed or inbound.pending == 0
                ):
                    inbound.sweep()
            except AtPortError as exc:
                log.info("modem %s: poll failed: %s", self.name, exc)

    # -- sending ------------------------------------------------------------------------------
    def _require_up(self) -> AtPort:
        port = self._port
        if port is None:
            raise LineUnavailable(f"modem {self.name} is not started")
        if not port.is_up:
            raise LineUnavailable(f"modem {self.name} is down: {port.status().reason}")
        return port

    async def send_part(self, part: OutboundPart) -> int:
        port = self._require_up()
        why = self._why_not_ready()
        if why:
            raise LineUnavailable(f"modem {self.name} cannot send: {why}")
        try:
            enc = pducodec.submit_for_part(
                part.to, part.text, part.encoding, seq=part.seq, total=part.total,
                concat_ref=part.concat_ref, status_report=part.status_report,
            )  # fmt: skip
        except pducodec.PduError as exc:
            raise SmsSendError(f"cannot encode the part: {exc}", permanent=True) from None
        try:
            resp = await port.command(
                f"AT+CMGS={enc.tpdu_length}", pdu=enc.hex, timeout=self.config.send_timeout,
                prompt_timeout=self.config.command_timeout, expect=("+CMGS",), wait=False,
            )  # fmt: skip
        except AtCommandError as exc:
            r = exc.response
            if r.final is Final.CMS_ERROR:
                if r.code in mp.CMS_UNKNOWN_OUTCOME:
                    raise SmsSendUnknown(
                        f"{mp.cms_error(r.code)[0]}: the part may have reached the SMSC"
                    ) from None
                reason, permanent = mp.cms_error(r.code, r.final_text)
                raise SmsSendError(reason, code=r.code, permanent=permanent) from None
            raise SmsSendError(f"modem refused AT+CMGS ({r.final_text})", code=r.code) from None
        except PortDown as exc:
            if exc.pdu_written:
                raise SmsSendUnknown(f"no answer after the PDU was written ({exc.reason})") from None
            raise LineUnavailable(f"modem {self.name}: {exc.reason}") from None
        args = resp.first("+CMGS")
        if not args or not args[0].isdigit():
            raise SmsSendUnknown("the modem said OK without a message reference")
        return int(args[0])

    # -- USSD ---------------------------------------------------------------------------------
    async def ussd(self, code: str, timeout: float = 30.0) -> str:
        port = self._require_up()
        mode = self.config.ussd_mode
        try:
            request, dcs = encode_request(code, UssdMode.PACKED if mode is UssdMode.AUTO else mode)
        except ValueError as exc:
            raise UssdError(str(exc)) from None
        async with self._ussd_lock:
            fut: asyncio.Future[UssdReply] = asyncio.get_running_loop().create_future()
            self._ussd_waiter = fut
            try:
                await port.command(f'AT+CUSD=1,"{request}",{dcs}', expect=("+CUSD",),
                                   timeout=self.config.command_timeout, wait=False)  # fmt: skip
                reply = await asyncio.wait_for(fut, timeout)
            except AtCommandError as exc:
                raise UssdError(f"the modem refused the USSD request ({exc.response.final_text})")
            except PortDown as exc:
                raise LineUnavailable(f"modem {self.name}: {exc.reason}") from None
            except TimeoutError:
                with contextlib.suppress(AtPortError):
                    await port.command("AT+CUSD=2", timeout=self.config.command_timeout,
                                       check=False, may_fail=True, wait=False)  # fmt: skip
                raise UssdError(f"no USSD reply within {timeout:g} s") from None
            finally:
                self._ussd_waiter = None
        if reply.status == 4:
            raise UssdError("the network does not support this USSD request")
        if reply.status == 5 or (reply.status == 2 and not reply.text):
            raise UssdError("the network ended the USSD session without an answer")
        if code == self.config.balance_code or parse_balance(reply.text).amount is not None:
            self._info = dataclasses.replace(self._info, balance=reply.text[:160])
        return reply.text

    # -- calls --------------------------------------------------------------------------------
    async def answer(self) -> None:
        """ATA: pick up the call that rings on this modem."""
        port = self._require_up()
        try:
            await port.command("ATA", timeout=self.config.command_timeout, wait=False)
        except AtCommandError as exc:
            raise LineUnavailable(f"cannot answer: {exc.response.final_text}") from None
        self._emit(self._calls.answered(self._clock()))

    def _emit(self, events: list[LineEvent]) -> None:
        for ev in events:
            try:
                self._call_sink(ev)
            except Exception:
                log.exception("modem %s: call sink failed on %s", self.name, type(ev).__name__)
        self._arm_call_timer()

    def _arm_call_timer(self) -> None:
        if self._call_timer is not None:
            self._call_timer.cancel()
            self._call_timer = None
        deadline = self._calls.next_deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self._clock())
        self._call_timer = asyncio.get_running_loop().call_later(delay, self._call_tick)

    def _call_tick(self) -> None:
        self._call_timer = None
        self._emit(self._calls.advance(self._clock()))

    # -- URCs ---------------------------------------------------------------------------------
    def _on_cmti(self, urc: Urc) -> None:
        args = urc.args
        if self._inbound is None or len(args) < 2 or not args[1].isdigit():
            return
        self._inbound.notice(args[0], int(args[1]))

    def _on_direct(self, urc: Urc) -> None:
        if self._inbound is None or not urc.pdu:
            return
        args = urc.args
        length = int(args[-1]) if args and args[-1].isdigit() else None
        self._inbound.direct(urc.pdu, length, ack=self._ack_direct)

    def _on_ring(self, urc: Urc) -> None:
        self._emit(self._calls.ring(self._clock()))

    def _on_clip(self, urc: Urc) -> None:
        self._emit(self._calls.clip(mp.clip(urc.args), self._clock()))

    def _on_conn(self, urc: Urc) -> None:
        self._emit(self._calls.answered(self._clock()))

    def _on_call_end(self, urc: Urc) -> None:
        self._emit(self._calls.ended(self._clock(), urc.line[:60]))

    def _on_cusd(self, urc: Urc) -> None:
        c = mp.cusd(urc.args)
        text = decode_reply(c.text, c.dcs, self.config.ussd_mode) if c.text else ""
        reply = UssdReply(line=self.name, text=text, status=c.status, dcs=c.dcs)
        waiter = self._ussd_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
        if self._inbound is not None:
            self._inbound.event(reply)

    def _on_creg(self, urc: Urc) -> None:
        reg = mp.creg(urc.args, urc=True)
        if reg is not None:
            self._info = dataclasses.replace(
                self._info, registered=reg.registered, roaming=reg.roaming
            )

    def _on_rssi(self, urc: Urc) -> None:
        dbm = mp.csq_dbm(urc.args)
        if dbm is not None:
            self._info = dataclasses.replace(self._info, signal_dbm=dbm)

    def _on_cpin_urc(self, urc: Urc) -> None:
        args = urc.args
        if args and args[0].upper() != "READY":
            self._info = dataclasses.replace(self._info, sim_ready=False)
            self._sim_problem = f"SIM reports {args[0][:20]}"
            self._sms_ready = False

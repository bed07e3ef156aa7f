"""Asyncio adapter of the AT layer on pyserial-asyncio-fast: it only pumps bytes and time.

What it guarantees:

* ``await port.command("AT+CSQ")`` returns the :class:`~gsm.at.AtResponse` of that command;
  commands run one at a time in the order they were called. A command made while the port is
  down **waits in the queue** and runs once the modem is back (nothing is dropped); its timeout
  counts from the moment it was written.
* URCs reach the callbacks subscribed to their prefix (``"+CMTI"``, ``"RING"``, ``"^RSSI"``;
  ``"*"`` for all), whatever command is in flight.
* The port marks itself **down with the reason** when a command times out, when the modem sends
  garbage ``garbage_limit`` times in a row, when ``error_limit`` commands in a row fail
  (``+CMS ERROR``, ``+CME ERROR``, ``ERROR``, ``COMMAND NOT SUPPORT``), or when the device goes
  away (unplugged: the read fails, the path vanishes). It then closes the device and reopens it
  with exponential backoff and jitter, waiting for the path to come back; once open it sends the
  probe (``AT``), runs ``on_up`` (the modem's init: echo off, PDU mode, CNMI…; its commands must
  be ``urgent=True`` so they run before the queued work), and only then drains the queue.
  ``on_up`` raising :class:`PortGaveUp` (a wrong PIN) stops the retries instead.
* A command in flight when the link is lost fails with :class:`PortDown` and says whether it
  (and, for ``AT+CMGS``, the PDU) had been written: it is **never re-sent** by the port, because
  the modem may have executed it (an SMS sent twice, a number dialled twice).
* A caller that gives up (its task cancelled) never makes the port write a PDU it will not
  hear about: an ``AT+CMGS`` still waiting for ``> `` gets ESC instead; one whose PDU was
  written is counted in ``PortStatus.in_doubt`` (the SMS may have gone: treat it as unknown).
* Arguments are never logged (a PIN, a phone number): commands appear by name only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import serial
import serial_asyncio_fast

from gsm.at import (
    ESC,
    MAX_LINE,
    Abandon,
    AtCommand,
    AtEngine,
    AtResponse,
    CommandDone,
    CommandFailed,
    FailReason,
    Final,
    Garbage,
    GarbageKind,
    Urc,
    command_name,
)

log = logging.getLogger(__name__)

UrcCallback = Callable[[Urc], None]
_ERROR_FINALS = {Final.ERROR, Final.CME_ERROR, Final.CMS_ERROR, Final.NOT_SUPPORTED}


class PortState(enum.StrEnum):
    STOPPED = "stopped"
    OPENING = "opening"  # device open, probe/init running
    UP = "up"
    DOWN = "down"  # lost; reopening with backoff


class AtPortError(Exception):
    pass


class PortDown(AtPortError):
    """The port is down (or went down while the command was in flight)."""

    def __init__(self, reason: str, *, written: bool = False, pdu_written: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.written = written
        self.pdu_written = pdu_written


class AtTimeout(PortDown):
    """No final code in time. The port is marked down and reopened."""


class PortGaveUp(AtPortError):
    """Raised by ``on_up`` when retrying would do harm (a wrong SIM PIN: three tries lock the
    SIM). The port stays down with this reason and stops reopening until ``start()`` again."""


class AtCommandError(AtPortError):
    """The modem answered with an error final code."""

    def __init__(self, response: AtResponse) -> None:
        super().__init__(f"{command_name(response.command)}: {response.final_text}")
        self.response = response

    @property
    def final(self) -> Final:
        return self.response.final

    @property
    def code(self) -> int | None:
        return self.response.code


@dataclass(frozen=True, slots=True)
class PortStatus:
    path: str
    state: PortState
    reason: str  # why it is down, "" when up
    last_error: str  # kept after the port came back
    since: float  # unix time the state was entered
    queued: int
    urcs: int
    garbage: int
    bad_bytes: int
    reopens: int
    backoff: float = 0.0  # the next reopen waits about this long
    in_doubt: int = 0  # AT+CMGS abandoned by its caller after the PDU was written


class _Protocol(asyncio.Protocol):
    def __init__(self, port: AtPort) -> None:
        self.port = port
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.port._data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.port._lost(self, exc)


class AtPort:
    def __init__(
        self,
        path: str,
        *,
        name: str = "",
        baudrate: int = 115200,
        probe: str = "AT",
        probe_timeout: float = 3.0,
        on_up: Callable[[AtPort], Awaitable[None]] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        garbage_limit: int = 3,
        error_limit: int = 3,
        max_line: int = MAX_LINE,
        settle: float = 0.1,
        settle_max: float = 2.0,
        stable_after: float = 30.0,
    ) -> None:
        self.path = path
        self.name = name or path
        self.baudrate = baudrate
        self.probe = probe
        self.probe_timeout = probe_timeout
        self.on_up = on_up
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.garbage_limit = garbage_limit
        self.error_limit = error_limit
        self.settle = settle
        self.settle_max = settle_max
        # up this long before going down again: the backoff starts over; a modem that answers
        # the probe and then times out every time is reopened ever more slowly, not twice a second
        self.stable_after = stable_after
        self._backoff = backoff_initial
        self._settling: asyncio.Event | None = None
        self._engine = AtEngine(max_line)
        self._futures: dict[int, asyncio.Future[AtResponse]] = {}
        self._checks: dict[int, tuple[bool, bool]] = {}  # token -> (raise on error, counts)
        self._subs: dict[str, list[UrcCallback]] = {}
        self._proto: _Protocol | None = None
        self._state = PortState.STOPPED
        self._reason = "not started"
        self._last_error = ""
        self._since = time.time()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._garbage_run = 0
        self._error_run = 0
        self._gave_up = False
        self.reopens = 0
        self.in_doubt = 0  # AT+CMGS whose caller gave up after the PDU was written

    # -- public -------------------------------------------------------------------------------
    @property
    def state(self) -> PortState:
        return self._state

    @property
    def is_up(self) -> bool:
        return self._state is PortState.UP

    def status(self) -> PortStatus:
        return PortStatus(
            self.path, self._state, "" if self.is_up else self._reason, self._last_error,
            self._since, self._engine.queued + int(self._engine.busy), self._engine.urcs,
            self._engine.framer.garbage, self._engine.framer.bad_bytes, self.reopens,
            self._backoff, self.in_doubt,
        )  # fmt: skip

    def subscribe(self, prefix: str, callback: UrcCallback) -> Callable[[], None]:
        """Call ``callback(urc)`` for every URC named ``prefix`` (``"*"``: every URC)."""
        self._subs.setdefault(prefix, []).append(callback)
        return lambda: self._subs.get(prefix, []).remove(callback)

    async def start(self) -> None:
        """Returns at once: opening (and reopening) is the port's background job."""
        if self._task is not None:
            return
        self._gave_up = False
        self._set_state(PortState.DOWN, "opening")
        self._task = asyncio.create_task(self._run(), name=f"at-port {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close()
        self._engine.reset(FailReason.CONNECTION_LOST, "port stopped")
        self._set_state(PortState.STOPPED, "stopped")
        self._dispatch()
        self._fail_queued("port stopped")

    def _fail_queued(self, reason: str) -> None:
        for token in self._engine.drop_queue():
            fut = self._futures.pop(token, None)
            self._checks.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_exception(PortDown(reason))

    def _fail_urgent(self, reason: str) -> None:
        # queued urgent commands are the init of the link just lost: the next open runs its own
        for token in self._engine.drop_urgent():
            fut = self._futures.pop(token, None)
            self._checks.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_exception(PortDown(reason))

    async def wait_up(self) -> None:
        await self._up.wait()

    async def wait_state(self, *states: PortState) -> PortState:
        """Wait until the port is in one of ``states`` (tests, the modem's status view)."""
        while self._state not in states:
            self._changed.clear()
            await self._changed.wait()
        return self._state

    async def wait_until(self, predicate: Callable[[PortStatus], bool]) -> PortStatus:
        """Wait until ``predicate(status())`` holds, woken on every state or reason change."""
        while not predicate(st := self.status()):
            self._changed.clear()
            await self._changed.wait()
        return st

    async def command(
        self,
        text: str,
        *,
        timeout: float = 5.0,
        pdu: str | None = None,
        prompt_timeout: float = 5.0,
        expect: tuple[str, ...] | None = None,
        urgent: bool = False,
        check: bool = True,
        may_fail: bool = False,
        wait: bool = True,
    ) -> AtResponse:
        """Run one command. ``check``: raise AtCommandError on an error final code.
        ``may_fail``: an error is an expected answer (a vendor command another family lacks)
        and does not count towards ``error_limit``. ``wait=False``: raise PortDown at once
        instead of queueing while the port is down. ``urgent``: for ``on_up`` (runs first)."""
        if self._state is PortState.STOPPED:
            raise PortDown("port stopped")
        if self._gave_up:
            raise PortDown(self._reason)
        if not wait and not self.is_up and not urgent:
            raise PortDown(self._reason)
        if urgent and self._state is not PortState.OPENING:
            # urgent is the init of one open device; once it is lost nothing would run it
            raise PortDown(self._reason)
        cmd = AtCommand(text, timeout, pdu, prompt_timeout, expect, urgent)
        token = self._engine.submit(cmd)
        fut: asyncio.Future[AtResponse] = asyncio.get_running_loop().create_future()
        self._futures[token] = fut
        self._checks[token] = (check, not (may_fail or urgent))
        self._changed.set()  # the queue grew: wait_until(queued == n) sees it
        self._pump()
        try:
            return await fut
        except asyncio.CancelledError:
            # the caller gave up: queued, it is dropped; an AT+CMGS still waiting for "> " is
            # cancelled with ESC (its PDU never goes); written, its answer will be dropped
            self._futures.pop(token, None)
            self._checks.pop(token, None)
            if self._engine.abandon(token) is Abandon.IN_DOUBT:
                self.in_doubt += 1
                log.warning("modem %s: %s abandoned after its PDU was written: the SMS may "
                            "have been sent", self.name, command_name(text))  # fmt: skip
            self._pump()  # the ESC
            raise

    def mark_down(self, reason: str) -> None:
        """Close the device and reopen it with backoff (also for the modem layer's own
        reasons, e.g. the SIM vanished)."""
        if self._state in (PortState.STOPPED, PortState.DOWN):
            return
        log.warning("modem %s down: %s", self.name, reason)
        self._last_error = reason
        self._go_down(reason)
        self._fail_urgent(reason)
        self._down.set()

    def _go_down(self, reason: str) -> None:
        """DOWN with ``reason``; the device closed; what was in flight failed and reported."""
        self._set_state(PortState.DOWN, reason)
        self._close()
        self._engine.reset(FailReason.CONNECTION_LOST, reason)
        self._dispatch()

    # -- the reopen loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        self._backoff = self.backoff_initial
        loop = asyncio.get_running_loop()
        while True:
            self._down.clear()
            try:
                await self._open(loop)
            except asyncio.CancelledError:
                raise
            except PortGaveUp as exc:
                reason = f"gave up: {exc}"
                self._last_error = reason
                self._gave_up = True
                self._go_down(reason)
                self._fail_queued(reason)  # nothing would ever run them
                self._task = None
                log.error("modem %s: %s", self.name, reason)
                return
            except Exception as exc:
                reason = self._reason if isinstance(exc, PortDown) else _describe(exc, self.path)
                if self._state is not PortState.DOWN:
                    self._last_error = reason
                    self._go_down(reason)
                elif not isinstance(exc, PortDown):
                    self._set_state(PortState.DOWN, reason)  # a new reason wakes the waiters
                await asyncio.sleep(self._next_delay())
                continue
            up_at = loop.time()
            await self._down.wait()
            if loop.time() - up_at >= self.stable_after:
                self._backoff = self.backoff_initial
            await asyncio.sleep(self._next_delay())

    def _next_delay(self) -> float:
        delay = self._backoff * random.uniform(0.8, 1.2)
        self._backoff = min(self._backoff * 2, self.backoff_max)
        return delay

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        if not os.path.exists(self.path):
            raise FileNotFoundError(self.path)
        proto = _Protocol(self)
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop, lambda: proto, self.path, baudrate=self.baudrate
        )
        proto.transport = transport  # connection_made() may come a loop turn later
        self._proto = proto
        self.reopens += 1
        self._engine.reset(FailReason.CONNECTION_LOST, "reopened")
        self._set_state(PortState.OPENING, "probing")
        self._garbage_run = 0
        self._error_run = 0
        for _ in range(3):
            await self._settle(proto)
            if self._proto is not proto:
                raise PortDown(self._reason)  # unplugged while settling: no probe to a dead link
            r = await self.command(self.probe, timeout=self.probe_timeout, urgent=True)
            if r.lines:
                # "AT" has no information lines: these belong to a command of our previous life
                # still running in the modem (a +CMGS answer seconds later): settle once more
                log.warning("modem %s: stale answer after open dropped", self.name)
                continue
            # A bare OK of that earlier command, late, looks just like the probe's; then the
            # probe's own OK still follows, and taken for the next command's answer it would
            # put every answer one behind. Quiet again with no final code: in step.
            stray = self._engine.stray
            await self._settle(proto, esc=False)
            if self._proto is not proto:
                raise PortDown(self._reason)
            if self._engine.stray == stray:
                break
            log.warning("modem %s: a late final code after open; probing again", self.name)
        if self.on_up is not None:
            await self.on_up(self)
        if self._proto is not proto:
            raise PortDown(self._reason)
        self._set_state(PortState.UP, "")
        log.info("modem %s up (%s)", self.name, self.path)
        self._pump()

    async def _settle(self, proto: _Protocol, *, esc: bool = True) -> None:
        """A modem left waiting for a PDU (we died between ``> `` and Ctrl-Z) would take our
        probe as text: ESC cancels it, and nothing is sent. Then the probe waits until the
        modem has been quiet for ``settle`` seconds (at most ``settle_max``): the answer to a
        command of our previous life, or a reply to the ESC, comes with nothing in flight (a
        stray final code, dropped), while URCs are routed as usual."""
        if esc and isinstance(proto.transport, asyncio.WriteTransport):
            proto.transport.write(ESC)
        self._settling = asyncio.Event()
        try:
            async with asyncio.timeout(self.settle_max):
                while True:
                    self._settling.clear()
                    try:
                        async with asyncio.timeout(self.settle):
                            await self._settling.wait()
                    except TimeoutError:
                        return
        except TimeoutError:
            log.warning("modem %s keeps talking after open; probing anyway", self.name)
        finally:
            self._settling = None

    # -- pumping ------------------------------------------------------------------------------
    def _data(self, proto: _Protocol, data: bytes) -> None:
        if proto is not self._proto:
            return
        if self._settling is not None:
            # only the probe waits for quiet: with nothing in flight a stale final code is a
            # stray, and a +CDS, +CMTI, RING or "SMS Ready" said meanwhile reaches its handler
            self._settling.set()
        self._engine.receive_data(data)
        self._pump()

    def _lost(self, proto: _Protocol, exc: Exception | None) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        self.mark_down(f"device disconnected ({exc or 'closed'})")

    def _pump(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        while True:
            proto = self._proto
            if proto is not None and self._state in (PortState.UP, PortState.OPENING):
                self._engine.advance(loop.time(), urgent_only=self._state is PortState.OPENING)
            out = self._engine.data_to_send()
            if out and proto is not None and isinstance(proto.transport, asyncio.WriteTransport):
                proto.transport.write(out)
            if not self._dispatch() and not out:
                break
        deadline = self._engine.next_deadline()
        if deadline is not None and self._proto is not None:
            self._timer = loop.call_at(deadline, self._pump)

    def _dispatch(self) -> bool:
        events = self._engine.events()
        for ev in events:
            if isinstance(ev, Urc):
                self._garbage_run = 0
                self._deliver(ev)
            elif isinstance(ev, CommandDone):
                self._garbage_run = 0
                self._finish(ev)
            elif isinstance(ev, CommandFailed):
                self._failed(ev)
            elif isinstance(ev, Garbage):
                log.info("modem %s: %s line dropped (%d bytes)", self.name, ev.kind, ev.size)
                if ev.kind is not GarbageKind.STRAY:
                    self._garbage_run += 1
                    if self._garbage_run >= self.garbage_limit:
                        self.mark_down(f"garbage from the modem ({self._garbage_run} lines)")
        return bool(events)

    def _deliver(self, urc: Urc) -> None:
        if not urc.known:
            # its size only: an unknown line may carry a customer's text
            log.info("modem %s: unknown unsolicited line (%d chars)", self.name, len(urc.line))
        for cb in (*self._subs.get(urc.name, ()), *self._subs.get("*", ())):
            try:
                cb(urc)
            except Exception:
                log.exception("modem %s: URC handler for %s failed", self.name, urc.name)

    def _finish(self, ev: CommandDone) -> None:
        fut = self._futures.pop(ev.token, None)
        check, counts = self._checks.pop(ev.token, (True, False))  # none: its caller left
        resp = ev.response
        if resp.final in _ERROR_FINALS:
            if counts:
                self._error_run += 1
        else:
            self._error_run = 0
        if fut is not None and not fut.done():
            if check and resp.final in _ERROR_FINALS:
                fut.set_exception(AtCommandError(resp))
            else:
                fut.set_result(resp)
        if self._error_run >= self.error_limit:
            n, self._error_run = self._error_run, 0
            last = command_name(resp.command)
            self.mark_down(f"{resp.final_text} {n} times in a row (last: {last})")

    def _failed(self, ev: CommandFailed) -> None:
        fut = self._futures.pop(ev.token, None)
        self._checks.pop(ev.token, None)
        if ev.reason is FailReason.TIMEOUT:
            exc: PortDown = AtTimeout(ev.detail, written=ev.written, pdu_written=ev.pdu_written)
        else:
            exc = PortDown(ev.detail, written=ev.written, pdu_written=ev.pdu_written)
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if ev.reason is FailReason.TIMEOUT:
            self.mark_down(ev.detail)

    def _close(self) -> None:
        proto, self._proto = self._proto, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    def _set_state(self, state: PortState, reason: str) -> None:
        if state is not self._state:
            self._since = time.time()
        self._state = state
        self._reason = reason
        self._changed.set()
        if state is PortState.UP:
            self._up.set()
        else:
            self._up.clear()


def _describe(exc: BaseException, path: str) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"device {path} not present (unplugged?)"
    if isinstance(exc, AtCommandError):
        return f"init failed: {exc}"
    if isinstance(exc, OSError | serial.SerialException):
        return f"cannot open {path}: {exc}"
    log.error("modem %s: init failed", path, exc_info=exc)  # a bug in on_up: show it
    return f"init failed: {type(exc).__name__}: {exc}"

"""A SIP line: the observer extension (and, with a registrar, its registration) behind core types.

The line listens on UDP, gives every request to the sans-I/O :class:`sip.observer.Observer`
and sends what it answers; its line events go to the core's sink exactly as the Asterisk
line's do, so the console, the call log and the lines page need no SIP code.

Bad input never stops the line: a datagram that does not parse is counted and dropped (a
request good enough to answer gets ``400``), a datagram over ``MAX_MESSAGE`` is dropped unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.line_events import LineEvent
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from sip.message import MAX_MESSAGE, Request, Response, SipParseError, parse_message
from sip.observer import Observer, ObserverConfig

log = logging.getLogger(__name__)

Addr = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SipLineConfig:
    name: str
    enabled: bool = True
    registrar: str = ""  # host[:port] of the PBX; "" = not registered (a static extension)
    username: str = "crm"
    secret: str = field(default="", repr=False)
    domain: str = ""  # the SIP domain of the AOR; "" = the registrar's host
    transport: str = "udp"
    listen_host: str = "0.0.0.0"
    listen_port: int = 5070
    advertise_host: str = ""  # the address the PBX reaches us at; "" = the listen address
    ring_extensions: tuple[str, ...] = ()  # the phones of the ring group (per-user screen-pop)
    watch_extensions: tuple[str, ...] = ()  # extensions whose dialogs we subscribe to
    register_expires: int = 300
    max_calls: int = 1000


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, line: SipLine) -> None:
        self.line = line
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.line.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: the peer is gone
        log.debug("SIP line %s: %s", self.line.name, exc)


class SipLine:
    kind = "sip"

    def __init__(self, config: SipLineConfig, sink: Callable[[LineEvent], None],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self._clock = clock
        self._udp: _Udp | None = None
        self.observer: Observer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = LineState.STOPPED
        self._since = time.time()
        self._last_error = ""
        self.detail = "not started"
        self.dropped = 0  # datagrams that did not parse
        self.local: Addr | None = None
        self._peers: dict[str, Addr] = {}  # Call-ID of a call the observer holds -> its PBX

    # -- lifecycle -------------------------------------------------------------------------

    def _set_state(self, state: LineState, detail: str, *, error: bool = False) -> None:
        if state is not self._state:
            self._state, self._since = state, time.time()
        self.detail = detail
        if error:
            self._last_error = detail

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, self.detail, self._last_error,
                          self._since)

    @property
    def connected(self) -> bool:
        return self._state in (LineState.UP, LineState.DEGRADED)

    async def check(self) -> CheckResult:
        cfg = self.config
        if self._udp is not None and self.local is not None:
            return CheckResult(True, f"listening on {self.local[0]}:{self.local[1]}",
                               {"listening": f"{self.local[0]}:{self.local[1]}"})
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((cfg.listen_host, cfg.listen_port))
        except OSError as exc:
            return CheckResult(False, "cannot listen", error=(
                f"cannot listen on UDP {cfg.listen_host}:{cfg.listen_port}: {exc.strerror}"),
                hint="choose another listen port, or stop what uses it")
        return CheckResult(True, f"UDP {cfg.listen_host}:{cfg.listen_port} is free",
                           {"listen": f"{cfg.listen_host}:{cfg.listen_port}"})

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._set_state(LineState.STARTING, f"opening UDP {cfg.listen_host}:{cfg.listen_port}")
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(cfg.listen_host, cfg.listen_port))
        except OSError as exc:
            self._set_state(LineState.DOWN, f"cannot listen on UDP {cfg.listen_host}:"
                                            f"{cfg.listen_port}: {exc.strerror}", error=True)
            return
        self._udp = protocol
        assert protocol.transport is not None
        self.local = protocol.transport.get_extra_info("sockname")[:2]
        host = cfg.advertise_host or (self.local[0] if self.local[0] != "0.0.0.0"
                                      else "127.0.0.1")
        self.observer = Observer(ObserverConfig(
            line=cfg.name, contact=f"<sip:{cfg.username}@{host}:{self.local[1]}>",
            ring_extensions=cfg.ring_extensions, max_calls=cfg.max_calls))
        self._set_state(LineState.UP, f"observer {cfg.username} listening on UDP "
                                      f"{self.local[0]}:{self.local[1]}")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.observer is not None:
            for event in self.observer.lost(self._clock()):
                self._emit(event)
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        self._udp = None
        self._set_state(LineState.STOPPED, "stopped")

    # -- datagrams in and out --------------------------------------------------------------

    def datagram(self, data: bytes, addr: Addr) -> None:
        if len(data) > MAX_MESSAGE:
            self._bad(addr, "oversized datagram")
            return
        if data.strip(b"\r\n") == b"":
            return  # keep-alive
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self._bad(addr, str(exc))
            partial = getattr(exc, "partial", None)
            if isinstance(partial, Request) and partial.method != "ACK":
                with contextlib.suppress(Exception):  # not even a 400 can be built: dropped
                    self._send(Response.for_request(partial, 400, str(exc)[:100]), addr)
            return
        if isinstance(msg, Request):
            self.request(msg, addr)

    def _bad(self, addr: Addr, why: str) -> None:
        self.dropped += 1
        if self.dropped <= 10 or self.dropped % 1000 == 0:
            log.warning("SIP line %s: dropped a datagram from %s:%d (%s); %d so far",
                        self.name, addr[0], addr[1], why, self.dropped)

    def request(self, req: Request, addr: Addr) -> None:
        if self.observer is None:
            return
        result = self.observer.receive(req, self._clock())
        if self.observer.key_of(req.call_id) is not None:
            self._peers[req.call_id] = addr  # where re-sent final responses go
        for response in result.send:
            self._send(response, addr)
        for event in result.events:
            self._emit(event)
        self._schedule()

    def _send(self, response: Response, addr: Addr) -> None:
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.sendto(response.to_bytes(), addr)

    def _emit(self, event: LineEvent) -> None:
        try:
            self._sink(event)
        except Exception:  # a fault in the core must not stop the line's reader
            log.exception("SIP line %s: the sink failed on %r", self.name, event)

    def _schedule(self) -> None:
        if self.observer is None:
            return
        deadline = self.observer.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - self._clock())
        self._timer = loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.observer is None:
            return
        result = self.observer.advance(self._clock())
        for response in result.send:
            self._resend(response)
        for event in result.events:
            self._emit(event)
        self._schedule()

    def _resend(self, response: Response) -> None:
        addr = self._peers.get(response.call_id)
        if addr is not None:
            self._send(response, addr)
        if self.observer is not None and len(self._peers) > len(self.observer):
            for call_id in [c for c in self._peers if self.observer.key_of(c) is None]:
                del self._peers[call_id]

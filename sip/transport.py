"""Asyncio transports for SIP: UDP datagrams and TCP/TLS streams. They only move bytes.

Both offer the same small surface to :class:`sip.endpoint.SipEndpoint`:

* ``await open()`` binds (UDP) or listens (TCP/TLS) on ``host:port`` (0 = a free port);
* ``send(data, peer)`` never blocks and never raises: on a stream it writes to the connection
  with ``peer`` (incoming or outgoing), opening one first if there is none; a failure (refused,
  reset, TLS handshake) is reported through ``on_lost(peer, reason)``, which fails the
  transactions waiting on that peer at once instead of after timer B/F;
* received messages go to ``on_message(data, peer)`` — a whole datagram, or one message cut
  from the stream by :class:`sip.message.StreamFramer`. A stream out of step (no
  Content-Length, oversized) is closed: nothing after it can be trusted.

Bounds: a datagram over ``MAX_MESSAGE`` is dropped unread (counted); a stream connection
buffers at most one message; at most ``max_connections`` streams opened by peers are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass

from sip.address import SipParseError
from sip.message import MAX_MESSAGE, StreamFramer

log = logging.getLogger(__name__)

_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)

Peer = tuple[str, int]
OnMessage = Callable[[bytes, Peer], None]
OnLost = Callable[[Peer, str], None]


@dataclass
class TransportStats:
    received: int = 0
    sent: int = 0
    oversized: int = 0
    broken_streams: int = 0


class UdpTransport(asyncio.DatagramProtocol):
    name = "UDP"
    reliable = False

    def __init__(self, host: str, port: int, on_message: OnMessage, on_lost: OnLost) -> None:
        self.host, self.port = host, port
        self.on_message, self.on_lost = on_message, on_lost
        self.stats = TransportStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._last_peer: Peer | None = None
        self._sending: Peer | None = None  # set while sendto runs: its own error is for it
        self._errqueue: socket.socket | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
            if family == socket.AF_INET and sys.platform == "linux":
                # an ICMP "port unreachable" is only reported on an unconnected socket with
                # IP_RECVERR; its error queue then names the destination that failed
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
                self._errqueue = sock
            transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        peer = (addr[0], addr[1])
        if len(data) > MAX_MESSAGE:
            self.stats.oversized += 1
            return
        if not data.strip(b"\r\n\x00 "):
            return  # a keep-alive (CRLF or NAT ping)
        self.stats.received += 1
        self.on_message(data, peer)

    def error_received(self, exc: Exception) -> None:
        peers: list[Peer] = []
        if self._errqueue is not None:
            for _ in range(64):  # bounded: a flood of ICMP errors is drained a bit at a time
                try:
                    _, _, _, addr = self._errqueue.recvmsg(
                        1, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
                    )
                except OSError:
                    break
                peer = (addr[0], addr[1])
                if peer not in peers:
                    peers.append(peer)
        elif self._last_peer is not None:  # no error queue: the peer we wrote to last
            peers.append(self._last_peer)
        if not peers and self._sending is not None:
            # sendto itself failed (no route, wrong address family): nothing was queued
            peers.append(self._sending)
        for peer in peers:
            self.on_lost(peer, f"port unreachable (ICMP, {type(exc).__name__})")

    def send(self, data: bytes, peer: Peer) -> None:
        if self._transport is None or self._transport.is_closing():
            self.on_lost(peer, "transport closed")
            return
        self._last_peer = peer
        self.stats.sent += 1
        self._sending = peer
        try:
            self._transport.sendto(data, peer)
        finally:
            self._sending = None

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._errqueue = None


class _Stream(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, peer: Peer | None) -> None:
        self.owner = owner
        self.peer = peer
        self.accepted = peer is None  # opened by a peer, not by us
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.peer is None:  # accepted: known by its source address
            addr = transport.get_extra_info("peername")
            self.peer = (addr[0], addr[1])
        self.owner._attach(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            self.owner.stats.broken_streams += 1
            log.info("SIP stream from %s:%s closed: %s", *self.peer, exc.reason)
            if self.transport is not None:
                self.transport.close()
            return
        pings = self.framer.pings
        if pings and self.transport is not None:
            self.framer.pings = 0
            self.transport.write(b"\r\n" * pings)  # RFC 5626 pong
        for raw in messages:
            self.owner.stats.received += 1
            self.owner.on_message(raw, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.owner._detach(self, "connection closed" if exc is None else type(exc).__name__)


class TcpTransport:
    """TCP, or TLS when ``client_ssl`` / ``server_ssl`` are given (``name`` becomes TLS)."""

    reliable = True

    def __init__(
        self,
        host: str,
        port: int,
        on_message: OnMessage,
        on_lost: OnLost,
        *,
        client_ssl: ssl.SSLContext | None = None,
        server_ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_connections: int = 1024,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host, self.port = host, port
        self.on_message, self.on_lost = on_message, on_lost
        self.client_ssl, self.server_ssl = client_ssl, server_ssl
        self.server_hostname = server_hostname
        self.name = "TLS" if (client_ssl or server_ssl) else "TCP"
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.stats = TransportStats()
        self._server: asyncio.Server | None = None
        self._streams: dict[Peer, _Stream] = {}
        self._connecting: dict[Peer, list[bytes]] = {}
        self._names: dict[Peer, str] = {}  # the host name a peer's address was resolved from
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Stream(self, None), self.host, self.port, ssl=self.server_ssl
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _attach(self, stream: _Stream) -> None:
        assert stream.peer is not None
        # only the connections strangers open count: a flood of them must not stop us from
        # reaching the registrar (ours are as many as the peers we send to)
        if (
            stream.accepted
            and stream.transport is not None
            and sum(s.accepted for s in self._streams.values()) >= self.max_connections
        ):
            stream.transport.close()
            return
        old = self._streams.get(stream.peer)
        self._streams[stream.peer] = stream
        if old is not None and old is not stream and old.transport is not None:
            old.transport.close()

    def _detach(self, stream: _Stream, reason: str) -> None:
        assert stream.peer is not None
        if self._streams.get(stream.peer) is stream:
            del self._streams[stream.peer]
            self.on_lost(stream.peer, reason)

    def send(self, data: bytes, peer: Peer) -> None:
        stream = self._streams.get(peer)
        if stream is not None and stream.transport is not None:
            self.stats.sent += 1
            stream.transport.write(data)
            return
        if peer in self._connecting:
            self._connecting[peer].append(data)
            return
        self._connecting[peer] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, peer: Peer) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, stream = await loop.create_connection(
                    lambda: _Stream(self, peer),
                    peer[0],
                    peer[1],
                    ssl=self.client_ssl,
                    server_hostname=(
                        (self.server_hostname or self._names.get(peer) or peer[0])
                        if self.client_ssl
                        else None
                    ),
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._connecting.pop(peer, None)
            self.on_lost(peer, f"cannot connect ({type(exc).__name__})")
            return
        for data in self._connecting.pop(peer, []):
            self.stats.sent += 1
            if stream.transport is not None:
                stream.transport.write(data)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for stream in list(self._streams.values()):
            if stream.transport is not None:
                stream.transport.close()
        self._streams.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def name_peer(self, peer: Peer, hostname: str) -> None:
        """TLS checks the certificate of ``peer`` for ``hostname`` (the name in the URI we
        resolved), not for its IP address: a PBX's certificate names its host."""
        if len(self._names) >= 1024:
            self._names.clear()
        self._names[peer] = hostname

    def drop(self, peer: Peer) -> None:
        """Close the connection with ``peer`` (tests: a registrar that resets)."""
        stream = self._streams.get(peer)
        if stream is not None and stream.transport is not None:
            stream.transport.close()


Transport = UdpTransport | TcpTransport

"""One SIP endpoint: a transport, the transaction layer, timers and request handlers (asyncio).

* ``await endpoint.request(req)`` sends a request in a new client transaction (the endpoint
  adds the top Via with a fresh branch and ``rport``, and Max-Forwards) and returns its final
  response; 1xx go to ``on_provisional``. No answer raises :class:`SipTimeout` (timer B/F);
  a refused/reset connection or an ICMP error raises :class:`SipTransportError` at once.
* ``endpoint.on_request("INVITE", handler)`` — ``handler(IncomingRequest)`` (plain or async)
  answers with ``incoming.respond(...)``. Retransmissions are absorbed by the server
  transaction; an INVITE gets ``100 Trying`` at once; a CANCEL is answered 200 here, the
  INVITE's ``cancelled`` event is set and, if the handler has not answered, 487 sent. With no
  handler: OPTIONS → 200 (keep-alive probes), anything else → 405. A handler that raises
  gets a 500 sent for it.
* Received via ``received``/``rport`` (RFC 3581): a request's top Via gets ``received`` when
  the source IP differs and ``rport`` filled; responses go back to the source address. The
  ``received``/``rport`` of responses to us is kept as ``public_address`` (for Contact).
* Malformed input is counted and never raises: a datagram whose Via and the rest needed for an
  answer could be read gets ``400 Bad Request`` with the parse reason; the rest is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sip.address import NameAddr, SipParseError, SipUri
from sip.dialog import Dialog, DialogError
from sip.incoming import MAX_RING, EndpointStats, Handler, IncomingRequest, ServerSide
from sip.message import (
    Headers,
    Request,
    Response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from sip.transaction import (
    T1,
    T2,
    T4,
    Action,
    ArmTimer,
    ClientTransaction,
    Deliver,
    ServerTransaction,
    State,
    Terminated,
    TimedOut,
    Timer,
    Transmit,
    client_key,
)
from sip.transport import Peer, TcpTransport, Transport, UdpTransport

__all__ = [
    "EndpointStats",
    "Handler",
    "IncomingRequest",
    "SipEndpoint",
    "SipError",
    "SipTimeout",
    "SipTransportError",
]

log = logging.getLogger(__name__)


class SipError(Exception):
    """Base of the endpoint's errors."""


class SipTimeout(SipError):
    """No final response before timer B/F."""


class SipTransportError(SipError):
    """The peer could not be reached (connection refused/reset, ICMP unreachable)."""


@dataclass
class _Client:
    tx: ClientTransaction
    peer: Peer
    future: asyncio.Future[Response]
    on_provisional: Callable[[Response], None] | None
    abandoned: bool = False  # the caller of request() gave this INVITE up
    cancel_sent: bool = False


class SipEndpoint(ServerSide):
    def __init__(
        self,
        transport: str = "UDP",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_ssl: ssl.SSLContext | None = None,
        server_ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        user_agent: str = "callcenter",
        advertised_host: str | None = None,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
    ) -> None:
        name = transport.upper()
        # what Via and Contact say; bound to 0.0.0.0, the address that routes to the peer
        self.advertised_host = advertised_host
        if name == "UDP":
            self.transport: Transport = UdpTransport(host, port, self._on_message, self._on_lost)
        elif name in ("TCP", "TLS"):
            if name == "TLS" and client_ssl is None and server_ssl is None:
                client_ssl = ssl.create_default_context()
            self.transport = TcpTransport(
                host,
                port,
                self._on_message,
                self._on_lost,
                client_ssl=client_ssl if name == "TLS" else None,
                server_ssl=server_ssl if name == "TLS" else None,
                server_hostname=server_hostname,
            )
        else:
            raise ValueError(f"unknown SIP transport {transport!r}")
        self.user_agent = user_agent
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.max_ring = MAX_RING
        self.stats = EndpointStats()
        self.public_address: Peer | None = None
        self._handlers: dict[str, Handler] = {}
        self._lost_callbacks: list[Callable[[Peer, str], None]] = []
        self._clients: dict[tuple[str, str], _Client] = {}
        self._servers: dict[tuple[str, str, str], tuple[ServerTransaction, IncomingRequest]] = {}
        self._timers: dict[tuple[int, Timer], asyncio.TimerHandle] = {}
        self._acks: dict[tuple[str, int], tuple[bytes, Peer, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.transport.open()
        self._open = True

    async def close(self) -> None:
        self._open = False
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for _, incoming in self._servers.values():
            if incoming._guard is not None:
                incoming._guard.cancel()
        self._servers.clear()
        for client in self._clients.values():
            if not client.future.done():
                client.future.set_exception(SipTransportError("endpoint closed"))
        self._clients.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.transport.close()

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def transport_name(self) -> str:
        return self.transport.name

    @property
    def local_address(self) -> Peer:
        return self.transport.host, self.transport.port

    @property
    def sent_by(self) -> Peer:
        """The host and port our Via and Contact carry."""
        host, port = self.local_address
        return self.advertised_host or host, port

    def _route_host(self, peer: Peer) -> None:
        host = self.transport.host
        if self.advertised_host or host not in ("0.0.0.0", "::", ""):
            return
        family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(peer)  # UDP connect sends nothing: it only picks the route
                self.advertised_host = probe.getsockname()[0]
        except OSError:
            return

    def contact(self, user: str | None = None) -> SipUri:
        """Our Contact URI (the address the registrar saw, once a response told us)."""
        host, port = self.public_address or self.sent_by
        params: dict[str, str | None] = {}
        if self.transport.name != "UDP":
            params["transport"] = self.transport.name.lower()
        return SipUri("sip", user, host, port, params=params)

    def on_request(self, method: str, handler: Handler) -> None:
        self._handlers[method.upper()] = handler

    def on_lost(self, callback: Callable[[Peer, str], None]) -> None:
        """Called when a peer is found unreachable (stream closed or refused, ICMP error)."""
        self._lost_callbacks.append(callback)

    def off_lost(self, callback: Callable[[Peer, str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._lost_callbacks.remove(callback)

    # --- building requests -------------------------------------------------------------------

    def new_request(
        self,
        method: str,
        uri: SipUri | str,
        from_: NameAddr | str,
        to: NameAddr | str | None = None,
        *,
        call_id: str | None = None,
        cseq: int = 1,
        from_tag: str | None = None,
        contact_user: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """An out-of-dialog request with From tag, To, Call-ID, CSeq and our Contact."""
        frm = from_ if isinstance(from_, NameAddr) else NameAddr.parse(from_)
        frm = NameAddr(frm.uri, frm.display, dict(frm.params))
        frm.params.setdefault("tag", from_tag or new_tag())
        uri = uri if isinstance(uri, SipUri) else SipUri.parse(uri)
        to_text = str(to) if to is not None else f"<{uri}>"
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", str(frm))
        h.add("To", to_text)
        h.add("Call-ID", call_id or new_call_id())
        h.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "SUBSCRIBE", "REFER", "REGISTER", "NOTIFY"):
            user = contact_user if contact_user is not None else frm.uri.user
            h.add("Contact", f"<{self.contact(user)}>")
        h.add("User-Agent", self.user_agent)
        for n, v in headers:
            h.add(n, v)
        return Request(method, uri, h, body)

    def _add_via(self, request: Request, peer: Peer) -> None:
        self._route_host(peer)
        host, port = self.sent_by
        request.headers.remove("Via")
        request.headers.prepend(
            "Via", f"SIP/2.0/{self.transport.name} {host}:{port};branch={new_branch()};rport"
        )
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")

    async def resolve(self, request: Request) -> Peer:
        """Next hop: the first Route if it is a loose router, else the Request-URI (no SRV)."""
        routes = request.headers.get_list("Route")
        uri = request.uri
        if routes:
            first = NameAddr.parse(routes[0]).uri
            if "lr" in first.params:
                uri = first
        maddr = uri.params.get("maddr")
        host = maddr or uri.host
        default = 5061 if self.transport.name == "TLS" else 5060
        port = uri.port or default
        if host.startswith("["):
            return host[1:-1], port
        # the family of our socket: a name with an AAAA record first must not pick an address
        # an IPv4 socket cannot send to (the request would wait for timer B/F in silence)
        family = socket.AF_INET6 if ":" in self.transport.host else socket.AF_INET
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_DGRAM
            )
        except OSError as exc:
            raise SipTransportError(f"cannot resolve {host} ({exc.strerror or exc})") from exc
        peer = infos[0][4][0], port
        if isinstance(self.transport, TcpTransport) and peer[0] != host:
            self.transport.name_peer(peer, host)
        return peer

    # --- client side -------------------------------------------------------------------------

    async def request(
        self,
        request: Request,
        dest: Peer | None = None,
        *,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send ``request`` (a new Via is added) and wait for its final response."""
        if not self._open:
            raise SipTransportError("endpoint not started")
        if request.method == "ACK":
            raise ValueError("use send_ack() for ACK")
        peer = dest or await self.resolve(request)
        self._add_via(request, peer)
        tx = ClientTransaction(
            request, reliable=self.transport.reliable, t1=self.t1, t2=self.t2, t4=self.t4
        )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        client = _Client(tx, peer, future, on_provisional)
        self._clients[tx.key] = client
        try:
            self._client_actions(client, tx.start())
        except ValueError:  # a header that cannot be printed (a line break in it)
            self._end_client(client)
            raise
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if tx.invite and tx.final is None and tx.state is not State.TERMINATED:
                # an INVITE lives on until its final answer is ACKed (or its 2xx hung up),
                # else the phone keeps ringing and retransmits its 487 to nobody
                client.abandoned = True
                future.cancel()
                if tx.state is State.PROCEEDING:
                    self._cancel_abandoned(client)
            else:  # forget the transaction: a late answer is a stray
                self._end_client(client)
            raise

    async def cancel(self, invite: Request, dest: Peer | None = None) -> Response:
        """CANCEL a pending INVITE we sent (§9.1): same branch, Request-URI, Route."""
        h = Headers()
        h.add("Via", invite.headers.get_list("Via")[0])
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            value = invite.headers.get(name)
            if value is not None:
                h.add(name, value)
        h.add("CSeq", f"{invite.cseq.seq} CANCEL")
        for route in invite.headers.get_all("Route"):
            h.add("Route", route)
        cancel = Request("CANCEL", invite.uri, h)
        # §9.1: the CANCEL goes where the INVITE went, also when request() was given a dest
        pending = self._clients.get((invite.branch or "", "INVITE"))
        peer = dest or (pending.peer if pending is not None else await self.resolve(cancel))
        if pending is not None:
            # §9.1: no final answer 64*T1 after the CANCEL ends the INVITE (a phone that
            # answers the CANCEL but never sends its 487 must not hold request() forever)
            self._arm(
                pending.tx,
                ArmTimer(Timer.B, 64 * self.t1),
                lambda _name, c=pending: self._cancel_expired(c),
            )
        tx = ClientTransaction(
            cancel, reliable=self.transport.reliable, t1=self.t1, t2=self.t2, t4=self.t4
        )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        client = _Client(tx, peer, future, None)
        self._clients[tx.key] = client
        self._client_actions(client, tx.start())
        return await asyncio.shield(future)

    def _cancel_expired(self, client: _Client) -> None:
        self._timers.pop((id(client.tx), Timer.B), None)
        if client.tx.final is None:
            self._client_actions(client, client.tx.transport_error())

    def _cancel_abandoned(self, client: _Client) -> None:
        if client.cancel_sent:
            return
        client.cancel_sent = True
        self._spawn(lambda: self.cancel(client.tx.request))

    def _hang_up_abandoned(self, client: _Client, resp: Response) -> None:
        """A 2xx for an INVITE whose caller gave up: ACK it and BYE at once (§15)."""
        try:
            dialog = Dialog.as_uac(client.tx.request, resp)
        except (DialogError, SipParseError):
            return

        async def hang_up() -> None:  # routed by the dialog: its Route set, else the Contact
            await self.send_ack(dialog.ack(resp))
            await self.request(dialog.new_request("BYE"))

        self._spawn(hang_up)

    def _spawn(self, work: Callable[[], Awaitable[object]]) -> None:
        async def run() -> None:
            try:
                await work()
            except (SipError, SipParseError, DialogError, OSError) as exc:
                log.info("SIP clean-up of an abandoned INVITE failed: %s", exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_ack(self, ack: Request, dest: Peer | None = None) -> None:
        """Send the ACK of a 2xx (built by :meth:`sip.dialog.Dialog.ack`); it is sent again
        if the 2xx is retransmitted within 64*T1."""
        peer = dest or await self.resolve(ack)
        self._add_via(ack, peer)
        data = ack.to_bytes()
        now = time.monotonic()
        self._acks = {k: v for k, v in self._acks.items() if v[2] > now}
        self._acks[(ack.call_id, ack.cseq.seq)] = (data, peer, now + 64 * self.t1)
        self.transport.send(data, peer)

    def _client_actions(self, client: _Client, actions: list[Action]) -> None:
        tx = client.tx
        for action in actions:
            if isinstance(action, Transmit):
                self.transport.send(action.message.to_bytes(), client.peer)
            elif isinstance(action, ArmTimer):
                if tx.state is not State.TERMINATED:  # a send may fail it on the spot
                    self._arm(tx, action, lambda name, c=client: self._client_timer(c, name))
            elif isinstance(action, Deliver):
                self._deliver(client, action)
            elif isinstance(action, TimedOut):
                if not client.future.done():
                    client.future.set_exception(
                        SipTimeout(f"no answer to {tx.request.method} (timer {action.timer})")
                    )
            elif isinstance(action, Terminated):
                self._end_client(client)

    def _deliver(self, client: _Client, action: Deliver) -> None:
        resp = action.response
        if action.retransmission:
            sent = self._acks.get((resp.call_id, resp.cseq.seq))
            if sent is not None:
                self.transport.send(sent[0], sent[1])
            return
        self._learn_public_address(resp)
        if client.abandoned:
            if resp.status < 200:
                self._cancel_abandoned(client)
            elif resp.status < 300:
                self._hang_up_abandoned(client, resp)
            return
        if resp.status < 200:
            if client.on_provisional is not None:
                try:
                    client.on_provisional(resp)
                except Exception:
                    log.exception("on_provisional callback failed")
        elif not client.future.done():
            client.future.set_result(resp)

    def _learn_public_address(self, resp: Response) -> None:
        try:
            via = resp.top_via
        except SipParseError:
            return
        received = via.params.get("received")
        rport = via.params.get("rport")
        if received or rport:
            host = received or self.sent_by[0]
            port = self.transport.port
            # on a stream the source port is the connection's, not where we listen
            if rport and rport.isdigit() and not self.transport.reliable:
                port = int(rport)
            self.public_address = (host, port)

    def _client_timer(self, client: _Client, name: Timer) -> None:
        self._timers.pop((id(client.tx), name), None)
        self._client_actions(client, client.tx.timer(name))

    def _end_client(self, client: _Client) -> None:
        if self._clients.get(client.tx.key) is client:
            del self._clients[client.tx.key]
        self._cancel_timers(client.tx)

    # --- timers ------------------------------------------------------------------------------

    def _arm(
        self,
        tx: ClientTransaction | ServerTransaction,
        action: ArmTimer,
        fire: Callable[[Timer], None],
    ) -> None:
        key = (id(tx), action.name)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(action.delay, fire, action.name)

    def _cancel_timers(self, tx: ClientTransaction | ServerTransaction) -> None:
        for name in Timer:
            handle = self._timers.pop((id(tx), name), None)
            if handle is not None:
                handle.cancel()

    # --- receiving ---------------------------------------------------------------------------

    def _on_lost(self, peer: Peer, reason: str) -> None:
        for client in [c for c in self._clients.values() if c.peer == peer]:
            if not client.future.done():
                client.future.set_exception(SipTransportError(f"{peer[0]}:{peer[1]}: {reason}"))
            self._client_actions(client, client.tx.transport_error())
        for tx, incoming in [v for v in self._servers.values() if v[1].peer == peer]:
            self._server_actions(tx, incoming.peer, tx.transport_error())
        for callback in list(self._lost_callbacks):
            try:
                callback(peer, reason)
            except Exception:
                log.exception("on_lost callback failed")

    def _on_message(self, data: bytes, peer: Peer) -> None:
        try:
            self._dispatch(data, peer)
        except Exception:  # a stranger's bytes must never take the transport down
            self.stats.malformed += 1
            log.exception("SIP message from %s:%s could not be handled", peer[0], peer[1])

    def _dispatch(self, data: bytes, peer: Peer) -> None:
        try:
            msg = parse_message(data, stream=self.transport.reliable)
        except SipParseError as exc:
            self.stats.malformed += 1
            log.info("malformed SIP from %s:%s: %s", peer[0], peer[1], exc.reason)
            self._answer_malformed(exc, peer)
            return
        try:
            if isinstance(msg, Response):
                self._on_response(msg)
            else:
                self._on_request(msg, peer)
        except SipParseError as exc:  # a header read on demand (Contact, Route) is bad
            self.stats.malformed += 1
            log.info("malformed SIP from %s:%s: %s", peer[0], peer[1], exc.reason)

    def _on_response(self, resp: Response) -> None:
        client = self._clients.get(client_key(resp))
        if client is None:
            self.stats.stray_responses += 1
            sent = self._acks.get((resp.call_id, resp.cseq.seq))
            if sent is not None and 200 <= resp.status < 300:
                self.transport.send(sent[0], sent[1])  # a 2xx retransmitted after timer M
            return
        self._client_actions(client, client.tx.receive(resp))

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
import inspect
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from sip.address import NameAddr, SipParseError, SipUri, Via
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
    Terminated,
    TimedOut,
    Timer,
    Transmit,
    client_key,
    server_key,
)
from sip.transport import Peer, TcpTransport, Transport, UdpTransport

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, SUBSCRIBE, INFO"
MAX_SERVER_TRANSACTIONS = 4096
# A handler that never answers must not hold a transaction (and its memory) forever: an INVITE
# ringing this long gets 480, any other request 500 after 64*T1 (when its client gives up).
MAX_RING = 300.0


class SipError(Exception):
    """Base of the endpoint's errors."""


class SipTimeout(SipError):
    """No final response before timer B/F."""


class SipTransportError(SipError):
    """The peer could not be reached (connection refused/reset, ICMP unreachable)."""


Handler = Callable[["IncomingRequest"], Awaitable[None] | None]


@dataclass
class EndpointStats:
    malformed: int = 0  # messages that did not parse
    answered_400: int = 0
    stray_responses: int = 0
    overload_503: int = 0


@dataclass(eq=False)
class IncomingRequest:
    endpoint: SipEndpoint
    request: Request
    peer: Peer
    tx: ServerTransaction | None  # None for an ACK of a 2xx (no transaction)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_request: Request | None = None  # the CANCEL (its Reason header tells why)
    to_tag: str = field(default_factory=new_tag)  # used by respond() unless given
    _guard: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def answered(self) -> bool:
        return self.tx is None or self.tx.answered

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> Response:
        resp = Response.for_request(
            self.request, status, reason, to_tag=to_tag or self.to_tag, headers=headers, body=body
        )
        self.send_response(resp)
        return resp

    def send_response(self, response: Response) -> None:
        if self.tx is None:
            raise ValueError("an ACK is not answered")
        if self.tx.answered:
            return  # a late answer after CANCEL/500: the transaction is already final
        self.endpoint._server_actions(self.tx, self.peer, self.tx.respond(response))


@dataclass
class _Client:
    tx: ClientTransaction
    peer: Peer
    future: asyncio.Future[Response]
    on_provisional: Callable[[Response], None] | None


class SipEndpoint:
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
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
    ) -> None:
        name = transport.upper()
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

    def contact(self, user: str | None = None) -> SipUri:
        """Our Contact URI (the address the registrar saw, once a response told us)."""
        host, port = self.public_address or self.local_address
        params: dict[str, str | None] = {}
        if self.transport.name != "UDP":
            params["transport"] = self.transport.name.lower()
        return SipUri("sip", user, host, port, params=params)

    def on_request(self, method: str, handler: Handler) -> None:
        self._handlers[method.upper()] = handler

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

    def _add_via(self, request: Request) -> None:
        host, port = self.local_address
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
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=2)
        return infos[0][4][0], port

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
        self._add_via(request)
        tx = ClientTransaction(
            request, reliable=self.transport.reliable, t1=self.t1, t2=self.t2, t4=self.t4
        )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        client = _Client(tx, peer, future, on_provisional)
        self._clients[tx.key] = client
        self._client_actions(client, tx.start())
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # the caller gave up: forget the transaction (a late answer is a stray)
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
        peer = dest or await self.resolve(cancel)
        tx = ClientTransaction(
            cancel, reliable=self.transport.reliable, t1=self.t1, t2=self.t2, t4=self.t4
        )
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        client = _Client(tx, peer, future, None)
        self._clients[tx.key] = client
        self._client_actions(client, tx.start())
        return await asyncio.shield(future)

    async def send_ack(self, ack: Request, dest: Peer | None = None) -> None:
        """Send the ACK of a 2xx (built by :meth:`sip.dialog.Dialog.ack`); it is sent again
        if the 2xx is retransmitted within 64*T1."""
        peer = dest or await self.resolve(ack)
        self._add_via(ack)
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
            host = received or self.transport.host
            port = int(rport) if rport and rport.isdigit() else self.transport.port
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
                client.future.set_exception(
                    SipTransportError(f"{peer[0]}:{peer[1]} unreachable: {reason}")
                )
            self._client_actions(client, client.tx.transport_error())
        for tx, incoming in [v for v in self._servers.values() if v[1].peer == peer]:
            self._server_actions(tx, incoming.peer, tx.transport_error())

    def _on_message(self, data: bytes, peer: Peer) -> None:
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

    def _answer_malformed(self, exc: SipParseError, peer: Peer) -> None:
        req = exc.partial
        if not isinstance(req, Request) or req.method == "ACK":
            return
        if not req.headers.get_list("Via"):
            return  # nowhere to send it
        try:
            resp = Response.for_request(req, 400, f"Bad Request ({exc.reason})", to_tag=new_tag())
            resp.top_via  # noqa: B018 - a Via we cannot read must not be echoed
        except SipParseError:
            return
        self.stats.answered_400 += 1
        self.transport.send(resp.to_bytes(), peer)

    def _on_response(self, resp: Response) -> None:
        client = self._clients.get(client_key(resp))
        if client is None:
            self.stats.stray_responses += 1
            sent = self._acks.get((resp.call_id, resp.cseq.seq))
            if sent is not None and 200 <= resp.status < 300:
                self.transport.send(sent[0], sent[1])  # a 2xx retransmitted after timer M
            return
        self._client_actions(client, client.tx.receive(resp))

    def _fix_via(self, req: Request, peer: Peer) -> None:
        vias = req.headers.get_list("Via")
        via = Via.parse(vias[0])
        changed = False
        if via.host.strip("[]") != peer[0]:
            via.params["received"] = peer[0]
            changed = True
        if "rport" in via.params and via.params["rport"] is None:
            via.params["rport"] = str(peer[1])
            changed = True
        if changed:
            req.headers.remove("Via")
            for value in [str(via), *vias[1:]]:
                req.headers.add("Via", value)

    def _on_request(self, req: Request, peer: Peer) -> None:
        self._fix_via(req, peer)
        key = server_key(req)
        known = self._servers.get(key)
        if known is not None:
            tx, incoming = known
            self._server_actions(tx, incoming.peer, tx.receive_request(req))
            return
        if req.method == "ACK":  # the ACK of a 2xx: end to end, the handler's business
            handler = self._handlers.get("ACK")
            if handler is not None:
                self._run(handler, IncomingRequest(self, req, peer, None))
            return
        tx = ServerTransaction(req, reliable=self.transport.reliable, t1=self.t1, t2=self.t2)
        incoming = IncomingRequest(self, req, peer, tx)
        if len(self._servers) >= MAX_SERVER_TRANSACTIONS:
            self.stats.overload_503 += 1
            self._server_actions(tx, peer, tx.respond(Response.for_request(req, 503)))
            return
        self._servers[key] = (tx, incoming)
        incoming._guard = asyncio.get_running_loop().call_later(
            self.max_ring if req.method == "INVITE" else 64 * self.t1, self._unanswered, incoming
        )
        if req.method == "CANCEL":
            self._on_cancel(incoming, key)
            return
        if req.method == "INVITE":
            self._server_actions(tx, peer, tx.respond(Response.for_request(req, 100)))
        handler = self._handlers.get(req.method)
        if handler is None:
            if req.method == "OPTIONS":
                incoming.respond(200, headers=[("Allow", ALLOW), ("Accept", "application/sdp")])
            else:
                incoming.respond(405, headers=[("Allow", ALLOW)])
            return
        self._run(handler, incoming)

    def _unanswered(self, incoming: IncomingRequest) -> None:
        if not incoming.answered:
            log.warning("SIP %s left unanswered by its handler", incoming.request.method)
            incoming.respond(480 if incoming.request.method == "INVITE" else 500)

    def _on_cancel(self, incoming: IncomingRequest, key: tuple[str, str, str]) -> None:
        invite = self._servers.get((key[0], key[1], "INVITE"))
        if invite is None:
            incoming.respond(481)
            return
        incoming.respond(200)
        inv_incoming = invite[1]
        inv_incoming.cancel_request = incoming.request
        inv_incoming.cancelled.set()
        handler = self._handlers.get("CANCEL")
        if handler is not None:
            self._run(handler, inv_incoming, then_487=True)
        elif not inv_incoming.answered:
            inv_incoming.respond(487)

    def _run(self, handler: Handler, incoming: IncomingRequest, *, then_487: bool = False) -> None:
        def finish() -> None:
            if then_487 and not incoming.answered:
                incoming.respond(487)

        def failed(exc: BaseException) -> None:
            log.error("SIP %s handler failed", incoming.request.method, exc_info=exc)
            if not incoming.answered:
                incoming.respond(487 if then_487 else 500)

        try:
            result = handler(incoming)
        except Exception as exc:
            failed(exc)
            return
        if not inspect.isawaitable(result):
            finish()
            return

        async def wait() -> None:
            try:
                await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed(exc)
                return
            finish()

        task = asyncio.get_running_loop().create_task(wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _server_actions(self, tx: ServerTransaction, peer: Peer, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self.transport.send(action.message.to_bytes(), peer)
            elif isinstance(action, ArmTimer):
                self._arm(tx, action, lambda name, t=tx, p=peer: self._server_timer(t, p, name))
            elif isinstance(action, TimedOut):
                log.info("no ACK for our answer to %s", tx.request.method)
            elif isinstance(action, Terminated):
                self._cancel_timers(tx)
                known = self._servers.get(tx.key)
                if known is not None and known[0] is tx:
                    del self._servers[tx.key]
                    if known[1]._guard is not None:
                        known[1]._guard.cancel()

    def _server_timer(self, tx: ServerTransaction, peer: Peer, name: Timer) -> None:
        self._timers.pop((id(tx), name), None)
        self._server_actions(tx, peer, tx.timer(name))

"""The server side of :class:`sip.endpoint.SipEndpoint`: incoming requests and their answers.

:class:`ServerSide` is a mixin of the endpoint (it uses its transport, timers and handlers):
it absorbs retransmissions through the server transactions, answers CANCEL, OPTIONS and
unhandled methods, fills ``received``/``rport`` into the top Via (RFC 3581), answers a
malformed request 400 when the answer can be read back, and bounds the transactions kept.
:class:`IncomingRequest` is what a handler gets.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from sip.address import SipParseError, Via
from sip.message import Request, Response, new_tag, parse_message
from sip.transaction import (
    T1,
    T2,
    Action,
    ArmTimer,
    ClientTransaction,
    ServerTransaction,
    State,
    Terminated,
    TimedOut,
    Timer,
    Transmit,
    server_key,
)
from sip.transport import Peer, Transport

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, SUBSCRIBE, INFO"
MAX_SERVER_TRANSACTIONS = 4096
# A handler that never answers must not hold a transaction (and its memory) forever: an INVITE
# ringing this long gets 480, any other request 500 after 64*T1 (when its client gives up).
MAX_RING = 300.0

Handler = Callable[["IncomingRequest"], Awaitable[None] | None]


@dataclass
class EndpointStats:
    malformed: int = 0  # messages that did not parse
    answered_400: int = 0
    stray_responses: int = 0
    overload_503: int = 0


@dataclass(eq=False)
class IncomingRequest:
    endpoint: ServerSide
    request: Request
    peer: Peer
    tx: ServerTransaction | None  # None for an ACK of a 2xx (no transaction)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_request: Request | None = None  # the CANCEL (its Reason header tells why)
    acked: asyncio.Event = field(default_factory=asyncio.Event)  # ACK of our INVITE error
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
        if self.tx.answered or self.tx.state is State.TERMINATED:
            # a late answer after CANCEL/500, or after the peer's connection went away: the
            # transaction is over and there is no one to send it to
            return
        self.endpoint._server_actions(self.tx, self.peer, self.tx.respond(response))


class ServerSide:
    """Mixin: the endpoint provides these attributes and the timer methods."""

    transport: Transport
    stats: EndpointStats
    t1: float = T1
    t2: float = T2
    max_ring: float = MAX_RING
    _handlers: dict[str, Handler]
    _servers: dict[tuple[str, str, str], tuple[ServerTransaction, IncomingRequest]]
    _tasks: set[asyncio.Task[None]]

    def _arm(
        self,
        tx: ClientTransaction | ServerTransaction,
        action: ArmTimer,
        fire: Callable[[Timer], None],
    ) -> None:
        raise NotImplementedError

    def _cancel_timers(self, tx: ClientTransaction | ServerTransaction) -> None:
        raise NotImplementedError

    def _answer_malformed(self, exc: SipParseError, peer: Peer) -> None:
        req = exc.partial
        if not isinstance(req, Request) or req.method == "ACK":
            return
        try:
            if not req.headers.get_list("Via"):
                return  # nowhere to send it
            resp = Response.for_request(req, 400, f"Bad Request ({exc.reason})", to_tag=new_tag())
            data = resp.to_bytes()
            # what we could not read (a bad From, CSeq, Via) is not echoed: the peer could
            # not match such a 400 to its request either
            parse_message(data)
        except SipParseError:
            return
        self.stats.answered_400 += 1
        self.transport.send(data, peer)

    def _fix_via(self, req: Request, peer: Peer) -> None:
        vias = req.headers.get_list("Via")
        via = Via.parse(vias[0])
        changed = False
        wants_rport = "rport" in via.params and via.params["rport"] is None
        # RFC 3581 §4: with rport, received is added even when it equals the sent-by host
        if wants_rport or via.host.strip("[]") != peer[0]:
            via.params["received"] = peer[0]
            changed = True
        if wants_rport:
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
            if req.method == "ACK" and tx.state in (State.CONFIRMED, State.TERMINATED):
                incoming.acked.set()
            return
        if req.method == "ACK":  # the ACK of a 2xx: end to end, the handler's business
            handler = self._handlers.get("ACK")
            if handler is not None:
                self._run(handler, IncomingRequest(self, req, peer, None))
            return
        tx = ServerTransaction(req, reliable=self.transport.reliable, t1=self.t1, t2=self.t2)
        incoming = IncomingRequest(self, req, peer, tx)
        if len(self._servers) >= MAX_SERVER_TRANSACTIONS and not self._evict_answered():
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

    def _evict_answered(self) -> bool:
        """Make room by forgetting the oldest answered transaction that only waits to absorb
        retransmissions (timer J, or I after the ACK): on UDP each stays 64*T1, so a steady
        few hundred NOTIFYs a second would otherwise fill the table with finished work."""
        for tx, incoming in self._servers.values():
            if (not tx.invite and tx.answered) or tx.state is State.CONFIRMED:
                self._server_actions(tx, incoming.peer, tx.transport_error())
                return True
        return False

    def _unanswered(self, incoming: IncomingRequest) -> None:
        if not incoming.answered:
            log.warning("SIP %s left unanswered by its handler", incoming.request.method)
            incoming.respond(480 if incoming.request.method == "INVITE" else 500)

    def _on_cancel(self, incoming: IncomingRequest, key: tuple[str, str, str]) -> None:
        invite = self._servers.get((key[0], key[1], "INVITE"))
        if invite is None:
            incoming.respond(481)
            return
        inv_incoming = invite[1]
        # §9.2: the CANCEL's 200 carries the To tag of the INVITE's responses
        incoming.respond(200, to_tag=inv_incoming.to_tag)
        if inv_incoming.answered:
            return  # §9.2: a CANCEL of an INVITE already answered has no effect
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

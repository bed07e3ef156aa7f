"""Client and server transactions of RFC 3261 §17 as I/O-free state machines.

Every method returns a list of actions for the adapter (:mod:`sip.endpoint`):

* :class:`Transmit` — send this message to the transaction's peer;
* :class:`ArmTimer` — (re)arm the named timer: an earlier timer of the same name on the same
  transaction is cancelled first; when it fires the adapter calls ``timer(name)``;
* :class:`Deliver` — a response for the transaction user (client side, each 1xx and the final);
* :class:`TimedOut` — timer B/F (no final response: the TU treats it as a 408), or timer H on
  the server side (the ACK for our error response never came);
* :class:`Terminated` — forget the transaction and cancel its timers.

Time is only what the adapter feeds in (timers firing), so the tests drive the machines with
a fake clock. Retransmissions (timers A, E, G) happen on unreliable transports only;
``reliable=True`` (TCP/TLS) sets the wait timers D, I, J, K to zero as §17 says.

Not done here, by choice: a UAS 2xx to INVITE is retransmitted by the TU in RFC 3261, and our
UAS never answers an INVITE with 2xx (the observer rings, it never picks up), so the INVITE
server transaction just ends on 2xx. A 2xx retransmitted to our INVITE is passed up again
(``Accepted`` state of RFC 6026, timer M) so the UAC can repeat its ACK.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sip.message import BRANCH_MAGIC, Headers, Request, Response

T1 = 0.5
T2 = 4.0
T4 = 5.0


class Timer(enum.StrEnum):
    A = "A"  # INVITE client: retransmit
    B = "B"  # INVITE client: give up (64*T1)
    D = "D"  # INVITE client: absorb final-response retransmissions
    E = "E"  # non-INVITE client: retransmit
    F = "F"  # non-INVITE client: give up
    G = "G"  # INVITE server: retransmit the error response
    H = "H"  # INVITE server: give up waiting for ACK
    I = "I"  # INVITE server: absorb ACK retransmissions  # noqa: E741
    J = "J"  # non-INVITE server: absorb request retransmissions
    K = "K"  # non-INVITE client: absorb response retransmissions
    M = "M"  # INVITE client (RFC 6026): pass 2xx retransmissions up


class State(enum.StrEnum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Transmit:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class ArmTimer:
    name: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class Deliver:
    response: Response
    retransmission: bool = False  # a repeated 2xx (re-ACK it), never a new answer


@dataclass(frozen=True, slots=True)
class TimedOut:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Terminated:
    pass


Action = Transmit | ArmTimer | Deliver | TimedOut | Terminated

TransactionKey = tuple[str, str, str]  # (branch, sent-by, method); ACK → INVITE


def server_key(request: Request) -> TransactionKey:
    """§17.2.3: branch + sent-by + method, with ACK matching its INVITE (and CANCEL its own).
    A pre-RFC 3261 branch (no magic cookie) falls back to Call-ID + From tag + CSeq."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    sent_by = f"{via.host}:{via.port or ''}"
    branch = via.branch or ""
    if not branch.startswith(BRANCH_MAGIC):
        branch = f"2543:{request.call_id}:{request.from_.tag}:{request.cseq.seq}"
    return branch, sent_by, method


def client_key(response: Response) -> tuple[str, str]:
    """§17.1.3: the top Via branch and the CSeq method."""
    return response.branch or "", response.cseq.method


class ClientTransaction:
    """One request we sent, until its final response (INVITE §17.1.1, non-INVITE §17.1.2)."""

    def __init__(
        self, request: Request, *, reliable: bool, t1: float = T1, t2: float = T2, t4: float = T4
    ) -> None:
        if request.method == "ACK":
            raise ValueError("ACK has no client transaction")
        self.request = request
        self.reliable = reliable
        self.invite = request.method == "INVITE"
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.state = State.CALLING if self.invite else State.TRYING
        self.key = (request.branch or "", request.method)
        self._interval = t1
        self.final: Response | None = None
        self._ack: Request | None = None

    def start(self) -> list[Action]:
        acts: list[Action] = [Transmit(self.request)]
        if not self.reliable:
            acts.append(ArmTimer(Timer.A if self.invite else Timer.E, self.t1))
        acts.append(ArmTimer(Timer.B if self.invite else Timer.F, 64 * self.t1))
        return acts

    def receive(self, response: Response) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        provisional = response.status < 200
        if self.invite:
            return self._receive_invite(response, provisional)
        if self.state in (State.TRYING, State.PROCEEDING):
            if provisional:
                self.state = State.PROCEEDING
                return [Deliver(response)]
            self.state = State.COMPLETED
            self.final = response
            return [Deliver(response), *self._wait(Timer.K, self.t4)]
        return []  # COMPLETED: a retransmitted final is absorbed

    def _receive_invite(self, response: Response, provisional: bool) -> list[Action]:
        if self.state in (State.CALLING, State.PROCEEDING):
            if provisional:
                self.state = State.PROCEEDING
                return [Deliver(response)]
            self.final = response
            if response.status < 300:
                self.state = State.ACCEPTED
                return [Deliver(response), ArmTimer(Timer.M, 64 * self.t1)]
            self.state = State.COMPLETED
            self._ack = self._error_ack(response)
            return [Transmit(self._ack), Deliver(response), *self._wait(Timer.D, 32.0)]
        if self.state is State.ACCEPTED and 200 <= response.status < 300:
            return [Deliver(response, retransmission=True)]
        if self.state is State.COMPLETED and response.status >= 300 and self._ack is not None:
            return [Transmit(self._ack)]
        return []

    def _wait(self, timer: Timer, delay: float) -> list[Action]:
        if self.reliable:
            self.state = State.TERMINATED
            return [Terminated()]
        return [ArmTimer(timer, delay)]

    def _error_ack(self, response: Response) -> Request:
        """§17.1.1.3: same branch, Request-URI and Route as the INVITE; To from the response."""
        req = self.request
        h = Headers()
        h.add("Via", req.headers.get_list("Via")[0])
        for name in ("Max-Forwards", "From"):
            value = req.headers.get(name)
            if value is not None:
                h.add(name, value)
        h.add("To", response.headers.get("To") or req.headers.get("To") or "")
        h.add("Call-ID", req.call_id)
        h.add("CSeq", f"{req.cseq.seq} ACK")
        for route in req.headers.get_all("Route"):
            h.add("Route", route)
        return Request("ACK", req.uri, h)

    def timer(self, name: Timer) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        if name in (Timer.A, Timer.E):
            return self._retransmit(name)
        if (name is Timer.B and self.state is State.CALLING) or (
            name is Timer.F and self.state in (State.TRYING, State.PROCEEDING)
        ):
            self.state = State.TERMINATED
            return [TimedOut(name), Terminated()]
        if name in (Timer.D, Timer.K, Timer.M):
            self.state = State.TERMINATED
            return [Terminated()]
        return []

    def _retransmit(self, name: Timer) -> list[Action]:
        if name is Timer.A and self.state is State.CALLING:
            self._interval *= 2
            return [Transmit(self.request), ArmTimer(Timer.A, self._interval)]
        if name is Timer.E and self.state in (State.TRYING, State.PROCEEDING):
            # §17.1.2.2: doubling up to T2 while trying, every T2 once a 1xx came
            if self.state is State.PROCEEDING:
                self._interval = self.t2
            else:
                self._interval = min(2 * self._interval, self.t2)
            return [Transmit(self.request), ArmTimer(Timer.E, self._interval)]
        return []

    def transport_error(self) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        pending = self.final is None
        self.state = State.TERMINATED
        return (
            [TimedOut(Timer.B if self.invite else Timer.F), Terminated()]
            if pending
            else [Terminated()]
        )


class ServerTransaction:
    """One request we received, until our final response is safely delivered."""

    def __init__(
        self, request: Request, *, reliable: bool, t1: float = T1, t2: float = T2, t4: float = T4
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.invite = request.method == "INVITE"
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.state = State.PROCEEDING if self.invite else State.TRYING
        self.key = server_key(request)
        self.last_response: Response | None = None
        self._interval = t1

    @property
    def answered(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def receive_request(self, request: Request) -> list[Action]:
        """A retransmission of the request, or the ACK of our INVITE error response."""
        if request.method == "ACK":
            if self.invite and self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                if self.reliable:
                    self.state = State.TERMINATED
                    return [Terminated()]
                return [ArmTimer(Timer.I, self.t4)]
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [Transmit(self.last_response)]
        return []

    def respond(self, response: Response) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise ValueError(f"transaction already answered ({self.state})")
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Transmit(response)]
        if self.invite and response.status < 300:
            self.state = State.TERMINATED
            return [Transmit(response), Terminated()]
        if self.invite:
            self.state = State.COMPLETED
            acts: list[Action] = [Transmit(response)]
            if not self.reliable:
                acts.append(ArmTimer(Timer.G, self.t1))
            acts.append(ArmTimer(Timer.H, 64 * self.t1))
            return acts
        self.state = State.COMPLETED
        if self.reliable:
            self.state = State.TERMINATED
            return [Transmit(response), Terminated()]
        return [Transmit(response), ArmTimer(Timer.J, 64 * self.t1)]

    def timer(self, name: Timer) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        if name is Timer.G and self.state is State.COMPLETED and self.last_response:
            self._interval = min(2 * self._interval, self.t2)
            return [Transmit(self.last_response), ArmTimer(Timer.G, self._interval)]
        if name is Timer.H and self.state is State.COMPLETED:
            self.state = State.TERMINATED
            return [TimedOut(Timer.H), Terminated()]
        if (name is Timer.I and self.state is State.CONFIRMED) or (
            name is Timer.J and self.state is State.COMPLETED and not self.invite
        ):
            self.state = State.TERMINATED
            return [Terminated()]
        return []

    def transport_error(self) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        self.state = State.TERMINATED
        return [Terminated()]

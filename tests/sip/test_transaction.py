"""Transaction state machines driven by a fake clock: retransmissions, timeouts, absorption."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from sip.message import Request, Response, new_branch, parse_message
from sip.transaction import (
    T1,
    T2,
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
    server_key,
)


def request(method: str = "INVITE", branch: str | None = None) -> Request:
    return Request(
        method,
        "sip:bob@127.0.0.1",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch or new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@127.0.0.1>;tag=a1"),
            ("To", "<sip:bob@127.0.0.1>"),
            ("Call-ID", "cid1"),
            ("CSeq", f"1 {method}"),
            ("Route", "<sip:proxy.example;lr>"),
        ],
    )


def answer(req: Request, status: int) -> Response:
    return Response.for_request(req, status, to_tag="b1")


@dataclass
class Clock:
    """The adapter's contract, in miniature: arming a timer replaces the one of that name."""

    now: float = 0.0
    timers: dict[Timer, float] = field(default_factory=dict)
    sent: list[tuple[float, Request | Response]] = field(default_factory=list)
    events: list[Action] = field(default_factory=list)
    done: bool = False

    def apply(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, ArmTimer):
                self.timers[a.name] = self.now + a.delay
            elif isinstance(a, Transmit):
                self.sent.append((self.now, a.message))
            else:
                if isinstance(a, Terminated):
                    self.done = True
                    self.timers.clear()
                self.events.append(a)

    def run(self, tx: ClientTransaction | ServerTransaction, until: float) -> None:
        while self.timers and not self.done:
            heap = [(t, n) for n, t in self.timers.items()]
            heapq.heapify(heap)
            at, name = heap[0]
            if at > until:
                break
            del self.timers[name]
            self.now = at
            self.apply(tx.timer(name))
        self.now = max(self.now, until)


def test_invite_client_retransmits_doubling_then_times_out_at_64_t1() -> None:
    tx = ClientTransaction(request(), reliable=False)
    clock = Clock()
    clock.apply(tx.start())
    clock.run(tx, 100)
    times = [t for t, _ in clock.sent]
    assert times == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A doubles without a cap
    assert clock.events == [TimedOut(Timer.B), Terminated()]
    assert tx.state is State.TERMINATED


def test_invite_client_stops_retransmitting_on_1xx_and_acks_an_error() -> None:
    req = request()
    tx = ClientTransaction(req, reliable=False)
    clock = Clock()
    clock.apply(tx.start())
    clock.apply(tx.receive(answer(req, 180)))
    clock.run(tx, 10)
    assert len(clock.sent) == 1 and tx.state is State.PROCEEDING
    busy = answer(req, 486)
    clock.apply(tx.receive(busy))
    ack = clock.sent[-1][1]
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.branch == req.branch and ack.cseq.method == "ACK" and ack.cseq.seq == 1
    assert ack.to.tag == "b1" and ack.headers.get("Route") == "<sip:proxy.example;lr>"
    parse_message(ack.to_bytes())
    clock.apply(tx.receive(busy))  # a retransmitted 486 is ACKed again, not passed up
    assert [m.method for _, m in clock.sent[1:]] == ["ACK", "ACK"]  # type: ignore[union-attr]
    assert [type(e) for e in clock.events] == [Deliver, Deliver]
    clock.run(tx, 10 + 32)
    assert clock.done and tx.state is State.TERMINATED


def test_invite_client_passes_2xx_retransmissions_up_for_a_new_ack() -> None:
    req = request()
    tx = ClientTransaction(req, reliable=False)
    clock = Clock()
    clock.apply(tx.start())
    ok = answer(req, 200)
    clock.apply(tx.receive(ok))
    clock.apply(tx.receive(ok))
    assert clock.events == [Deliver(ok), Deliver(ok, retransmission=True)]
    assert len(clock.sent) == 1  # the ACK of a 2xx is the dialog's, not the transaction's
    clock.run(tx, 64 * T1)
    assert clock.done


def test_non_invite_client_caps_at_t2_and_times_out() -> None:
    tx = ClientTransaction(request("REGISTER"), reliable=False)
    clock = Clock()
    clock.apply(tx.start())
    clock.run(tx, 100)
    gaps = [b - a for (a, _), (b, _) in zip(clock.sent, clock.sent[1:], strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[3:]) == {T2}
    assert clock.events == [TimedOut(Timer.F), Terminated()] and clock.now >= 32


def test_non_invite_client_retransmits_every_t2_after_1xx_and_absorbs_final() -> None:
    req = request("OPTIONS")
    tx = ClientTransaction(req, reliable=False)
    clock = Clock()
    clock.apply(tx.start())
    clock.apply(tx.receive(answer(req, 100)))
    clock.run(tx, 10)
    assert [t for t, _ in clock.sent] == [0, 0.5, 4.5, 8.5]
    ok = answer(req, 200)
    clock.apply(tx.receive(ok))
    clock.apply(tx.receive(ok))
    assert [e.response.status for e in clock.events if isinstance(e, Deliver)] == [100, 200]
    clock.run(tx, 20)
    assert clock.done


def test_reliable_transport_never_retransmits_and_ends_at_once() -> None:
    req = request("REGISTER")
    tx = ClientTransaction(req, reliable=True)
    clock = Clock()
    clock.apply(tx.start())
    clock.run(tx, 10)
    assert len(clock.sent) == 1
    clock.apply(tx.receive(answer(req, 200)))
    assert clock.done and tx.state is State.TERMINATED


def test_invite_server_retransmits_error_until_ack_then_absorbs() -> None:
    req = request()
    tx = ServerTransaction(req, reliable=False)
    clock = Clock()
    clock.apply(tx.respond(answer(req, 180)))
    clock.apply(tx.receive_request(req))  # INVITE retransmitted: the 180 again
    assert [m.status for _, m in clock.sent] == [180, 180]  # type: ignore[union-attr]
    clock.apply(tx.respond(answer(req, 487)))
    clock.run(tx, 3)
    assert [t for t, _ in clock.sent[2:]] == [0, 0.5, 1.5]  # G: T1, 2T1, ...
    ack = Request("ACK", req.uri, req.headers.copy())
    ack.headers.set("CSeq", "1 ACK")
    assert server_key(ack) == server_key(req)
    clock.apply(tx.receive_request(ack))
    assert tx.state is State.CONFIRMED
    clock.run(tx, 100)
    assert len(clock.sent) == 5 and clock.done and TimedOut(Timer.H) not in clock.events


def test_invite_server_gives_up_without_ack() -> None:
    req = request()
    tx = ServerTransaction(req, reliable=False)
    clock = Clock()
    clock.apply(tx.respond(answer(req, 486)))
    clock.run(tx, 100)
    assert clock.events == [TimedOut(Timer.H), Terminated()]
    gaps = [b - a for (a, _), (b, _) in zip(clock.sent, clock.sent[1:], strict=False)]
    assert max(gaps) == T2


def test_non_invite_server_answers_retransmissions_with_the_final_response() -> None:
    req = request("NOTIFY")
    tx = ServerTransaction(req, reliable=False)
    clock = Clock()
    assert tx.receive_request(req) == []  # nothing to repeat yet
    clock.apply(tx.respond(answer(req, 200)))
    clock.apply(tx.receive_request(req))
    assert len(clock.sent) == 2
    clock.run(tx, 64 * T1)
    assert clock.done


def test_keys_match_cancel_and_ack_rules() -> None:
    inv = request(branch="z9hG4bKabc")
    cancel = request("CANCEL", branch="z9hG4bKabc")
    assert server_key(cancel) != server_key(inv)
    assert server_key(cancel)[:2] == server_key(inv)[:2]
    old = request(branch="1234")  # RFC 2543 peer: no magic cookie
    assert server_key(old)[0].startswith("2543:")
    assert client_key(answer(inv, 200)) == ("z9hG4bKabc", "INVITE")
    assert ClientTransaction(inv, reliable=True).key == ("z9hG4bKabc", "INVITE")


def test_transport_error_fails_a_pending_client_transaction() -> None:
    tx = ClientTransaction(request("REGISTER"), reliable=True)
    assert tx.transport_error() == [TimedOut(Timer.F), Terminated()]
    assert tx.transport_error() == []

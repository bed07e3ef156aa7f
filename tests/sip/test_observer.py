"""The observer's transaction rules without a socket: retransmissions, the 487 re-sent until
its ACK, the cap on ringing calls, a call no CANCEL ever ends, the watcher's "who answered"."""

from __future__ import annotations

from callcenter.line_events import Answered, CallEnded, CallStarted, EndState, MissReason
from sip.message import Request, parse_message
from sip.observer import TIMER_H, Observer, ObserverConfig


def invite(call_id: str = "c1", branch: str = "z9hG4bK1", extra: str = "") -> Request:
    msg = parse_message((
        f"INVITE sip:crm@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}"
        f"\r\nFrom: <sip:89161234567@pbx>;tag=f\r\nTo: <sip:74951234567@pbx>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def request(method: str, call_id: str = "c1", branch: str = "z9hG4bK1", extra: str = ""
            ) -> Request:
    msg = parse_message((
        f"{method} sip:crm@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;"
        f"branch={branch}\r\nFrom: <sip:89161234567@pbx>;tag=f\r\nTo: <sip:74951234567@pbx>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def observer(**kw) -> Observer:
    return Observer(ObserverConfig(line="office", contact="<sip:crm@127.0.0.1:5070>", **kw))


def test_retransmitted_invite_rings_again_without_news() -> None:
    obs = observer()
    first = obs.receive(invite(), 0.0)
    assert [r.status for r in first.send] == [100, 180]
    assert isinstance(first.events[0], CallStarted)
    again = obs.receive(invite(), 0.5)
    assert [r.status for r in again.send] == [180] and again.events == []
    assert again.send[0].to.tag == first.send[1].to.tag


def test_487_resent_until_ack_then_forgotten() -> None:
    obs = observer()
    obs.receive(invite(), 0.0)
    cancel = obs.receive(request("CANCEL"), 1.0)
    assert [r.status for r in cancel.send] == [200, 487]
    assert [r.status for r in obs.advance(1.6).send] == [487]
    assert obs.advance(1.7).send == []  # the interval doubled
    obs.receive(request("ACK"), 2.0)
    assert len(obs) == 0 and obs.advance(3.0).send == []


def test_487_given_up_after_timer_h() -> None:
    obs = observer()
    obs.receive(invite(), 0.0)
    obs.receive(request("CANCEL"), 1.0)
    obs.advance(1.0 + TIMER_H + 0.1)
    assert len(obs) == 0


def test_at_most_max_calls_ring() -> None:
    obs = observer(max_calls=2)
    obs.receive(invite("a"), 0)
    obs.receive(invite("b"), 0)
    third = obs.receive(invite("c"), 0)
    assert [r.status for r in third.send] == [486] and third.events == []


def test_a_call_no_cancel_ends_is_closed_no_answer() -> None:
    obs = observer(max_ring=60)
    obs.receive(invite(), 0)
    out = obs.advance(61)
    assert [r.status for r in out.send] == [480]
    end = out.events[-1]
    assert isinstance(end, CallEnded) and end.reason is MissReason.NO_ANSWER


def test_who_answered_from_the_watcher_and_kept_open() -> None:
    obs = observer(keep_answered=True)
    obs.receive(invite(), 0)
    obs.answered_by("c1", "102")
    out = obs.receive(request("CANCEL", extra='Reason: SIP;cause=200;text="elsewhere"\r\n'), 1)
    assert out.events == [Answered(obs.key_of("c1") or "", 1, "102")]
    assert not any(isinstance(e, CallEnded) and e.state is EndState.ANSWERED for e in out.events)


def test_unknown_requests() -> None:
    obs = observer()
    assert obs.receive(request("CANCEL", "nope"), 0).send[0].status == 481
    assert obs.receive(request("BYE", "nope"), 0).send[0].status == 481
    assert obs.receive(request("OPTIONS", "q"), 0).send[0].status == 200
    assert obs.receive(request("MESSAGE", "m"), 0).send[0].status == 405


def test_under_a_transaction_layer_nothing_is_resent_and_no_deadline_is_due() -> None:
    obs = Observer(ObserverConfig(line="office", contact="<sip:crm@127.0.0.1:5070>",
                                  retransmit=False))
    obs.receive(invite(), 0.0)
    obs.receive(request("CANCEL"), 1.0)
    assert obs.advance(2.0).send == []
    deadline = obs.next_deadline()
    assert deadline is not None and deadline >= 1.0 + TIMER_H  # not a busy loop of ticks

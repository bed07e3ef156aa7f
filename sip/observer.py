"""The observer extension's calls: INVITEs answered ``180 Ringing`` and never picked up. Sans-I/O.

The admin adds the product's extension to a ring group or queue; the PBX rings it with every
other phone. :meth:`Observer.receive` takes one parsed request and returns the responses to
send back and the line events it means; :meth:`Observer.advance` re-sends a final response the
PBX has not acknowledged (RFC 3261 timer G, UDP) and gives up on calls that ring for too long.

* INVITE: caller ID and dialled number (sip/identity.py), ``100 Trying`` + ``180 Ringing``,
  ``CallStarted`` + ``RingingChanged`` (the line's ``ring_extensions``: the phones of the group).
  A retransmitted INVITE gets the same 180 again; nothing new is published.
* CANCEL: ``200`` to it, ``487`` to the INVITE. ``Reason: SIP;cause=200`` (answered elsewhere)
  -> ``Answered`` (by whom, if a dialog watcher knows; see :meth:`answered_by`), and -- since
  the observer sees nothing after -- ``CallEnded(answered)`` unless the line keeps the call
  open for the watcher (``keep_answered``). Otherwise the caller gave up: ``CallEnded(missed,
  abandoned)``.
* ACK stops the 487's retransmissions; OPTIONS (the PBX's qualify) gets 200; a request for a
  call we do not know gets 481; a method we do not serve 405 (except what the line routes
  elsewhere: NOTIFY to the watcher).
* At most ``max_calls`` ring at once: one more gets ``486 Busy Here`` (a flood never grows
  memory without bound).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallStarted,
    Direction,
    EndState,
    LineEvent,
    MissReason,
    RingingChanged,
)
from sip.identity import CancelOutcome, caller_id, cancel_outcome, dialled
from sip.message import Request, Response, new_tag

T1 = 0.5
T2 = 4.0
TIMER_H = 32.0


class _Phase(enum.Enum):
    RINGING = "ringing"
    COMPLETED = "completed"  # final response sent, waiting for the ACK


@dataclass
class _Call:
    key: str
    invite: Request
    to_tag: str
    branch: str
    started: float
    phase: _Phase = _Phase.RINGING
    final: Response | None = None
    resend_at: float = 0.0
    interval: float = T1
    give_up_at: float = 0.0
    answered: bool = False


@dataclass(frozen=True, slots=True)
class ObserverConfig:
    line: str
    contact: str  # our Contact URI, "<sip:crm@127.0.0.1:5070>"
    ring_extensions: tuple[str, ...] = ()
    max_calls: int = 1000
    max_ring: float = 600.0  # a call no CANCEL ends (a PBX that vanished) is closed after this
    keep_answered: bool = False  # a dialog watcher reports the end of answered calls
    # Re-send the final response until its ACK (False: a transaction layer under us does,
    # sip.endpoint's; the call is only kept until timer H).
    retransmit: bool = True


@dataclass
class Result:
    send: list[Response] = field(default_factory=list)
    events: list[LineEvent] = field(default_factory=list)


def call_key(line: str, call_id: str) -> str:
    """Stable per call, bounded whatever the PBX's Call-ID (a hash, never the raw text)."""
    return f"sip:{line}:{hashlib.sha1(call_id.encode('utf-8', 'replace')).hexdigest()[:20]}"


class Observer:
    def __init__(self, config: ObserverConfig) -> None:
        self.config = config
        self._calls: dict[str, _Call] = {}  # Call-ID -> call
        # Who answered a call, as a dialog watcher saw it (Call-ID -> extension).
        self._answerers: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def ringing(self) -> int:
        return sum(1 for c in self._calls.values() if c.phase is _Phase.RINGING)

    def key_of(self, call_id: str) -> str | None:
        call = self._calls.get(call_id)
        return call.key if call else None

    def ringing_from(self, caller: str) -> str | None:
        """The key of the one call ringing from ``caller`` (None: none, or several)."""
        found = [c.key for c in self._calls.values() if c.phase is _Phase.RINGING
                 and caller_id(c.invite.headers).number == caller]
        return found[0] if len(found) == 1 else None

    def answered_by(self, call_id: str, extension: str) -> None:
        """The dialog watcher saw ``extension`` answer the call with this Call-ID."""
        if len(self._answerers) < 4 * self.config.max_calls:
            self._answerers[call_id] = extension

    def receive(self, req: Request, now: float) -> Result:
        method = req.method
        if method == "INVITE":
            return self._invite(req, now)
        if method == "CANCEL":
            return self._cancel(req, now)
        if method == "ACK":
            call = self._calls.get(req.call_id)
            if call is not None and call.phase is _Phase.COMPLETED:
                del self._calls[req.call_id]
            return Result()
        if method == "OPTIONS":
            return Result([Response.for_request(req, 200, to_tag=new_tag(), headers=[
                ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY"),
                ("Accept", "application/sdp")])])
        if method == "BYE":
            return Result([Response.for_request(req, 481)])
        return Result([Response.for_request(req, 405, headers=[
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY")])])

    def _invite(self, req: Request, now: float) -> Result:
        call = self._calls.get(req.call_id)
        if call is not None:
            if call.branch != (req.branch or ""):
                # A re-INVITE or a second fork of a call already ringing here: not for us.
                return Result([Response.for_request(req, 486, to_tag=call.to_tag)])
            if call.phase is _Phase.COMPLETED and call.final is not None:
                return Result([call.final])
            return Result([self._ringing(call)])
        if req.to.tag is not None:
            return Result([Response.for_request(req, 481)])  # a re-INVITE of a dialog we lost
        if self.ringing() >= self.config.max_calls:
            return Result([Response.for_request(req, 486, to_tag=new_tag())])
        key = call_key(self.config.line, req.call_id)
        call = _Call(key, req, new_tag(), req.branch or "", now,
                     give_up_at=now + self.config.max_ring)
        self._calls[req.call_id] = call
        who = caller_id(req.headers)
        to = dialled(req.headers, str(req.uri))
        events: list[LineEvent] = [
            CallStarted(line=self.config.line, call_key=key, at=now,
                        direction=Direction.INBOUND, caller_num=who.number,
                        caller_name=who.name, called_num=to.original or to.number,
                        withheld=who.withheld),
            RingingChanged(key, now, self.config.ring_extensions),
        ]
        return Result([Response.for_request(req, 100), self._ringing(call)], events)

    def _ringing(self, call: _Call) -> Response:
        return Response.for_request(call.invite, 180, to_tag=call.to_tag,
                                    headers=[("Contact", self.config.contact)])

    def _cancel(self, req: Request, now: float) -> Result:
        call = self._calls.get(req.call_id)
        if call is None or call.branch != (req.branch or "") or call.phase is not _Phase.RINGING:
            if call is not None and call.phase is _Phase.COMPLETED:
                return Result([Response.for_request(req, 200, to_tag=call.to_tag)])
            return Result([Response.for_request(req, 481)])
        ok = Response.for_request(req, 200, to_tag=call.to_tag)
        outcome = cancel_outcome(req.headers)
        events: list[LineEvent]
        if outcome is CancelOutcome.ANSWERED_ELSEWHERE:
            ext = self._answerers.pop(req.call_id, None)
            events = [Answered(call.key, now, ext)]
            if not self.config.keep_answered:
                events.append(CallEnded(call.key, now, EndState.ANSWERED, None,
                                        "answered elsewhere (the observer does not see the end)"))
        else:
            events = [RingingChanged(call.key, now, ()),
                      CallEnded(call.key, now, EndState.MISSED, MissReason.ABANDONED,
                                "caller hung up (CANCEL)")]
        return Result([ok, self._final(call, 487, now)], events)

    def _final(self, call: _Call, status: int, now: float) -> Response:
        call.phase = _Phase.COMPLETED
        call.final = Response.for_request(call.invite, status, to_tag=call.to_tag)
        call.resend_at, call.interval = now + T1, T1
        call.give_up_at = now + TIMER_H
        return call.final

    def advance(self, now: float) -> Result:
        out = Result()
        for call_id, call in list(self._calls.items()):
            if call.phase is _Phase.RINGING:
                if now >= call.give_up_at:
                    out.send.append(self._final(call, 480, now))
                    out.events += [RingingChanged(call.key, now, ()),
                                   CallEnded(call.key, now, EndState.MISSED,
                                             MissReason.NO_ANSWER,
                                             f"no CANCEL after {self.config.max_ring:.0f} s")]
                continue
            if now >= call.give_up_at:
                del self._calls[call_id]  # timer H: the ACK never came
            elif self.config.retransmit and now >= call.resend_at and call.final is not None:
                out.send.append(call.final)
                call.interval = min(call.interval * 2, T2)
                call.resend_at = now + call.interval
        return out

    def lost(self, now: float, why: str = "SIP line stopped while ringing") -> list[LineEvent]:
        """The line stops or lost the PBX: calls still ringing cannot be followed."""
        events: list[LineEvent] = []
        for call in self._calls.values():
            if call.phase is _Phase.RINGING:
                events += [RingingChanged(call.key, now, ()),
                           CallEnded(call.key, now, EndState.MISSED, MissReason.FAILED, why)]
        self._calls.clear()
        return events

    def next_deadline(self) -> float | None:
        resend = self.config.retransmit
        times = [c.resend_at if resend and c.phase is _Phase.COMPLETED else c.give_up_at
                 for c in self._calls.values()]
        return min(times) if times else None

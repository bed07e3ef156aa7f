"""Click-to-call over plain SIP (asyncio): ring the user's own phone with an INVITE from the
line; when it answers, hand it the client's number with REFER (RFC 3515) and follow the
transfer by the NOTIFY sipfrag bodies; then leave the call (BYE).

The outcome is one of :class:`Outcome`, published as the call's line events (the console and
the call log show it) and returned to whoever awaits :meth:`ClickToCall.run`:

* the phone is busy or does not answer (our CANCEL after ``ring_timeout``);
* the phone refuses REFER (405/501/420/603...): "this phone does not support transfer";
* the client is busy / does not answer / the call failed (the sipfrag status);
* success: the phone talks to the client, the line is out of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallStarted,
    Direction,
    EndState,
    LineEvent,
    MissReason,
    RingingChanged,
    TransferKind,
    Transferred,
)
from sip.dialog import Dialog, DialogError
from sip.dialog_info import parse_sipfrag
from sip.endpoint import IncomingRequest, SipEndpoint, SipError
from sip.message import Request, Response, new_call_id, new_tag
from sip.watcher import in_dialog

log = logging.getLogger(__name__)

BUSY = frozenset({486, 600})
NO_ANSWER = frozenset({408, 480, 487})
NO_REFER = frozenset({405, 501, 420, 603, 488, 403})

SDP = ("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=callcenter\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
       "m=audio 9 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    PHONE_BUSY = "phone_busy"
    PHONE_NO_ANSWER = "phone_no_answer"
    PHONE_FAILED = "phone_failed"
    NO_TRANSFER = "no_transfer"  # the phone does not support REFER
    BUSY = "busy"  # the client's number
    NO_ANSWER = "no_answer"
    FAILED = "failed"


TEXT = {
    Outcome.SUCCESS: "the phone was connected to the number",
    Outcome.PHONE_BUSY: "your phone is busy",
    Outcome.PHONE_NO_ANSWER: "your phone did not answer",
    Outcome.PHONE_FAILED: "your phone could not be rung",
    Outcome.NO_TRANSFER: "this phone does not support transfer (REFER)",
    Outcome.BUSY: "the number is busy",
    Outcome.NO_ANSWER: "the number did not answer",
    Outcome.FAILED: "the call to the number failed",
}


@dataclass(frozen=True, slots=True)
class CallPlan:
    line: str
    key: str
    extension: str
    number: str  # as typed by the user (what finds the client)
    dial: str  # what goes into the Refer-To
    user: str  # our auth user (From)
    domain: str
    ring_timeout: float = 30.0
    transfer_timeout: float = 60.0


# (a builder given a CSeq) -> (the request last sent, its final response); challenges answered
Send = Callable[..., Awaitable[tuple[Request, Response]]]


class ClickToCall:
    def __init__(self, plan: CallPlan, endpoint: SipEndpoint, send: Send,
                 emit: Callable[[LineEvent], None], clock: Callable[[], float]) -> None:
        self.plan = plan
        self._endpoint = endpoint
        self._send = send
        self._emit = emit
        self._clock = clock
        self.call_id = new_call_id()  # known before anything is sent: NOTIFYs find us by it
        self._tag = new_tag()
        self.dialog: Dialog | None = None
        self.progress: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=32)
        self.hung_up = asyncio.Event()  # the phone sent BYE
        self.outcome: Outcome | None = None
        self.detail = ""

    # in-dialog requests the line routes here ---------------------------------------------

    def notify(self, incoming: IncomingRequest) -> None:
        req = incoming.request
        if not in_dialog(incoming, self.dialog, self._tag):
            return
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer":
            return
        try:
            status = parse_sipfrag(req.body)
        except ValueError:
            status = None
        state = (req.headers.get("Subscription-State") or "").lower()
        if status is None and state.startswith("terminated"):
            status = (0, "subscription ended")
        if status is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self.progress.put_nowait(status)

    def bye(self, incoming: IncomingRequest) -> None:
        if not in_dialog(incoming, self.dialog, self._tag):
            return
        self.hung_up.set()

    # the flow ----------------------------------------------------------------------------

    async def run(self) -> Outcome:
        p = self.plan
        now = self._clock()
        self._emit(CallStarted(line=p.line, call_key=p.key, at=now, direction=Direction.OUTBOUND,
                               caller_num=p.extension, caller_name="", called_num=p.number,
                               originated=True))
        self._emit(RingingChanged(p.key, now, (p.extension,)))
        try:
            outcome = await self._flow()
        except (SipError, OSError) as exc:
            outcome, self.detail = Outcome.PHONE_FAILED, f"the PBX did not answer ({exc})"
        except asyncio.CancelledError:
            self._finish(Outcome.FAILED, "the line stopped")
            raise
        self._finish(outcome, self.detail)
        return outcome

    async def _flow(self) -> Outcome:
        p = self.plan
        invite_box: dict[str, Request] = {}

        def build(cseq: int) -> Request:
            req = self._invite(cseq)
            invite_box["req"] = req
            return req

        # The endpoint adds its Via to the very object built: the CANCEL copies its branch.
        send = asyncio.ensure_future(self._send(build))
        try:
            sent, response = await asyncio.wait_for(asyncio.shield(send), p.ring_timeout)
        except TimeoutError:
            with contextlib.suppress(SipError, OSError, KeyError):
                await self._endpoint.cancel(invite_box["req"])
            sent, response = await send  # the 487 the CANCEL brings
        if response.status in BUSY:
            self.detail = f"{response.status} {response.reason}"
            return Outcome.PHONE_BUSY
        if response.status in NO_ANSWER or response.status == 603:
            self.detail = f"{response.status} {response.reason}"
            return Outcome.PHONE_NO_ANSWER
        if response.status >= 300:
            self.detail = f"{response.status} {response.reason}"
            return Outcome.PHONE_FAILED
        self.dialog = dialog = Dialog.as_uac(sent, response)
        await self._endpoint.send_ack(dialog.ack(response))
        self._emit(RingingChanged(p.key, self._clock(), ()))
        try:
            return await self._transfer(dialog)
        finally:
            if not self.hung_up.is_set():
                with contextlib.suppress(SipError, OSError, DialogError):
                    await self._endpoint.request(dialog.new_request("BYE"))

    async def _transfer(self, dialog: Dialog) -> Outcome:
        p = self.plan

        def refer(_cseq: int) -> Request:
            return dialog.new_request("REFER", headers=[
                ("Refer-To", f"<sip:{p.dial}@{p.domain}>"),
                ("Referred-By", f"<sip:{p.user}@{p.domain}>"),
                ("Contact", f"<{self._endpoint.contact(p.user)}>")])
        _, response = await self._send(refer)
        if response.status in NO_REFER:
            self.detail = f"REFER refused: {response.status} {response.reason}"
            return Outcome.NO_TRANSFER
        if response.status >= 300:
            self.detail = f"REFER failed: {response.status} {response.reason}"
            return Outcome.FAILED
        deadline = self._clock() + p.transfer_timeout
        while True:
            left = deadline - self._clock()
            if left <= 0:
                self.detail = f"no word on the transfer in {p.transfer_timeout:.0f} s"
                return Outcome.NO_ANSWER
            try:
                status, reason = await asyncio.wait_for(self.progress.get(), left)
            except TimeoutError:
                continue
            if status < 200 and status != 0:
                continue
            self.detail = f"{status} {reason}".strip()
            if 200 <= status < 300:
                return Outcome.SUCCESS
            if status in BUSY:
                return Outcome.BUSY
            if status in NO_ANSWER:
                return Outcome.NO_ANSWER
            return Outcome.FAILED

    def _invite(self, cseq: int) -> Request:
        p = self.plan
        ip = self._endpoint.local_address[0]
        headers = [("Content-Type", "application/sdp"), ("Allow",
                   "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER")]
        req = self._endpoint.new_request(
            "INVITE", f"sip:{p.extension}@{p.domain}",
            f'"{p.number}" <sip:{p.user}@{p.domain}>', f"<sip:{p.extension}@{p.domain}>",
            call_id=self.call_id, cseq=cseq, from_tag=self._tag,
            headers=headers, body=SDP.format(ip=ip).encode())
        return req

    def _finish(self, outcome: Outcome, detail: str) -> None:
        self.outcome = outcome
        p = self.plan
        now = self._clock()
        cause = TEXT[outcome] + (f" ({detail})" if detail else "")
        log.info("click-to-call %s: %s", p.key, cause)
        if outcome is Outcome.SUCCESS:
            self._emit(Answered(p.key, now, None, by_outside=True))
            self._emit(Transferred(p.key, now, TransferKind.BLIND, p.extension, p.number))
            self._emit(CallEnded(p.key, now, EndState.ANSWERED, None, cause))
            return
        self._emit(RingingChanged(p.key, now, ()))
        if outcome in (Outcome.NO_TRANSFER, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED):
            result = {Outcome.BUSY: "busy", Outcome.NO_ANSWER: "no_answer"}.get(outcome,
                                                                               "failed")
            self._emit(Transferred(p.key, now, TransferKind.BLIND, p.extension, p.number,
                                   result))
        reason = {Outcome.PHONE_BUSY: MissReason.BUSY, Outcome.BUSY: MissReason.BUSY,
                  Outcome.PHONE_NO_ANSWER: MissReason.NO_ANSWER,
                  Outcome.NO_ANSWER: MissReason.NO_ANSWER}.get(outcome, MissReason.FAILED)
        state = EndState.FAILED if reason is MissReason.FAILED else EndState.MISSED
        self._emit(CallEnded(p.key, now, state, reason, cause))

"""Asterisk fax traffic over AMI, without I/O: AMI messages in, fax events out.

What the recorded traffic (tests/fixtures/ami 09_fax_send, 10_fax_receive) taught:

* ``SendFAX``/``ReceiveFAX`` end a fax but carry **no result field**: the result is the last
  ``VarSet FAXSTATUS`` of the channel before them, which flips FAILED → SUCCESS within
  milliseconds at the end (and FAXERROR=HANGUP stays set next to SUCCESS). So every VarSet of
  a channel is kept and the last value read when the final event comes.
* There is no per-page event: the page in progress comes from polling ``FAXSessions`` (to
  find the session number of our channel) and ``FAXSession`` (``PagesTransmitted``).
* ``RemoteStationID`` is free text of the far end; it is passed on as text, never parsed.
* Every session sees every fax channel on the PBX (the simulated far end's ReceiveFAX in 09,
  another session's Originate in 10): a send is ours only when it is bound to one of our jobs,
  and a reception only when its channel is in one of the configured receive contexts.
* Our Originate sets ``ChannelId``, the Uniqueid of the fax channel; the OriginateResponse
  names it as well (and is the only link when a PBX ignores ChannelId), so both bind a job.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.faxes.ports import FaxOutcome, FaxProgress, FaxResult

# OriginateResponse Reason codes (Asterisk's AST_CONTROL_*): 5 busy, 3 no answer, 8
# congestion, 1 hung up while ringing, 0 no such channel/failure.
_ORIGINATE_REASONS = {"5": FaxOutcome.BUSY, "3": FaxOutcome.NO_ANSWER, "1": FaxOutcome.NO_ANSWER,
                      "8": FaxOutcome.LINE_ERROR, "0": FaxOutcome.LINE_ERROR}
# Hangup causes (Q.850) of a call that never reached the fax.
_HANGUP_CAUSES = {"17": FaxOutcome.BUSY, "18": FaxOutcome.NO_ANSWER, "19": FaxOutcome.NO_ANSWER,
                  "21": FaxOutcome.FAILED}
# FAXERROR values that no second call would cure: the far end cannot take this fax, or the
# file is bad. The rest (HANGUP, RETRAIN, TIMEOUT, PROTOCOL...) are line errors.
_REFUSED = re.compile(r"NEGOTIAT|INCOMPATIBLE|UNSUPPORTED|FILE|CAPABILIT|NOT_FAX|REJECT",
                      re.I)
_KEEP_RESPONSES = 64
_KEEP_CHANNELS = 2000  # OriginateResponses kept for a job bound after they came
_FAX_VARIABLES = frozenset({"FAXSTATUS", "FAXERROR", "FAXSTATUSSTRING", "FAXPAGES", "FAXMODE",
                            "REMOTESTATIONID"})


@dataclass(frozen=True, slots=True)
class Reception:
    """A fax the dialplan's ReceiveFAX stored on the PBX (files as the PBX names them)."""

    files: tuple[str, ...]
    pages: int
    caller_num: str
    remote_station: str
    ok: bool
    detail: str
    at: float


@dataclass
class _Channel:
    name: str = ""
    context: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    answered: bool = False
    sending: bool = False  # FAXStatus "FAX Transmission In Progress" for a send
    final: object | None = None  # the SendFAX/ReceiveFAX event's headers
    hangup_cause: str | None = None


@dataclass
class _Send:
    ref: str
    pages: int
    uniqueid: str | None = None
    action_id: str | None = None
    done: bool = False
    started: bool = False
    last_page: int = -1


class AsteriskFaxTracker:
    def __init__(self, receive_contexts: list[str]) -> None:
        self.receive_contexts = set(receive_contexts)
        # Channels of the whole PBX, by Uniqueid; one whose Hangup was missed (AMI down) would
        # stay for ever, so the oldest go beyond _KEEP_CHANNELS.
        self._channels: OrderedDict[str, _Channel] = OrderedDict()
        self._sends: dict[str, _Send] = {}  # ref -> send
        self._by_uniqueid: dict[str, _Send] = {}
        self._by_action: dict[str, _Send] = {}
        self._responses: OrderedDict[str, dict[str, str]] = OrderedDict()
        self.sessions: dict[str, str] = {}  # FAX session number -> Uniqueid

    # -- our jobs ------------------------------------------------------------------------------

    def expect(self, ref: str, uniqueid: str, pages: int) -> None:
        send = _Send(ref, pages, uniqueid)
        self._sends[ref] = send
        self._by_uniqueid[uniqueid] = send

    def bind_action(self, ref: str, action_id: str) -> list[FaxProgress | FaxResult]:
        """The Originate's ActionID, known once it was queued (its OriginateResponse may have
        come already)."""
        send = self._sends.get(ref)
        if send is None:
            return []
        send.action_id = action_id
        self._by_action[action_id] = send
        headers = self._responses.pop(action_id, None)
        return self._originate_response(send, headers) if headers is not None else []

    def forget(self, ref: str) -> None:
        send = self._sends.pop(ref, None)
        if send is not None:
            self._by_uniqueid.pop(send.uniqueid or "", None)
            self._by_action.pop(send.action_id or "", None)

    def active(self) -> list[tuple[str, str]]:
        """(ref, channel name) of our sends in progress: what to poll FAXSessions for."""
        out = []
        for send in self._sends.values():
            channel = self._channels.get(send.uniqueid or "")
            if not send.done and channel is not None and channel.sending and channel.name:
                out.append((send.ref, channel.name))
        return out

    def unfinished(self) -> list[tuple[str, str]]:
        """(ref, channel name) of our sends with no end seen: after a reconnect, each is asked
        about (its end may have come while the connection was down)."""
        out = []
        for send in self._sends.values():
            channel = self._channels.get(send.uniqueid or "")
            if not send.done and channel is not None and channel.name:
                out.append((send.ref, channel.name))
        return out

    def lost(self, ref: str) -> list[FaxResult]:
        """The channel of a send is gone and its end was never seen (the AMI connection was
        down meanwhile): the result is unknown, so never "sent" — and not retried, since the
        far end may have every page."""
        send = self._sends.get(ref)
        if send is None or send.done:
            return []
        send.done = True
        confirmed = max(0, send.last_page)
        return [FaxResult(ref, time.time(), FaxOutcome.UNKNOWN, confirmed, send.pages,
                          detail="the call ended while the AMI connection was down: "
                                 "result unknown")]

    def unknown(self, ref: str, detail: str) -> list[FaxResult]:
        """The Originate's answer never came (timed out, connection lost before any event of
        its channel): a send whose channel is not known either has nothing left to end it."""
        send = self._sends.get(ref)
        if send is None or send.done or send.started or send.uniqueid in self._channels:
            return []
        send.done = True
        return [FaxResult(ref, time.time(), FaxOutcome.UNKNOWN, max(0, send.last_page),
                          send.pages, detail=f"{detail}: result unknown"[:300])]

    def channel_uniqueid(self, name: str) -> str | None:
        for uniqueid, channel in self._channels.items():
            if channel.name == name:
                return uniqueid
        return None

    # -- the stream ----------------------------------------------------------------------------

    def feed(self, h: dict[str, str], files: tuple[str, ...] = ()
             ) -> list[FaxProgress | FaxResult | Reception]:
        """One AMI message (its headers; ``files``: every FileName header it had)."""
        event = h.get("Event", "")
        if event == "OriginateResponse":
            return self._on_originate_response(h)
        if event == "FAXSession":
            return self._on_session(h)
        uniqueid = h.get("Uniqueid")
        if not uniqueid:
            return []
        channel = self._channels.get(uniqueid)
        if channel is None:
            if event not in ("Newchannel", "VarSet", "FAXStatus", "Newstate"):
                return []
            channel = self._channels[uniqueid] = _Channel()
            while len(self._channels) > _KEEP_CHANNELS:
                self._channels.popitem(last=False)
        channel.name = h.get("Channel") or channel.name
        channel.context = h.get("Context") or channel.context
        if h.get("ChannelState") == "6":
            channel.answered = True
        if event == "VarSet":
            if h.get("Variable") in _FAX_VARIABLES:
                channel.variables[h["Variable"]] = h.get("Value") or ""
            return []
        send = self._by_uniqueid.get(uniqueid)
        if event == "FAXStatus":
            if h.get("Operation") == "send" and h.get("Status") == "FAX Transmission In Progress":
                channel.sending = True
                return self._started(send)
            return []
        if event == "SendFAX":
            channel.final = h
            return self._finish(send, channel) if send is not None else []
        if event == "ReceiveFAX":
            channel.final = h
            if send is None and channel.context in self.receive_contexts:
                return [self._reception(channel, h, files or (h.get("FileName") or "",))]
            return []
        if event == "Hangup":
            channel.hangup_cause = h.get("Cause") or ""
            self._channels.pop(uniqueid, None)
            for number in [n for n, u in self.sessions.items() if u == uniqueid]:
                del self.sessions[number]
            if send is not None and not send.done:
                return self._finish(send, channel)
        return []

    def _started(self, send: _Send | None) -> list[FaxProgress | FaxResult]:
        if send is None or send.started or send.done:
            return []
        send.started = True
        send.last_page = 0
        return [FaxProgress(send.ref, time.time(), "sending", 0, send.pages)]

    def _on_originate_response(self, h: dict[str, str]) -> list[FaxProgress | FaxResult]:
        action_id = h.get("ActionID") or ""
        send = self._by_action.get(action_id)
        if send is None:
            # Maybe ours and not bound yet, maybe another session's: keep a few.
            self._responses[action_id] = h
            while len(self._responses) > _KEEP_RESPONSES:
                self._responses.popitem(last=False)
            return []
        return self._originate_response(send, h)

    def _originate_response(self, send: _Send, h: dict[str, str]
                            ) -> list[FaxProgress | FaxResult]:
        uniqueid = h.get("Uniqueid") or ""
        if h.get("Response") == "Success":
            if uniqueid and uniqueid != "<unknown>" and uniqueid != send.uniqueid:
                # The PBX chose its own Uniqueid: follow that channel instead.
                self._by_uniqueid.pop(send.uniqueid or "", None)
                send.uniqueid = uniqueid
                self._by_uniqueid[uniqueid] = send
            channel = self._channels.get(send.uniqueid or "")
            out: list[FaxProgress | FaxResult] = []
            if channel is not None and channel.sending:
                out += self._started(send)
            if channel is not None and channel.final is not None:
                out += self._finish(send, channel)
            return out
        if send.done:
            return []
        outcome = _ORIGINATE_REASONS.get(h.get("Reason") or "", FaxOutcome.LINE_ERROR)
        send.done = True
        return [FaxResult(send.ref, time.time(), outcome, 0, send.pages,
                          detail=f"originate failed (reason {h.get('Reason')})")]

    def _on_session(self, h: dict[str, str]) -> list[FaxProgress | FaxResult]:
        uniqueid = self.sessions.get(h.get("SessionNumber") or "")
        send = self._by_uniqueid.get(uniqueid or "")
        if send is None or send.done or h.get("Operation") != "send":
            return []
        try:
            pages = int(h.get("PagesTransmitted") or 0)
        except ValueError:
            return []
        if pages <= send.last_page:
            return []
        send.last_page = pages
        return [FaxProgress(send.ref, time.time(), "sending", pages, send.pages)]

    def _finish(self, send: _Send, channel: _Channel) -> list[FaxProgress | FaxResult]:
        if send.done:
            return []
        send.done = True
        v = channel.variables
        detail = " ".join(x for x in (v.get("FAXERROR", ""), v.get("FAXSTATUSSTRING", "")) if x)
        final = channel.final
        if isinstance(final, Mapping):  # pbx.ami.message.Headers, read lazily
            pages = _int(final.get("PagesTransferred"))
            station = final.get("RemoteStationID") or ""
            if v.get("FAXSTATUS") == "SUCCESS":
                outcome = FaxOutcome.SENT
            elif pages or _REFUSED.search(v.get("FAXERROR", "")):
                # Pages went through, or the far end / our file is the problem (another call
                # would end the same way): failed, not retried.
                outcome = FaxOutcome.FAILED
            else:
                outcome = FaxOutcome.LINE_ERROR
            return [FaxResult(send.ref, time.time(), outcome, pages, send.pages, station,
                              detail=detail or "SendFAX finished")]
        # Hung up before SendFAX ended: never a success. Once the fax started, pages may have
        # reached the far end: failed with what was seen, never a line error to retry.
        cause = channel.hangup_cause or ""
        if send.started:
            outcome = FaxOutcome.FAILED
        elif channel.answered:
            outcome = FaxOutcome.LINE_ERROR
        else:
            outcome = _HANGUP_CAUSES.get(cause, FaxOutcome.LINE_ERROR)
        return [FaxResult(send.ref, time.time(), outcome, max(0, send.last_page), send.pages,
                          detail=f"hung up (cause {cause}) {detail}".strip())]

    def _reception(self, channel: _Channel, h: dict[str, str], files: tuple[str, ...]
                   ) -> Reception:
        v = channel.variables
        return Reception(
            files=tuple(f for f in files if f), pages=_int(h.get("PagesTransferred")),
            caller_num=h.get("CallerIDNum") or "", remote_station=h.get("RemoteStationID") or "",
            ok=v.get("FAXSTATUS") == "SUCCESS",
            detail=" ".join(x for x in (v.get("FAXERROR", ""), v.get("FAXSTATUSSTRING", ""))
                            if x),
            at=time.time())


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0

"""AMI call correlator: AMI event messages in, line events out. Pure code, no I/O.

A call is everything sharing one ``Linkedid`` (``call_key = "<line>:<Linkedid>"``); a leg is one
channel, keyed by ``Uniqueid``. A leg keeps the call it joined at ``Newchannel`` even if a later
event shows another Linkedid. Nothing AMI-specific leaves this module: the events speak of office
extensions (``"101"``), numbers and the opaque call key.

Rules (each checked against the recorded traces in ``tests/fixtures/ami``):

* **Which calls exist.** The first channel of a Linkedid decides:
  - an incoming trunk channel (endpoint in ``trunk_endpoints`` or context in ``trunk_contexts``,
    state not Down) -> inbound, caller = CallerIDNum/Name, called = its Exten (the DID);
  - a channel matching :meth:`AmiCallCorrelator.expect_originate` (our click-to-call) -> outbound,
    originated, caller = the extension, called = the number;
  - an office phone (``PJSIP/101-*``) -> known once it dials: a trunk -> outbound (number from the
    DialString ``89031234567@trunk``, else the phone's Exten), an extension -> internal. A phone
    call that never dials anything (voicemail, feature codes, another AMI session's originate
    that was not picked up) produces no events, except a long number that never got a channel,
    which ends as an outbound FAILED call;
  - anything else (Local channels, an AMI originate towards a trunk that is not ours such as a
    SendFAX, the far side of a loop-back) is tracked silently and never becomes a call.
* **When CallStarted goes out.** Inbound: with the first call-progress event after Newchannel
  (queue join, dial, state change, hangup ...), i.e. in the same millisecond, so a
  ``Set(CRM_WITHHELD=...)`` at the first dialplan priority is honoured. Originated: at once.
  Phone calls: at their first Dial. Recordings seen before that are emitted right after it.
* **Ringing** is the set of office extensions whose real (non-Local) legs ring now: dialled by
  Dial/Queue (DialBegin, AgentCalled) or in state Ringing, until they answer, DialEnd,
  AgentRingNoAnswer or hang up. When one leg answers, the other legs dialled by the same channel
  stop ringing at once (Dial and Queue cancel them anyway). Queue retries are new legs of the same
  call. The originating phone of a click-to-call rings too ("your phone rings first").
* **Answered** is emitted once per call, for the first answer: an extension leg that was dialled
  (Newstate Up / DialEnd ANSWER / AgentConnect, whichever comes first), or a trunk leg dialled
  for the call (``by_outside=True``). The originating phone going off-hook is not an answer. A
  transfer target picking up later is not a second Answered: the Transferred event (emitted when
  Asterisk reports the transfer) says where the call went. An inbound call whose fax tone is
  detected (``FAXEXTEN``, ``FAXStatus``) is answered by the PBX: ``Answered(extension=None,
  by_outside=False)``.
* **PbxAnswered** once, when an inbound caller's own leg goes Up before any person answered
  (the dialplan's ``Answer()``, an IVR, voicemail); see pbx/ami/outcomes.py for what that
  makes of the call's end, its voicemail (``RECORDED_FILE``/``VM_MESSAGEFILE``) and its cause.
* **Ended** once, when the call's last leg is gone: ANSWERED if answered (``by_pbx`` when only
  the PBX did and nobody rang for the caller); inbound/internal otherwise MISSED with ABANDONED
  (QueueCallerAbandon, or the caller gave up), NO_ANSWER / BUSY / FAILED from the last failed
  Dial of the current ring attempt; outbound otherwise FAILED with
  NO_ANSWER / BUSY / FAILED / ABANDONED (an originate the user did not pick up: NO_ANSWER, or the
  OriginateResponse reason). ``cause`` = ``"<Cause> <Cause-txt>"`` of the calling leg.
* Unknown events, unknown channels and malformed messages are ignored; ``feed`` never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    HoldChanged,
    LineEvent,
    MissReason,
    PbxAnswered,
    RecordingKind,
    RecordingStarted,
    RingingChanged,
    TransferKind,
    Transferred,
)
from pbx.ami.channels import dial_number, is_extension, looks_like_number, parse_channel
from pbx.ami.escape import display_name
from pbx.ami.message import Message
from pbx.ami.outcomes import (
    VOICEMAIL_VARIABLES,
    CallFacts,
    cause_text,
    end_cause,
    record_format,
    unanswered_inbound,
    voicemail_path,
)
from pbx.ami.transfers import AtxferNotes, unnamed_target

log = logging.getLogger(__name__)

WITHHELD_NUMBERS = frozenset(
    {"", "anonymous", "<unknown>", "unknown", "restricted", "private", "withheld"}
)
_WITHHELD_VALUES = ("1", "yes", "true", "withheld", "prohib")  # prefix match, lower case
_DOWN, _RINGING, _UP = "0", "5", "6"
_DIAL_FAILURES = {
    "NOANSWER": MissReason.NO_ANSWER,
    "BUSY": MissReason.BUSY,
    "CHANUNAVAIL": MissReason.FAILED,
    "CONGESTION": MissReason.FAILED,
    "INVALIDARGS": MissReason.FAILED,
}
# OriginateResponse Reason: the last control frame seen (4 = answered).
_ORIGINATE_REASONS = {"3": MissReason.NO_ANSWER, "5": MissReason.BUSY}
# Q.850 causes of a calling leg that was never picked up.
_CAUSE_REASONS = {"17": MissReason.BUSY, "18": MissReason.NO_ANSWER, "19": MissReason.NO_ANSWER}
_VAR_RECORDING, _VAR_WITHHELD, _VAR_FAX, _VAR_VOICEMAIL, _VAR_VMSTATUS = 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class CorrelatorConfig:
    line: str = "asterisk"
    trunk_endpoints: frozenset[str] = frozenset({"trunk", "faxtrunk"})
    trunk_contexts: frozenset[str] = frozenset({"from-trunk"})
    extension_max_digits: int = 6
    # A channel variable the dialplan may set (``Set(CRM_WITHHELD=${CALLERID(pres)})``) because
    # AMI carries no presentation: "1"/"yes"/"prohib..." mark the caller as withheld. It must be
    # set before the call's first Queue/Dial/Answer. Without it the Asterisk line asks the PBX
    # (Getvar CALLERID(pres), pbx/ami/withheld.py).
    withheld_variable: str = "CRM_WITHHELD"
    originate_ttl: float = 300.0  # an expect_originate() nothing matched is forgotten after this


class _Leg:
    __slots__ = (
        "bridge",
        "call",
        "channel",
        "dialed_by",
        "ext",
        "local",
        "number",
        "ringing",
        "trunk",
        "uid",
        "up",
    )

    def __init__(
        self, uid: str, channel: str, call: _Call, ext: str | None, trunk: bool, local: bool
    ) -> None:
        self.uid = uid
        self.channel = channel
        self.call = call
        self.ext = ext  # the office extension this leg reaches (Local: the dialled extension)
        self.trunk = trunk
        self.local = local
        self.ringing = False
        self.up = False
        self.dialed_by: str | None = None  # Uniqueid of the dialling leg ("" = an originate)
        self.number = ""  # the number a trunk leg was dialled to
        self.bridge: str | None = None  # BridgeUniqueid of the bridge it is in


class _Call:
    __slots__ = (
        "abandoned",
        "answered",
        "called",
        "caller_cause",
        "caller_ext",
        "caller_name",
        "caller_num",
        "cause",
        "dial_outcome",
        "dialled",
        "direction",
        "expect",
        "facts",
        "fax",
        "holder_ext",
        "holder_uid",
        "key",
        "legs",
        "on_hold",
        "origin",
        "origin_up",
        "originate_reason",
        "originated",
        "pending_recordings",
        "phone_origin",
        "queue",
        "recordings",
        "ringing",
        "started",
        "withheld_seen",
        "withheld_var",
    )

    def __init__(self, key: str) -> None:
        self.key = key
        self.legs: dict[str, _Leg] = {}
        self.origin: _Leg | None = None
        self.direction: Direction | None = None
        self.started = False
        self.originated = False
        self.phone_origin = False
        self.caller_num = ""
        self.caller_name = ""
        self.caller_ext: str | None = None
        self.called = ""
        self.dialled = ""
        self.withheld_var = False
        self.withheld_seen = False  # the dialplan's withheld variable was set (says it all)
        self.answered = False
        self.origin_up = False
        self.ringing: tuple[str, ...] = ()
        self.queue: str | None = None
        self.recordings: set[str] = set()
        self.pending_recordings: list[str] = []
        self.on_hold = False
        self.holder_uid = ""
        self.holder_ext: str | None = None
        self.abandoned = False
        self.dial_outcome: str | None = None
        self.originate_reason: MissReason | None = None
        self.caller_cause = ""
        self.cause = ""
        self.fax = False
        self.expect: _Expect | None = None
        self.facts = CallFacts()


@dataclass(slots=True)
class _Expect:
    channel_id: str | None
    extension: str
    number: str
    action_id: str | None
    created: float
    call: _Call | None = field(default=None)


class AmiCallCorrelator:
    def __init__(
        self, config: CorrelatorConfig | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = config or CorrelatorConfig()
        self._clock = clock or time.time
        self._prefix = self.config.line + ":"
        self._max = self.config.extension_max_digits
        self._calls: dict[str, _Call] = {}
        self._legs: dict[str, _Leg] = {}
        self._expects: list[_Expect] = []
        self._atxfers = AtxferNotes()
        self._vars = {
            "MIXMONITOR_FILENAME": _VAR_RECORDING,
            self.config.withheld_variable: _VAR_WITHHELD,
            "FAXEXTEN": _VAR_FAX,
            **dict.fromkeys(VOICEMAIL_VARIABLES, _VAR_VOICEMAIL),
            "VMSTATUS": _VAR_VMSTATUS,
        }
        self._resyncing = False
        self._dispatch: dict[str | None, Callable[[dict[str, str]], list[LineEvent]]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "NewCallerid": self._on_newcallerid,
            "Rename": self._on_rename,
            "DialBegin": self._on_dialbegin,
            "DialEnd": self._on_dialend,
            "AgentCalled": self._on_agentcalled,
            "AgentRingNoAnswer": self._on_agentringnoanswer,
            "AgentConnect": self._on_agentconnect,
            "QueueCallerJoin": self._on_queuecallerjoin,
            "QueueCallerLeave": self._on_queuecallerleave,
            "QueueCallerAbandon": self._on_queuecallerabandon,
            "Hangup": self._on_hangup,
            "SoftHangupRequest": self._on_hanguprequest,
            "HangupRequest": self._on_hanguprequest,
            "Newexten": self._on_newexten,
            "Hold": self._on_hold,
            "Unhold": self._on_unhold,
            "MusicOnHoldStop": self._on_unhold,
            "BlindTransfer": self._on_blindtransfer,
            "AttendedTransfer": self._on_attendedtransfer,
            "BridgeEnter": self._on_bridgeenter,
            "BridgeLeave": self._on_bridgeleave,
            "VarSet": self._on_varset,
            "FAXStatus": self._on_fax,
            "ReceiveFAX": self._on_fax,
            "SendFAX": self._on_fax,
            "OriginateResponse": self._on_originateresponse,
        }

    # ---------------------------------------------------------------- public API

    def feed(self, msg: Message) -> list[LineEvent]:
        """Track one AMI message; returns the line events it causes (usually none)."""
        h = msg.headers
        handler = self._dispatch.get(h.get("Event"))
        if handler is None:
            return []
        try:
            return handler(h)
        except Exception:  # a malformed event must never stop the reader
            log.exception("AMI correlator: %s event ignored", h.get("Event"))
            return []

    def expect_originate(
        self, channel_id: str | None, extension: str, number: str, action_id: str | None = None
    ) -> None:
        """Our click-to-call: an Originate of ``PJSIP/<extension>`` to ``number`` is about to be
        sent. Call this before sending it. ``channel_id`` is the Originate ``ChannelId`` (the
        first channel's Uniqueid); without one the first new, Down channel of ``extension`` that
        starts a call is taken. ``action_id`` lets an OriginateResponse Failure be matched even
        though it names only the dial string and ``Uniqueid: <unknown>``."""
        now = self._clock()
        self._prune_expectations(now)
        self._expects.append(_Expect(channel_id, extension, number, action_id, now))

    def note_redirect(self, call_key: str, from_ext: str | None, to: str) -> list[LineEvent]:
        """Our AMI Redirect of ``call_key`` succeeded: the Transferred(REDIRECT) event for it."""
        call = self._calls.get(call_key)
        if call is None or not call.started:
            return []
        return [Transferred(call.key, self._clock(), TransferKind.REDIRECT, from_ext, to)]

    def note_atxfer(self, call_key: str, from_ext: str | None, to: str) -> None:
        """The PBX accepted our AMI Atxfer of ``call_key`` to ``to``: the target to record
        should Asterisk's AttendedTransfer come without its TransferTarget* fields."""
        if call_key in self._calls:  # not for a call that ended meanwhile
            self._atxfers.note(call_key, from_ext, to, self._clock())

    def resync(self, channels: Iterable[Message]) -> list[LineEvent]:
        """After a reconnect: ``channels`` are the CoreShowChannel (or Status) events of the new
        session. Legs that are gone are dropped (their calls end once all legs are gone), legs
        that changed state are brought up to date, calls that started during the gap are
        adopted. A call is never ended twice: later Hangups for dropped legs are unknown."""
        self._resyncing = True  # a leg found Up here was not just answered by the dialplan
        try:
            return self._resync(channels)
        finally:
            self._resyncing = False

    def _resync(self, channels: Iterable[Message]) -> list[LineEvent]:
        out: list[LineEvent] = []
        at = self._clock()
        snapshot: dict[str, dict[str, str]] = {}
        for msg in channels:
            h = msg.headers
            uid = h.get("Uniqueid")
            if uid and h.get("Channel"):
                snapshot[uid] = h
        for uid in [u for u in self._legs if u not in snapshot]:
            leg = self._legs.pop(uid)
            self._drop_leg(leg, at, out, None)
        # first channels of calls first, so a call adopted here gets its origin right
        ordered = sorted(snapshot.values(), key=lambda h: h.get("Uniqueid") != h.get("Linkedid"))
        adopted: list[_Call] = []
        for h in ordered:
            uid = h["Uniqueid"]
            if uid in self._legs:
                continue
            leg, new_call = self._add_leg(
                uid, h["Channel"], h.get("Linkedid") or uid, h.get("Context") or ""
            )
            if new_call:
                adopted.append(leg.call)
                self._classify_origin(leg.call, leg, h, at, out, snapshot=True)
        for call in adopted:
            self._classify_adopted(call)
        for h in ordered:
            leg = self._legs.get(h["Uniqueid"])
            if leg is None:
                continue
            # BridgeEnter/BridgeLeave of the gap are lost: the snapshot says where it is now
            # (CoreShowChannel: BridgeId, Status: BridgeID; empty when in no bridge).
            leg.bridge = h.get("BridgeId") or h.get("BridgeID") or None
            self._touch(leg.call, at, out)
            state = h.get("ChannelState")
            if state in (_UP, _RINGING):
                self._apply_state(leg, state, at, out)
        self._prune_expectations(at)
        return out

    def channel_for(
        self, call_key: str, extension: str | None = None, *, other_than: str | None = None
    ) -> str | None:
        """The live channel name of ``extension``'s leg in the call (an answered leg preferred).
        With ``extension=None`` the outside party's (trunk) channel; in a call without one (an
        extension-to-extension call, a click-to-call not dialled out yet) the leg of a party
        other than extension ``other_than``: the caller's own leg first, then an answered one."""
        call = self._calls.get(call_key)
        if call is None:
            return None
        best: _Leg | None = None
        for leg in call.legs.values():
            if leg.local:
                continue
            if (leg.trunk if extension is None else leg.ext == extension) and (
                best is None or leg.up or not best.up
            ):
                best = leg
        if best is None and extension is None:
            others = [
                leg
                for leg in call.legs.values()
                if not leg.local and (other_than is None or leg.ext != other_than)
            ]
            if others:
                best = max(others, key=lambda leg: (leg is call.origin, leg.up))
        return best.channel if best is not None else None

    def presentation_known(self, call_key: str) -> bool:
        """The dialplan set the withheld variable for this call: no need to ask the PBX."""
        call = self._calls.get(call_key)
        return call is not None and call.withheld_seen

    def caller_channel(self, call_key: str) -> str | None:
        """The channel of the call's first leg (an inbound call's caller), while it is up:
        the one whose CALLERID(pres) tells whether the caller withheld the number (a
        follow-me leg out through the trunk is the office's own)."""
        call = self._calls.get(call_key)
        origin = call.origin if call is not None else None
        return origin.channel if origin is not None and origin.uid in call.legs else None

    def live_calls(self) -> list[str]:
        """Keys of the calls announced with CallStarted and not ended yet."""
        return [key for key, call in self._calls.items() if call.started]

    def stats(self) -> dict[str, int]:
        """How much state is held (calls incl. silently tracked ones, legs, pending originates)."""
        return {
            "calls": len(self._calls),
            "legs": len(self._legs),
            "originates": len(self._expects),
        }

    # ---------------------------------------------------------------- helpers

    def _at(self, h: dict[str, str]) -> float:
        ts = h.get("Timestamp")
        if ts:
            try:
                return float(ts)
            except ValueError:
                pass
        return self._clock()

    def _add_leg(self, uid: str, channel: str, linkedid: str, context: str) -> tuple[_Leg, bool]:
        key = self._prefix + linkedid
        call = self._calls.get(key)
        new_call = call is None
        if call is None:
            call = self._calls[key] = _Call(key)
        name = parse_channel(channel)
        cfg = self.config
        local = name.is_local
        trunk = not local and (
            name.endpoint in cfg.trunk_endpoints or context in cfg.trunk_contexts
        )
        ext = None if trunk or not is_extension(name.endpoint, self._max) else name.endpoint
        leg = _Leg(uid, channel, call, ext, trunk, local)
        call.legs[uid] = leg
        self._legs[uid] = leg
        if new_call:
            call.origin = leg
        return leg, new_call

    def _classify_origin(
        self,
        call: _Call,
        leg: _Leg,
        h: dict[str, str],
        at: float,
        out: list[LineEvent],
        snapshot: bool = False,
    ) -> None:
        state = h.get("ChannelState") or ""
        sip = leg.channel.startswith(("PJSIP/", "SIP/"))
        first = (h.get("Linkedid") or leg.uid) == leg.uid
        exp = self._match_expectation(leg, state, first) if self._expects else None
        if exp is not None:
            exp.call = call
            call.expect = exp
            call.direction = Direction.OUTBOUND
            call.originated = True
            call.caller_num = call.caller_ext = exp.extension
            call.called = exp.number
            if leg.ext == exp.extension:
                call.caller_name = display_name(h.get("CallerIDName"), sip)
            self._announce(call, at, out)
        elif leg.trunk and (snapshot or state != _DOWN):
            call.direction = Direction.INBOUND
            call.caller_num = h.get("CallerIDNum") or ""
            call.caller_name = display_name(h.get("CallerIDName"), sip)
            exten = h.get("Exten") or ""
            call.called = "" if exten == "s" else exten
        elif leg.ext is not None and not leg.local:
            call.phone_origin = True
            call.caller_name = display_name(h.get("CallerIDName"), sip)
            call.dialled = h.get("Exten") or ""

    def _classify_adopted(self, call: _Call) -> None:
        """A phone call found by resync: its direction from the legs it has now."""
        origin = call.origin
        if call.direction is not None or not call.phone_origin or origin is None:
            return
        for leg in call.legs.values():
            if leg is origin or leg.local:
                continue
            if leg.trunk:
                self._set_phone_call(call, Direction.OUTBOUND, call.dialled)
                return
            if leg.ext is not None:
                self._set_phone_call(call, Direction.INTERNAL, leg.ext)
                return

    def _set_phone_call(self, call: _Call, direction: Direction, called: str) -> None:
        ext = call.origin.ext if call.origin is not None else None
        call.direction = direction
        call.caller_ext = ext
        call.caller_num = ext or ""
        call.called = called

    def _match_expectation(self, leg: _Leg, state: str, first: bool) -> _Expect | None:
        """Our originate's first channel: by ChannelId, else the extension's new Down channel."""
        for exp in self._expects:
            if exp.call is not None:
                continue
            if exp.channel_id is not None:
                if exp.channel_id == leg.uid:
                    return exp
            elif first and state == _DOWN and leg.ext == exp.extension:
                return exp
        return None

    def _prune_expectations(self, now: float) -> None:
        ttl = self.config.originate_ttl
        self._expects = [e for e in self._expects if e.call is not None or now - e.created < ttl]

    def _announce(self, call: _Call, at: float, out: list[LineEvent]) -> None:
        direction = call.direction
        if direction is None:
            return
        call.started = True
        withheld = direction is Direction.INBOUND and (
            call.withheld_var or call.caller_num.strip().lower() in WITHHELD_NUMBERS
        )
        out.append(
            CallStarted(
                self.config.line,
                call.key,
                at,
                direction,
                call.caller_num,
                call.caller_name,
                call.called,
                withheld,
                call.originated,
            )
        )
        for path in call.pending_recordings:
            out.append(RecordingStarted(call.key, at, path))
        call.pending_recordings.clear()
        if call.fax and not call.answered:
            self._fax_answer(call, at, out)
        self._ring_update(call, at, out)

    def _touch(self, call: _Call, at: float, out: list[LineEvent]) -> None:
        if not call.started and call.direction is not None:
            self._announce(call, at, out)

    def _ring_update(self, call: _Call, at: float, out: list[LineEvent]) -> None:
        if not call.started:
            return
        exts = sorted({leg.ext for leg in call.legs.values() if leg.ringing and leg.ext})
        ringing = tuple(exts)
        if ringing != call.ringing:
            call.ringing = ringing
            out.append(RingingChanged(call.key, at, ringing, call.queue))

    def _start_ringing(self, leg: _Leg, at: float, out: list[LineEvent]) -> None:
        if leg.ext is not None and not leg.local and not leg.up and not leg.ringing:
            leg.ringing = True
            if leg is not leg.call.origin:
                leg.call.facts.waited = True
            self._ring_update(leg.call, at, out)

    def _stop_ringing(self, leg: _Leg, at: float, out: list[LineEvent]) -> None:
        if leg.ringing:
            leg.ringing = False
            self._ring_update(leg.call, at, out)

    def _apply_state(self, leg: _Leg, state: str, at: float, out: list[LineEvent]) -> None:
        if state == _UP:
            if not leg.up:
                self._leg_up(leg, at, out)
        elif state == _RINGING:
            self._start_ringing(leg, at, out)

    def _leg_up(self, leg: _Leg, at: float, out: list[LineEvent]) -> None:
        leg.up = True
        leg.ringing = False
        call = leg.call
        if leg is call.origin or (call.caller_ext is not None and leg.ext == call.caller_ext):
            call.origin_up = True  # the caller's own phone went off-hook: not an answer
            if (leg is call.origin and call.started and call.direction is Direction.INBOUND
                    and not call.answered and not call.facts.pbx_answered
                    and not self._resyncing):
                call.facts.pbx_answered = True  # the dialplan answered: IVR, announcement
                out.append(PbxAnswered(call.key, at))
        elif call.started:
            if not call.answered and (leg.ext is not None or leg.trunk):
                call.answered = True
                out.append(Answered(call.key, at, leg.ext, by_outside=leg.ext is None))
            src = leg.dialed_by
            if src is not None:  # Dial/Queue cancel the parallel legs
                for other in call.legs.values():
                    if other.ringing and other.dialed_by == src:
                        other.ringing = False
        self._ring_update(call, at, out)

    def _fax_answer(self, call: _Call, at: float, out: list[LineEvent]) -> None:
        if call.direction is Direction.INBOUND and not call.answered:
            call.answered = True
            out.append(Answered(call.key, at, None, by_outside=False))

    def _drop_leg(
        self, leg: _Leg, at: float, out: list[LineEvent], cause: str | None, cause_code: str = ""
    ) -> None:
        call = leg.call
        call.legs.pop(leg.uid, None)
        self._touch(call, at, out)
        if leg is call.origin and cause is not None:
            call.cause = cause
        elif cause and not cause.startswith("0"):
            call.facts.other_cause = cause
        if leg is call.origin or (call.caller_ext is not None and leg.ext == call.caller_ext):
            call.caller_cause = call.caller_cause or cause_code
        if leg.ringing:
            self._stop_ringing(leg, at, out)
        if call.on_hold and call.holder_uid == leg.uid:
            call.on_hold = False
            if call.started:
                out.append(HoldChanged(call.key, at, call.holder_ext, False))
        if leg.ext is not None and not any(o.ext == leg.ext for o in call.legs.values()):
            # The last leg towards that extension (Local halves, the phone they rang) is gone:
            # a consultation our Atxfer started is over without a transfer. Not at the Local
            # halves alone: Asterisk may optimise them away while the consultation goes on.
            self._atxfers.forget(call.key, leg.ext)
        if not call.legs:
            self._end(call, at, out)

    def _end(self, call: _Call, at: float, out: list[LineEvent]) -> None:
        if self._calls.get(call.key) is call:
            del self._calls[call.key]
        self._atxfers.forget(call.key)
        for uid in call.legs:
            self._legs.pop(uid, None)
        call.legs.clear()
        if call.expect is not None:
            if call.expect in self._expects:
                self._expects.remove(call.expect)
            call.expect = None
        if not call.started:
            if not (
                call.phone_origin
                and call.direction is None
                and looks_like_number(call.dialled)
                and len(call.dialled) > self._max
            ):
                return  # never a call the office made or received
            self._set_phone_call(call, Direction.OUTBOUND, call.dialled)
            call.dial_outcome = "CHANUNAVAIL"
            self._announce(call, at, out)
        if call.ringing:
            call.ringing = ()
            out.append(RingingChanged(call.key, at, (), call.queue))
        state, reason, by_pbx = self._outcome(call)
        out.append(CallEnded(call.key, at, state, reason, end_cause(call.cause, call.facts),
                             by_pbx))

    def _outcome(self, call: _Call) -> tuple[EndState, MissReason | None, bool]:
        if call.answered:
            return EndState.ANSWERED, None, False
        if call.direction is Direction.OUTBOUND:
            if call.originated and not call.origin_up:
                reason = call.originate_reason or _CAUSE_REASONS.get(
                    call.caller_cause, MissReason.NO_ANSWER
                )
            else:
                reason = _DIAL_FAILURES.get(call.dial_outcome or "", MissReason.ABANDONED)
            return EndState.FAILED, reason, False
        dial_reason = _DIAL_FAILURES.get(call.dial_outcome or "", MissReason.ABANDONED)
        if call.direction is Direction.INBOUND:
            return unanswered_inbound(call.facts, call.abandoned, dial_reason)
        if call.abandoned:
            return EndState.MISSED, MissReason.ABANDONED, False
        return EndState.MISSED, dial_reason, False

    def _ext_of(self, uid: str | None, channel: str | None) -> str | None:
        leg = self._legs.get(uid) if uid else None
        if leg is not None:
            return leg.ext
        if channel:
            endpoint = parse_channel(channel).endpoint
            if is_extension(endpoint, self._max):
                return endpoint
        return None

    def _move_leg(self, leg: _Leg, call: _Call, at: float, out: list[LineEvent]) -> None:
        """A leg of another call (a phone's consultation call) joins ``call`` after a transfer."""
        old = leg.call
        old.legs.pop(leg.uid, None)
        if leg.ringing:
            leg.ringing = False
            self._ring_update(old, at, out)
        leg.call = call
        call.legs[leg.uid] = leg
        if not old.legs:
            self._end(old, at, out)

    # ---------------------------------------------------------------- event handlers

    def _on_newchannel(self, h: dict[str, str]) -> list[LineEvent]:
        uid = h.get("Uniqueid")
        channel = h.get("Channel")
        if not uid or not channel or uid in self._legs:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        leg, new_call = self._add_leg(
            uid, channel, h.get("Linkedid") or uid, h.get("Context") or ""
        )
        if new_call:
            self._classify_origin(leg.call, leg, h, at, out)
        else:
            self._touch(leg.call, at, out)
        return out

    def _on_newstate(self, h: dict[str, str]) -> list[LineEvent]:
        state = h.get("ChannelState")
        if state != _UP and state != _RINGING:
            return []
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        self._touch(leg.call, at, out)
        self._apply_state(leg, state, at, out)
        return out

    def _on_newcallerid(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        call = leg.call
        if leg is not call.origin or call.direction is not Direction.INBOUND:
            return []  # outbound: the trunk leg shows the company number, the phone the client's
        num = h.get("CallerIDNum") or ""
        name = display_name(h.get("CallerIDName"), leg.channel.startswith(("PJSIP/", "SIP/")))
        if num == call.caller_num and name == call.caller_name:
            return []
        changed_num = num if num != call.caller_num else None
        changed_name = name if name != call.caller_name else None
        call.caller_num, call.caller_name = num, name
        if not call.started:
            return []
        return [CallerChanged(call.key, self._at(h), changed_num, changed_name)]

    def _on_rename(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        new = h.get("Newname")
        if leg is not None and new:
            leg.channel = new
        return []

    def _on_dialbegin(self, h: dict[str, str]) -> list[LineEvent]:
        dest_uid = h.get("DestUniqueid")
        if not dest_uid:
            return []
        dest = self._legs.get(dest_uid)
        if dest is None:  # we missed its Newchannel: take it from the Dest* snapshot
            channel = h.get("DestChannel")
            if not channel:
                return []
            dest, _ = self._add_leg(
                dest_uid, channel, h.get("DestLinkedid") or dest_uid, h.get("DestContext") or ""
            )
        call = dest.call
        src_uid = h.get("Uniqueid")
        src = self._legs.get(src_uid) if src_uid else None
        dest.dialed_by = src_uid or ""
        if dest.trunk:
            dest.number = dial_number(h.get("DialString") or "")
        if call.direction is None and call.phone_origin and src is not None and src.call is call:
            if dest.trunk:
                called = dest.number
                if not looks_like_number(called) and call.dialled not in ("", "s"):
                    called = call.dialled
                self._set_phone_call(call, Direction.OUTBOUND, called)
            elif dest.ext is not None:
                dialled = call.dialled
                self._set_phone_call(
                    call, Direction.INTERNAL, dialled if dialled not in ("", "s") else dest.ext
                )
        out: list[LineEvent] = []
        at = self._at(h)
        self._touch(call, at, out)
        call.dial_outcome = None  # a new ring attempt
        if dest is not call.origin:
            # Dialled for the caller (an extension, a follow-me to a mobile over the trunk, a
            # Local ring group): they waited for a person, even if no extension ever rang.
            call.facts.waited = True
        self._start_ringing(dest, at, out)
        return out

    def _on_dialend(self, h: dict[str, str]) -> list[LineEvent]:
        dest = self._legs.get(h.get("DestUniqueid") or "")
        if dest is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        call = dest.call
        self._touch(call, at, out)
        status = h.get("DialStatus") or ""
        if status == "ANSWER":
            if not dest.up:
                self._leg_up(dest, at, out)
        else:
            if status in _DIAL_FAILURES:
                call.dial_outcome = status
            self._stop_ringing(dest, at, out)
        return out

    def _on_agentcalled(self, h: dict[str, str]) -> list[LineEvent]:
        dest = self._legs.get(h.get("DestUniqueid") or "")
        if dest is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        call = dest.call
        call.queue = h.get("Queue") or call.queue
        self._touch(call, at, out)
        call.dial_outcome = None
        self._start_ringing(dest, at, out)
        return out

    def _on_agentringnoanswer(self, h: dict[str, str]) -> list[LineEvent]:
        dest = self._legs.get(h.get("DestUniqueid") or "")
        if dest is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        self._touch(dest.call, at, out)
        dest.call.dial_outcome = "NOANSWER"
        self._stop_ringing(dest, at, out)
        return out

    def _on_agentconnect(self, h: dict[str, str]) -> list[LineEvent]:
        dest = self._legs.get(h.get("DestUniqueid") or "")
        if dest is None or dest.up:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        self._touch(dest.call, at, out)
        self._leg_up(dest, at, out)
        return out

    def _on_queuecallerjoin(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        out: list[LineEvent] = []
        leg.call.queue = h.get("Queue") or leg.call.queue
        leg.call.facts.waited = True
        self._touch(leg.call, self._at(h), out)
        return out

    def _on_queuecallerleave(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        out: list[LineEvent] = []
        self._touch(leg.call, self._at(h), out)
        leg.call.queue = None
        return out

    def _on_queuecallerabandon(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        out: list[LineEvent] = []
        self._touch(leg.call, self._at(h), out)
        leg.call.abandoned = True
        return out

    def _on_hangup(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.pop(h.get("Uniqueid") or "", None)
        if leg is None:
            return []
        out: list[LineEvent] = []
        code = h.get("Cause") or ""
        cause = f"{code} {h.get('Cause-txt') or ''}".strip()
        self._drop_leg(leg, self._at(h), out, cause, code)
        return out

    def _on_hold(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        call = leg.call
        self._touch(call, at, out)
        if call.started and not call.on_hold:
            call.on_hold = True
            call.holder_uid, call.holder_ext = leg.uid, leg.ext
            out.append(HoldChanged(call.key, at, leg.ext, True))
        return out

    def _on_unhold(self, h: dict[str, str]) -> list[LineEvent]:
        """Unhold of the holder, or the music on hold of the held party stopping."""
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None or not leg.call.on_hold:
            return []
        call = leg.call
        call.on_hold = False
        return [HoldChanged(call.key, self._at(h), call.holder_ext, False)]

    @staticmethod
    def _transfer_result(h: dict[str, str]) -> str:
        return "success" if (h.get("Result") or "").lower() == "success" else "failed"

    def _on_blindtransfer(self, h: dict[str, str]) -> list[LineEvent]:
        transferer = h.get("TransfererUniqueid")
        leg = self._legs.get(transferer or "") or self._legs.get(h.get("TransfereeUniqueid") or "")
        if leg is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        call = leg.call
        self._touch(call, at, out)
        if call.started:
            out.append(
                Transferred(
                    call.key,
                    at,
                    TransferKind.BLIND,
                    self._ext_of(transferer, h.get("TransfererChannel")),
                    h.get("Extension") or "",
                    self._transfer_result(h),
                )
            )
        return out

    def _on_attendedtransfer(self, h: dict[str, str]) -> list[LineEvent]:
        transferer = h.get("OrigTransfererUniqueid")
        anchor = self._legs.get(h.get("TransfereeUniqueid") or "") or self._legs.get(
            transferer or ""
        )
        if anchor is None:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        call = anchor.call
        self._touch(call, at, out)
        target = self._legs.get(h.get("TransferTargetUniqueid") or "")
        to = ""
        if target is not None:
            to = target.ext or target.number
        if not to:
            to = (
                self._ext_of(None, h.get("TransferTargetChannel"))
                or h.get("TransferTargetCallerIDNum")
                or h.get("DestApp")
                or ""
            )
        transferer_ext = self._ext_of(transferer, h.get("OrigTransfererChannel"))
        note = self._atxfers.take(call.key, transferer_ext, self._clock())
        if not to:  # Asterisk 22 often leaves out every TransferTarget* field
            found = unnamed_target(
                h, self._legs.values(), call.legs.values(), note, transferer_ext
            )
            if found is not None:
                target, to = found.leg, found.ext
                log.debug("AttendedTransfer of %s without its target: %s, found by the %s rule",
                          call.key, to, found.rule)
        if target is not None and target.call is not call:
            self._move_leg(target, call, at, out)
        if call.started:
            out.append(
                Transferred(
                    call.key,
                    at,
                    TransferKind.ATTENDED,
                    self._ext_of(transferer, h.get("OrigTransfererChannel")),
                    to,
                    self._transfer_result(h),
                )
            )
        return out

    def _on_bridgeenter(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is not None:
            leg.bridge = h.get("BridgeUniqueid") or None
        return []

    def _on_bridgeleave(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is not None and leg.bridge == h.get("BridgeUniqueid"):
            leg.bridge = None
        return []

    def _on_varset(self, h: dict[str, str]) -> list[LineEvent]:
        kind = self._vars.get(h.get("Variable") or "")
        if kind is None:
            return []
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None:
            return []
        call = leg.call
        value = h.get("Value") or ""
        if kind == _VAR_RECORDING:
            if not value or value in call.recordings:
                return []
            call.recordings.add(value)
            if not call.started:
                call.pending_recordings.append(value)
                return []
            return [RecordingStarted(call.key, self._at(h), value)]
        if kind == _VAR_WITHHELD:
            call.withheld_var = value.strip().lower().startswith(_WITHHELD_VALUES)
            call.withheld_seen = True
            return []
        if kind == _VAR_VOICEMAIL:
            return self._voicemail(call, h.get("Variable") or "", value, self._at(h))
        if kind == _VAR_VMSTATUS:
            # app_voicemail names the file at the beep, before anything is recorded, and
            # deletes a message shorter than minsecs (then VMSTATUS is FAILED).
            message, call.facts.vm_message = call.facts.vm_message, ""
            if value.strip().upper() != "SUCCESS" or not message:
                return []
            return self._voicemail(call, "VMSTATUS", message, self._at(h))
        return self._on_fax(h)

    def _voicemail(self, call: _Call, variable: str, value: str, at: float) -> list[LineEvent]:
        path = voicemail_path(variable, value, call.facts.record_format)
        if path is None or path in call.recordings or not call.started:
            return []
        if variable == "VM_MESSAGEFILE":
            call.facts.vm_message = path  # a message only once VMSTATUS says SUCCESS
            return []
        call.recordings.add(path)
        return [RecordingStarted(call.key, at, path, RecordingKind.VOICEMAIL)]

    def _on_newexten(self, h: dict[str, str]) -> list[LineEvent]:
        if h.get("Application") != "Record":
            return []
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is not None:
            leg.call.facts.record_format = record_format(h.get("AppData") or "")
        return []

    def _on_hanguprequest(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        code = h.get("Cause") or ""
        if leg is not None and leg is leg.call.origin and code.isdigit() and code != "0":
            leg.call.facts.request_cause = cause_text(code)
        return []

    def _on_fax(self, h: dict[str, str]) -> list[LineEvent]:
        leg = self._legs.get(h.get("Uniqueid") or "")
        if leg is None or leg.call.fax:
            return []
        out: list[LineEvent] = []
        at = self._at(h)
        call = leg.call
        call.fax = True
        self._touch(call, at, out)
        if call.started:
            self._fax_answer(call, at, out)
        return out

    def _on_originateresponse(self, h: dict[str, str]) -> list[LineEvent]:
        if not self._expects:
            return []  # not ours (quirk 8: other sessions' responses reach us too)
        exp = self._find_expectation(h)
        if exp is None:
            return []
        self._expects.remove(exp)
        if h.get("Response") == "Success":
            return []
        reason = _ORIGINATE_REASONS.get(h.get("Reason") or "", MissReason.FAILED)
        call = exp.call
        if call is not None:
            call.originate_reason = reason
            call.expect = None
            return []
        # no channel was ever created for it: a failed click-to-call all the same
        at = self._at(h)
        key = self._prefix + (exp.channel_id or f"originate-{exp.action_id or exp.created}")
        return [
            CallStarted(
                self.config.line,
                key,
                at,
                Direction.OUTBOUND,
                exp.extension,
                "",
                exp.number,
                False,
                True,
            ),
            CallEnded(key, at, EndState.FAILED, reason, ""),
        ]

    def _find_expectation(self, h: dict[str, str]) -> _Expect | None:
        action_id = h.get("ActionID")
        uid = h.get("Uniqueid")
        for exp in self._expects:
            if exp.action_id is not None and exp.action_id == action_id:
                return exp
            if exp.channel_id is not None and exp.channel_id == uid:
                return exp
        channel = h.get("Channel")
        if not channel:
            return None
        endpoint = parse_channel(channel).endpoint
        for exp in self._expects:
            if exp.action_id is None and exp.extension == endpoint:
                return exp
        return None

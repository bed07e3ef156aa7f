"""What a line adapter reports about calls, in words every line type shares.

An adapter (Asterisk AMI, SIP, GSM) translates its protocol into these events and feeds them to
the core's call registry. Nothing here knows about Linkedid, Local channels, queues or AT codes:
``call_key`` is an opaque string the adapter keeps stable for the life of one call, and
extensions are the office's internal numbers (``101``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(enum.StrEnum):
    INBOUND = "inbound"  # from an outside line (trunk, GSM) to the office
    OUTBOUND = "outbound"  # from the office to an outside number
    INTERNAL = "internal"  # extension to extension


class EndState(enum.StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"
    FAILED = "failed"


class MissReason(enum.StrEnum):
    ABANDONED = "abandoned"  # the caller hung up while waiting or ringing
    NO_ANSWER = "no_answer"  # nobody picked up before a timeout
    BUSY = "busy"
    FAILED = "failed"  # congestion, unreachable, rejected


class RecordingKind(enum.StrEnum):
    CALL = "call"  # the conversation (MixMonitor)
    VOICEMAIL = "voicemail"  # a message the caller left after nobody answered


class TransferKind(enum.StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"
    REDIRECT = "redirect"


@dataclass(frozen=True, slots=True)
class CallStarted:
    line: str
    call_key: str
    at: float  # unix time, seconds
    direction: Direction
    caller_num: str  # as received, may be "", "anonymous", "<unknown>", an extension
    caller_name: str  # unescaped display name, "" when none
    called_num: str  # the DID, or the dialled outside number, or the extension
    withheld: bool = False
    originated: bool = False  # started by our own click-to-call


@dataclass(frozen=True, slots=True)
class CallerChanged:
    """The caller or the called number became known or changed (e.g. outbound dial string)."""

    call_key: str
    at: float
    caller_num: str | None = None
    caller_name: str | None = None
    called_num: str | None = None
    # The caller asked to hide their number, learnt after CallStarted (None: unchanged).
    withheld: bool | None = None


@dataclass(frozen=True, slots=True)
class RingingChanged:
    """The set of office extensions ringing for this call now (empty: none rings any more)."""

    call_key: str
    at: float
    extensions: tuple[str, ...]
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    call_key: str
    at: float
    extension: str | None  # None when an outside party answered (outbound call)
    by_outside: bool = False


@dataclass(frozen=True, slots=True)
class PbxAnswered:
    """The PBX itself answered the caller (IVR, announcement, voicemail) before any person.

    Not an answer by a person: a person picking up later still sends Answered."""

    call_key: str
    at: float


@dataclass(frozen=True, slots=True)
class Transferred:
    call_key: str
    at: float
    kind: TransferKind
    from_ext: str | None
    to: str
    result: str = "success"  # success | failed | busy | no_answer


@dataclass(frozen=True, slots=True)
class HoldChanged:
    call_key: str
    at: float
    extension: str | None
    on_hold: bool


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    call_key: str
    at: float
    path: str
    kind: RecordingKind = RecordingKind.CALL


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_key: str
    at: float
    state: EndState
    reason: MissReason | None = None
    cause: str = ""  # the line's own cause text, for the log ("16 Normal Clearing")
    # ANSWERED by the PBX alone (IVR, announcement) with no person: no user answered it.
    by_pbx: bool = False


LineEvent = (
    CallStarted
    | CallerChanged
    | RingingChanged
    | Answered
    | PbxAnswered
    | Transferred
    | HoldChanged
    | RecordingStarted
    | CallEnded
)

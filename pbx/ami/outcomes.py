"""How an AMI call ended: PBX-answered calls, voicemail files and the real end cause. Pure code.

Kept apart from the correlator, which only records what it saw (``CallFacts``) and asks here.

* **Answered by the PBX.** An inbound caller's own trunk leg going Up before any person
  answered means the dialplan answered (``Answer()``, ``Playback``, an IVR, ``Record``,
  ``VoiceMail``). If nobody rang for the caller and no queue held them, the call ends ANSWERED
  with ``by_pbx``: the office chose to answer with an announcement. A caller who waited for a
  person (an extension rang, the dialplan dialled anything for them — a follow-me to a mobile
  over the trunk, a ``Local/`` ring group — or a queue held them) and got none is MISSED,
  whatever the PBX played afterwards.
* **Voicemail.** ``Record()`` sets ``RECORDED_FILE`` and ``VoiceMail()`` sets
  ``VM_MESSAGEFILE``, both without the file extension: the format comes from the ``Record``
  application's argument (``/path/vm-1.wav,3,120`` -> ``wav``). VoiceMail's message keeps its
  bare name: the fetcher finds its extension (``[recordings] voicemail_format``, then the ones
  app_voicemail writes). VoiceMail names the file at the beep, before anything is recorded, and
  deletes a message shorter than ``minsecs``: it is a message only once ``VMSTATUS`` is
  ``SUCCESS``.
* **End cause.** The caller's Hangup cause, unless it is ``0`` (Asterisk's "no cause": a leg torn
  down by the dialplan or a bridge rather than by a signalled hang-up); then the cause of the
  hang-up request on that leg (``SoftHangupRequest``/``HangupRequest``), else the last non-zero
  cause another leg of the call gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from callcenter.line_events import EndState, MissReason

VOICEMAIL_VARIABLES = frozenset({"RECORDED_FILE", "VM_MESSAGEFILE"})
_AUDIO_SUFFIXES = frozenset({".wav", ".wav49", ".gsm", ".ulaw", ".alaw", ".sln", ".g722",
                             ".mp3", ".ogg", ".opus", ".wav16"})
_MAX_PATH = 1024

# Q.850 texts for the causes a hang-up request can carry (Asterisk's own wording).
CAUSE_TEXT = {
    "16": "Normal Clearing",
    "17": "User busy",
    "18": "No user responding",
    "19": "User alerting, no answer",
    "21": "Call Rejected",
    "27": "Destination out of order",
    "31": "Normal, unspecified",
    "34": "Circuit/channel congestion",
    "127": "Interworking, unspecified",
}


@dataclass(slots=True)
class CallFacts:
    """What the correlator noted about one call, beyond its legs."""

    pbx_answered: bool = False  # the caller's leg went Up before any person answered
    waited: bool = False  # something was dialled or rang for the caller, or a queue held them
    record_format: str = ""  # the format of the last Record() (its file name's suffix)
    vm_message: str = ""  # VoiceMail()'s file, named at the beep: not a message before VMSTATUS
    request_cause: str = ""  # the cause of the hang-up request on the caller's leg
    other_cause: str = ""  # the last non-zero "<code> <text>" of another leg


def record_format(app_data: str) -> str:
    """``Record(/var/spool/x/vm-1.wav,3,120)`` -> ``"wav"`` (``""`` when it names none)."""
    first = app_data.split(",", 1)[0].strip()
    suffix = PurePosixPath(first).suffix
    return suffix[1:].lower() if suffix and len(suffix) <= 8 else ""


def voicemail_path(variable: str, value: str, fmt: str) -> str | None:
    """The file of a left message from its variable, or None when the value is no path."""
    value = value.strip()
    if not value.startswith("/") or len(value) > _MAX_PATH or any(c in value for c in "\r\n\0"):
        return None
    if ".." in PurePosixPath(value).parts:
        return None  # a climb out of the spool: no message the fetcher would ever read
    if PurePosixPath(value).suffix.lower() in _AUDIO_SUFFIXES:
        return value
    if variable == "RECORDED_FILE":
        return f"{value}.{fmt or 'wav'}"
    return value  # VoiceMail(): the fetcher finds which of its formats was written


def end_cause(caller_cause: str, facts: CallFacts) -> str:
    """The cause text for the call log: the caller's, unless it is Asterisk's "0 Unknown"."""
    if caller_cause and not caller_cause.startswith("0"):
        return caller_cause
    if facts.request_cause:
        return facts.request_cause
    return facts.other_cause or caller_cause


def cause_text(code: str, text: str | None = None) -> str:
    return f"{code} {text or CAUSE_TEXT.get(code, '')}".strip()


def unanswered_inbound(
    facts: CallFacts, abandoned: bool, dial_reason: MissReason
) -> tuple[EndState, MissReason | None, bool]:
    """(state, reason, by_pbx) of an inbound call no person answered."""
    if facts.pbx_answered and not facts.waited:
        return EndState.ANSWERED, None, True
    if abandoned:
        return EndState.MISSED, MissReason.ABANDONED, False
    return EndState.MISSED, dial_reason, False

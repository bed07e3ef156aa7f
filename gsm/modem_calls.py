"""Incoming GSM calls as line events: a small state machine fed URCs and the clock, no I/O.

A modem says little about a call: ``RING`` (or ``+CRING``) every few seconds and a ``+CLIP``
with the number while it rings; ``NO CARRIER`` (or Huawei's ``^CEND``) when it is over;
Huawei adds ``^CONN`` when it was answered. Nothing says "the caller gave up" on most modems,
so a call whose RINGs stop is over: ``CallEnded`` missed (abandoned) once no RING came for
``ring_gap`` seconds.

One modem carries one voice call at a time here (call waiting is not enabled by the init).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    LineEvent,
    MissReason,
    RingingChanged,
)

from .modem_parse import Clip


class _State(enum.Enum):
    IDLE = "idle"
    WAITING_CLIP = "ring seen, waiting for the number"
    RINGING = "ringing"
    ANSWERED = "answered"


@dataclass(slots=True)
class CallSettings:
    line: str
    called_num: str = ""  # the SIM's own number, when configured
    ring_extensions: tuple[str, ...] = ()  # who the GSM line rings (for the console)
    clip_wait: float = 1.5  # a RING without a +CLIP yet: wait this long for the number
    ring_gap: float = 8.0  # no RING for this long while ringing: the caller gave up


class CallTracker:
    def __init__(self, settings: CallSettings) -> None:
        self.s = settings
        self._state = _State.IDLE
        self._key = ""
        self._seq = 0
        self._last_ring = 0.0
        self._started = 0.0
        self._number = ""
        self._withheld = False

    @property
    def busy(self) -> bool:
        return self._state is not _State.IDLE

    @property
    def call_key(self) -> str:
        return self._key

    def next_deadline(self) -> float | None:
        if self._state is _State.WAITING_CLIP:
            # from the first RING: RINGs every second would otherwise put the card off forever
            return self._started + self.s.clip_wait
        if self._state is _State.RINGING:
            return self._last_ring + self.s.ring_gap
        return None

    # -- inputs -------------------------------------------------------------------------------
    def ring(self, now: float) -> list[LineEvent]:
        self._last_ring = now
        if self._state is _State.IDLE:
            self._state = _State.WAITING_CLIP
            self._started = now
            self._number, self._withheld = "", False
        return []

    def clip(self, c: Clip, now: float) -> list[LineEvent]:
        self._last_ring = now
        if self._state in (_State.IDLE, _State.WAITING_CLIP):
            if self._state is _State.IDLE:
                self._started = now
            self._number, self._withheld = c.number, c.withheld
            return self._start(now, c.name)
        if self._state is _State.RINGING and c.number and not self._number:
            self._number, self._withheld = c.number, c.withheld
            return [CallerChanged(self._key, now, caller_num=c.number, withheld=c.withheld)]
        return []

    def answered(self, now: float) -> list[LineEvent]:
        """ATA succeeded, or the modem said ^CONN while ringing."""
        if self._state is _State.WAITING_CLIP:
            events = self._start(now, "")
        elif self._state is _State.RINGING:
            events = []
        else:
            return []
        self._state = _State.ANSWERED
        return [*events, Answered(self._key, now, None), RingingChanged(self._key, now, ())]

    def ended(self, now: float, cause: str) -> list[LineEvent]:
        """NO CARRIER, ^CEND, BUSY or NO ANSWER: the call is over, whoever hung up."""
        if self._state is _State.IDLE:
            return []
        events: list[LineEvent] = []
        if self._state is _State.WAITING_CLIP:
            events += self._start(now, "")
        if self._state is _State.ANSWERED:
            events.append(CallEnded(self._key, now, EndState.ANSWERED, None, cause))
        else:
            events += [
                RingingChanged(self._key, now, ()),
                CallEnded(self._key, now, EndState.MISSED, MissReason.ABANDONED, cause),
            ]
        self._state = _State.IDLE
        return events

    def advance(self, now: float) -> list[LineEvent]:
        if self._state is _State.WAITING_CLIP and now >= self._last_ring + self.s.clip_wait:
            return self._start(now, "")
        if self._state is _State.RINGING and now >= self._last_ring + self.s.ring_gap:
            return self.ended(now, "ringing stopped")
        return []

    def line_lost(self, now: float) -> list[LineEvent]:
        """The modem went down: a call it carried cannot be followed any more."""
        return self.ended(now, "modem connection lost")

    # -- internals ----------------------------------------------------------------------------
    def _start(self, now: float, name: str) -> list[LineEvent]:
        self._seq += 1
        self._key = f"gsm:{self.s.line}:{int(self._started * 1000)}:{self._seq}"
        self._state = _State.RINGING
        number = self._number
        withheld = self._withheld
        return [
            CallStarted(
                line=self.s.line,
                call_key=self._key,
                at=self._started,
                direction=Direction.INBOUND,
                caller_num=number,
                caller_name=name,
                called_num=self.s.called_num,
                withheld=withheld,
            ),
            RingingChanged(self._key, now, self.s.ring_extensions),
        ]

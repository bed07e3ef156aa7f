"""Withheld caller IDs without dialplan changes: hold a new inbound call until its
presentation is known. Pure code; the Asterisk line asks the PBX (AMI ``Getvar
CALLERID(pres)``) and releases the call with the answer, or as not withheld after a short
timeout.

AMI events never carry the presentation (trace README, quirk 13), and carriers often deliver
the real number of a caller who asked for privacy (P-Asserted-Identity with ``Privacy: id``).
Showing the call first and hiding it when the answer comes would already have put the client's
card on every screen, so the call's events (its CallStarted first) wait here instead; other
calls are not held.
"""

from __future__ import annotations

from dataclasses import replace

from callcenter.line_events import CallEnded, CallStarted, LineEvent

PRESENTATION_VARIABLE = "CALLERID(pres)"
_MAX_HELD_EVENTS = 1000  # a call that floods events while held is released rather than grown


def presentation_withheld(value: str) -> bool:
    """``prohib_passed_screen``, ``prohib_not_screened``, ``prohib`` ... : the caller asked for
    their number to be withheld (``allowed*`` and ``unavailable`` did not)."""
    return value.strip().lower().startswith("prohib")


class PresentationGate:
    def __init__(self) -> None:
        self._held: dict[str, list[LineEvent]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, call_key: str) -> bool:
        return call_key in self._held

    def ended(self, call_key: str) -> bool:
        """The call's end is among its held events: the caller hung up before the answer."""
        return any(isinstance(e, CallEnded) for e in self._held.get(call_key, ()))

    def hold(self, start: CallStarted) -> None:
        self._held[start.call_key] = [start]

    def offer(self, event: LineEvent) -> list[LineEvent] | None:
        """None: not held, emit it. A list: held (empty), or released because too many events
        piled up (the events to emit now, shown as not withheld)."""
        held = self._held.get(event.call_key)
        if held is None:
            return None
        held.append(event)
        if len(held) >= _MAX_HELD_EVENTS:
            return self.release(event.call_key, withheld=False)
        return []

    def release(self, call_key: str, withheld: bool) -> list[LineEvent]:
        events = self._held.pop(call_key, [])
        if withheld and events and isinstance(events[0], CallStarted):
            events[0] = replace(events[0], withheld=True)
        return events

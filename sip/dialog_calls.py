"""What a watched extension's dialogs mean for the calls: per-user screen-pops, who answered,
the end of a call answered elsewhere. Sans-I/O: fed the changes of
:class:`sip.dialog_info.DialogTracker`, returns line events.

A dialog that rings at extension 101 belongs to a call the observer already has when it
carries the same Call-ID (a forking proxy such as kamailio keeps one Call-ID on every branch)
or, for a B2BUA PBX (Asterisk, 3CX, FreeSWITCH: a new Call-ID per leg), when the observer has
exactly one call ringing from the same caller number. Otherwise the watcher makes the call
itself (an extension rung directly, not through the ring group): its key starts with
``sip:<line>:d:``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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
from sip.dialog_info import DialogChange, DialogState

RINGING_STATES = (DialogState.TRYING, DialogState.PROCEEDING, DialogState.EARLY)
MAX_CALLS = 4096
INTERNAL_MAX_DIGITS = 6  # a remote "number" this short is an office extension


@dataclass
class _Call:
    key: str
    own: bool  # made by the watcher (no observer call)
    ringing: set[str] = field(default_factory=set)
    answered_by: str | None = None
    dialogs: set[tuple[str, str]] = field(default_factory=set)  # (extension, dialog id)


# (Call-ID, caller number) -> the observer's key for that ringing call, or None
ObserverLookup = Callable[[str, str], str | None]


class DialogCalls:
    def __init__(self, line: str, observer_call: ObserverLookup) -> None:
        self.line = line
        self._observer_call = observer_call
        self._by_dialog: dict[tuple[str, str], _Call] = {}
        self._by_key: dict[str, _Call] = {}
        # Call-ID -> extension that answered, for the observer's "answered elsewhere"
        self.answerers: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def change(self, extension: str, change: DialogChange, now: float) -> list[LineEvent]:
        after = change.after
        ref = (extension, after.id)
        call = self._by_dialog.get(ref)
        if after.state in RINGING_STATES:
            if after.direction == "initiator":
                return []  # the user dials out: presence only
            if call is None:
                return self._ringing_new(extension, ref, change, now)
            return []
        if after.state is DialogState.CONFIRMED:
            if after.call_id:
                self._remember(after.call_id, extension)
            if call is None:
                if after.direction == "initiator":
                    return []  # the user's own outgoing call
                # answered before any early state reached us (an auto-answering phone)
                events = self._ringing_new(extension, ref, change, now)
                call = self._by_dialog.get(ref)
                return events + (self._answered(call, extension, now) if call else [])
            return self._answered(call, extension, now)
        # terminated
        if call is None:
            return []
        return self._ended(call, ref, extension, after.event, now)

    def _remember(self, call_id: str, extension: str) -> None:
        if len(self.answerers) >= MAX_CALLS:
            self.answerers.pop(next(iter(self.answerers)))
        self.answerers[call_id] = extension

    def _ringing_new(self, extension: str, ref: tuple[str, str], change: DialogChange,
                     now: float) -> list[LineEvent]:
        if len(self._by_key) >= MAX_CALLS:
            return []
        after = change.after
        caller = after.remote_user
        key = self._observer_call(after.call_id, caller)
        events: list[LineEvent] = []
        call = self._by_key.get(key) if key else None
        if call is None:
            if key is None:
                seed = f"{after.call_id or after.id}|{extension}"
                key = f"sip:{self.line}:d:{hashlib.sha1(seed.encode()).hexdigest()[:20]}"
            call = self._by_key.get(key)
            if call is None:
                call = _Call(key, own=key.startswith(f"sip:{self.line}:d:"))
                self._by_key[key] = call
                if call.own:
                    internal = caller.isdigit() and len(caller) <= INTERNAL_MAX_DIGITS
                    events.append(CallStarted(
                        line=self.line, call_key=key, at=now,
                        direction=Direction.INTERNAL if internal else Direction.INBOUND,
                        caller_num=caller, caller_name=after.remote_display,
                        called_num=extension,
                        withheld=caller.lower() in ("anonymous", "restricted")))
        self._by_dialog[ref] = call
        call.dialogs.add(ref)
        if extension not in call.ringing:
            call.ringing.add(extension)
            events.append(RingingChanged(call.key, now, tuple(sorted(call.ringing))))
        return events

    def _answered(self, call: _Call, extension: str, now: float) -> list[LineEvent]:
        if call.answered_by is not None:
            return []
        call.answered_by = extension
        call.ringing.clear()
        if call.own:
            return [RingingChanged(call.key, now, ()), Answered(call.key, now, extension)]
        return []  # the observer's call: its CANCEL (cause=200) says answered, we say who

    def _ended(self, call: _Call, ref: tuple[str, str], extension: str, why: str,
               now: float) -> list[LineEvent]:
        self._by_dialog.pop(ref, None)
        call.dialogs.discard(ref)
        events: list[LineEvent] = []
        if extension in call.ringing:
            call.ringing.discard(extension)
            if call.answered_by is None:
                events.append(RingingChanged(call.key, now, tuple(sorted(call.ringing))))
        if call.dialogs:
            return events
        del self._by_key[call.key]
        if call.answered_by is not None:
            if call.answered_by == extension:
                events.append(CallEnded(call.key, now, EndState.ANSWERED, None,
                                        f"hung up (extension {extension})"))
        elif call.own:
            events.append(CallEnded(call.key, now, EndState.MISSED, MissReason.ABANDONED,
                                    f"not answered at {extension} ({why or 'terminated'})"))
        return events

    def observer_answered(self, key: str, call_id: str) -> str | None:
        """The observer's call was answered elsewhere: by whom, if a watched phone did."""
        ext = self.answerers.get(call_id)
        if ext is not None:
            return ext
        call = self._by_key.get(key)
        return call.answered_by if call else None

    def keeps(self, key: str) -> bool:
        """Whether a watched dialog will tell the end of this answered call."""
        call = self._by_key.get(key)
        return call is not None and call.answered_by is not None and bool(call.dialogs)

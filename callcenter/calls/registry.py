"""The call registry: each live call's state, fed by line events from any line type.

It decides what the people at the desks see: it matches the caller, builds the screen-pop,
publishes call.* events on the bus, and hands finished calls to the call log. Everything here
is synchronous and cheap: the screen-pop path is a dict update, an indexed lookup and a
publish; writes to the database go through the CallLog's queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from callcenter.bus import EventBus
from callcenter.calls.model import LiveCall, Transfer, iso
from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    HoldChanged,
    LineEvent,
    PbxAnswered,
    RecordingKind,
    RecordingStarted,
    RingingChanged,
    Transferred,
)
from callcenter.matching import CallerMatch, CallerMatcher
from callcenter.models import User
from callcenter.phones import NumberKind, display

log = logging.getLogger(__name__)


class ScreenPopIndex(Protocol):
    """The synchronous reads the screen-pop needs (implemented by the store's caller index)."""

    def user_by_extension(self, extension: str) -> User | None: ...

    def user_by_id(self, user_id: int) -> User | None: ...

    def client_context(self, client_id: int, limit: int = 5) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Resumed:
    """A call as the previous run of callcenter stored it, live when that run stopped. If the
    line re-adopts it, it is the same call: its first times and who took part are kept."""

    started_at: float
    answered_at: float | None = None
    answered_ext: str | None = None
    answered_user: int | None = None
    answered_by_outside: bool = False
    rang: tuple[str, ...] = ()
    users: frozenset[int] = frozenset()
    recordings: tuple[str, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    withheld: bool = False  # the caller withheld the number: re-adopted, it stays hidden


class CallSink(Protocol):
    def resumed(self, call_key: str) -> Resumed | None:
        """The stored state of a call a previous run left live (None: a new call)."""
        ...

    def call_changed(self, call: LiveCall) -> None: ...

    def recording_started(self, call: LiveCall, path: str) -> None: ...

    def call_finished(self, call: LiveCall) -> None: ...


class CallRegistry:
    def __init__(self, matcher: CallerMatcher, index: ScreenPopIndex, bus: EventBus,
                 sink: CallSink | None = None, *, region: str | Callable[[], str] = "RU",
                 clock: Callable[[], float] | None = None) -> None:
        self._matcher = matcher
        self._index = index
        self._bus = bus
        self._sink = sink
        # The office's country, read per call: an admin may change it while running.
        self._region: Callable[[], str] = region if callable(region) else (lambda: region)
        self._calls: dict[str, LiveCall] = {}
        self._ended: dict[str, None] = {}  # recently ended ids, so a replayed end is ignored
        # Re-adopted calls answered before the restart -> whether the line has since said who
        # holds them (its Answered then updates the holder, not the first answer).
        self._resumed: dict[str, bool] = {}
        self._dispatch: dict[type, Callable[[Any], None]] = {
            CallStarted: self._started,
            CallerChanged: self._caller_changed,
            RingingChanged: self._ringing,
            Answered: self._answered,
            PbxAnswered: self._pbx_answered,
            Transferred: self._transferred,
            HoldChanged: self._hold,
            RecordingStarted: self._recording,
            CallEnded: self._ended_call,
        }

    # -- queries ---------------------------------------------------------------------------

    def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def live(self) -> list[LiveCall]:
        return list(self._calls.values())

    def presence(self) -> dict[str, str]:
        """Extension -> "busy" (in a call) or "ringing"; extensions not listed are free."""
        out: dict[str, str] = {}
        for call in self._calls.values():
            for ext in call.ringing:
                out.setdefault(ext, "ringing")
            if call.current_ext and call.answered_at is not None:
                out[call.current_ext] = "busy"
            if call.direction is not Direction.INBOUND and call.answered_at and (
                call.caller_raw.isdigit() and len(call.caller_raw) <= 6
            ):
                out[call.caller_raw] = "busy"
        return out

    def snapshot(self, call: LiveCall) -> dict[str, Any]:
        match = dict(call.match_json)
        manager = match.get("manager")
        if manager and manager.get("extension"):
            manager = dict(manager, busy=manager["extension"] in self.presence())
            match["manager"] = manager
        return {"call": call.to_json(), "match": match}

    # -- line events -----------------------------------------------------------------------

    def handle(self, event: LineEvent) -> None:
        handler = self._dispatch.get(type(event))
        if handler is None:
            return
        try:
            handler(event)
        except Exception:  # a bug in one call must not stop the line's reader
            log.exception("call registry failed on %r", event)

    def _publish(self, topic: str, call: LiveCall, at: float, **extra: Any) -> None:
        data = self.snapshot(call)
        data.update(extra)
        self._bus.publish(topic, data, at)

    def _started(self, e: CallStarted) -> None:
        if e.call_key in self._calls or e.call_key in self._ended:
            return
        previous = self._sink.resumed(e.call_key) if self._sink else None
        if previous is not None and previous.withheld and e.direction is Direction.INBOUND:
            e = replace(e, withheld=True)  # before the lookup: nothing of it is ever shown
        call = self._new_call(e)
        self._resume(call, previous)
        self._calls[call.id] = call
        if self._sink:
            self._sink.call_changed(call)
        self._publish("call.updated", call, e.at)

    def _new_call(self, e: CallStarted) -> LiveCall:
        # The client of an outbound call is the party called, not our extension.
        subject = e.called_num if e.direction is Direction.OUTBOUND else e.caller_num
        match = self._matcher.match(subject, withheld=e.withheld and
                                    e.direction is Direction.INBOUND)
        # The matcher's fast path already knows an inbound caller's E.164 form when it hit;
        # phonenumbers parses only what it could not.
        caller_number = (match.number if e.direction is Direction.INBOUND and match.number.e164
                         else self._matcher.normalize(e.caller_num))
        withheld = e.withheld or caller_number.kind is NumberKind.WITHHELD
        originated_by = placed_by = None
        if e.direction is not Direction.INBOUND:
            user = self._index.user_by_extension(e.caller_num)
            placed_by = user.id if user else None
            originated_by = placed_by if e.originated else None
        call = LiveCall(
            id=e.call_key, line=e.line, direction=e.direction,
            caller_raw="" if withheld else e.caller_num,
            # A caller who withheld the number is not named either (the carrier may still send
            # the name with the real number, P-Asserted-Identity).
            caller_name="" if withheld else e.caller_name,
            withheld=withheld, called=e.called_num, started_at=e.at, match=match,
            caller_e164=None if withheld else caller_number.e164,
            caller_display="" if withheld else display(caller_number, self._region()),
            withheld_raw=e.caller_num if withheld else "",
            originated=e.originated, originated_by=originated_by, placed_by=placed_by,
        )
        call.match_json = self._match_json(match, e.direction)
        if placed_by is not None:
            call.users.add(placed_by)
        if e.direction is Direction.OUTBOUND:
            called = self._matcher.normalize(e.called_num)
            call.client_phone = called.e164 or e.called_num or None
        elif not withheld:
            call.client_phone = call.caller_e164 or e.caller_num or None
        return call

    def _resume(self, call: LiveCall, previous: Resumed | None) -> None:
        """A call re-adopted after a restart keeps what the previous run knew of it. Its
        answer is applied at once: the line need not report one again (a caller whose leg was
        already up, waiting in a queue or for a blind transfer to be picked up, gets none)."""
        if previous is None:
            return
        if previous.answered_at is None and previous.rang:
            # It rang before the restart and nobody took it since: count that time as ringing
            # (the best the stored row tells), so ring time is not only this run's share.
            call.rang_seconds += max(0.0, call.started_at - previous.started_at)
        call.started_at = previous.started_at
        call.rang = [*previous.rang, *(ext for ext in call.rang if ext not in previous.rang)]
        call.users |= previous.users
        call.recordings = [*previous.recordings]
        call.transfers = [*previous.transfers, *call.transfers]
        if previous.answered_at is None:
            return
        call.answered_at = previous.answered_at
        call.answered_by_outside = previous.answered_by_outside
        call.answered_ext = call.current_ext = previous.answered_ext
        for transfer in call.transfers:
            if transfer.result == "success" and transfer.to.isdigit():
                call.current_ext = transfer.to
        call.answered_user = previous.answered_user
        user = (self._index.user_by_id(previous.answered_user)
                if previous.answered_user is not None else None)
        call.answered_user_name = user.name if user else None
        self._resumed[call.id] = False

    # A switchboard number shared by hundreds of contacts must not make every screen-pop
    # event (and call-log row) that big: the card lists this many and says how many more.
    max_candidates = 20

    def _match_json(self, match: CallerMatch, direction: Direction) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "unknown", "client": None, "contact": None, "manager": None,
            "candidates": [
                {"client_id": c.client_id, "client_name": c.client_name,
                 "contact_id": c.contact_id, "contact_name": c.contact_name,
                 "manager_id": c.manager_id, "matched_by": c.matched_by}
                for c in match.candidates[:self.max_candidates]
            ],
            "candidates_total": len(match.candidates),
            "user": None, "last_interactions": [], "open_tasks": [],
        }
        if match.withheld and direction is Direction.INBOUND:
            out["kind"] = "withheld"
            return out
        if match.user is not None:
            out["kind"] = "user"
            out["user"] = {"id": match.user.id, "name": match.user.name,
                           "extension": match.user.extension}
        client_id = match.client_id
        if client_id is not None:
            out["kind"] = "client"
            context = self._index.client_context(client_id)
            out["client"] = context["client"]
            contact = match.contact
            out["contact"] = ({"id": contact.contact_id, "name": contact.contact_name}
                              if contact else None)
            out["last_interactions"] = context["last_interactions"]
            out["open_tasks"] = context["open_tasks"]
            manager_id = context["client"].get("manager_id") if context["client"] else None
            manager = self._index.user_by_id(manager_id) if manager_id else None
            if manager is not None:
                out["manager"] = {"id": manager.id, "name": manager.name,
                                  "extension": manager.extension, "busy": False}
        elif match.tie:
            out["kind"] = "tie"
        return out

    def _caller_changed(self, e: CallerChanged) -> None:
        call = self._calls.get(e.call_key)
        if call is None:
            return
        if e.withheld and not call.withheld and call.direction is Direction.INBOUND:
            self._withhold(call)
        if e.called_num is not None:
            call.called = e.called_num
            if call.direction is Direction.OUTBOUND and not call.match.candidates:
                call.match = self._matcher.match(e.called_num)
                call.match_json = self._match_json(call.match, call.direction)
        if e.caller_name is not None and not call.withheld:
            call.caller_name = e.caller_name
        if e.caller_num is not None and not call.withheld and call.direction is Direction.INBOUND:
            number = self._matcher.normalize(e.caller_num)
            call.caller_raw, call.caller_e164 = e.caller_num, number.e164
            call.caller_display = display(number, self._region())
            call.client_phone = number.e164 or e.caller_num or None
            # A caller ID that became known late must still find the client's card.
            call.match = self._matcher.match(e.caller_num)
            call.match_json = self._match_json(call.match, call.direction)
        self._publish("call.updated", call, e.at)

    def _withhold(self, call: LiveCall) -> None:
        """The line learnt late that the caller withheld the number: forget what was shown,
        in the call log's row and in the events a console that reconnects is replayed."""
        call.withheld = True
        call.withheld_raw = call.withheld_raw or call.caller_raw
        call.caller_raw = call.caller_display = ""
        call.caller_name = ""
        call.caller_e164 = call.client_phone = None
        call.match = self._matcher.match(None, withheld=True)
        call.match_json = self._match_json(call.match, call.direction)
        if self._sink:
            self._sink.call_changed(call)
        caller, match = call.to_json()["caller"], call.match_json

        def redacted(data: dict[str, Any]) -> dict[str, Any] | None:
            if not isinstance(data.get("call"), dict) or data["call"].get("id") != call.id:
                return None
            return {**data, "call": {**data["call"], "caller": caller}, "match": match}

        self._bus.redact(json.dumps(call.id, ensure_ascii=False), redacted)

    def _ringing(self, e: RingingChanged) -> None:
        call = self._calls.get(e.call_key)
        if call is None:
            return
        before = set(call.ringing)
        call.ringing_now(tuple(e.extensions), e.at)
        if e.queue:
            call.queue = e.queue
        new = [ext for ext in e.extensions if ext not in before]
        for ext in new:
            if ext not in call.rang:
                call.rang.append(ext)
        for ext in new:
            user = self._index.user_by_extension(ext)
            if user is not None:
                call.users.add(user.id)
            self._publish("call.ringing", call, e.at, extension=ext,
                          user={"id": user.id, "name": user.name} if user else None)
        if not new:
            self._publish("call.updated", call, e.at)

    def _answered(self, e: Answered) -> None:
        call = self._calls.get(e.call_key)
        if call is None:
            return
        if call.answered_at is not None:
            if self._resumed.get(call.id) is False:
                self._holder_after_restart(call, e)
            return
        call.answered_at = e.at
        call.ringing_now((), e.at)
        call.answered_by_outside = e.by_outside
        if e.extension:
            call.answered_ext = call.current_ext = e.extension
            user = self._index.user_by_extension(e.extension)
            if user is not None:
                call.answered_user, call.answered_user_name = user.id, user.name
                call.users.add(user.id)
        if self._sink:
            self._sink.call_changed(call)
        self._publish("call.answered", call, e.at)

    def _holder_after_restart(self, call: LiveCall, e: Answered) -> None:
        """The line's first word on who holds a call answered before the restart: the first
        answer stays, the holder (presence, the next transfer) is the one the line saw."""
        self._resumed[call.id] = True
        call.ringing = ()
        if e.extension:
            call.current_ext = e.extension
            user = self._index.user_by_extension(e.extension)
            if user is not None:
                call.users.add(user.id)
        if self._sink:
            self._sink.call_changed(call)
        self._publish("call.answered", call, e.at)

    def _pbx_answered(self, e: PbxAnswered) -> None:
        call = self._calls.get(e.call_key)
        if call is None or call.pbx_answered_at is not None:
            return
        call.pbx_answered_at = e.at
        self._publish("call.updated", call, e.at)

    def _transferred(self, e: Transferred) -> None:
        call = self._calls.get(e.call_key)
        if call is None:
            return
        transfer = Transfer(e.kind.value, e.from_ext, e.to, e.at, e.result)
        call.transfers.append(transfer)
        if e.result == "success" and e.to.isdigit():
            call.current_ext = e.to  # the call is theirs now: presence, the next transfer
            user = self._index.user_by_extension(e.to)
            if user is not None:
                call.users.add(user.id)
        self._publish("call.transferred", call, e.at, transfer=transfer.to_json())

    def _hold(self, e: HoldChanged) -> None:
        call = self._calls.get(e.call_key)
        if call is None or call.on_hold == e.on_hold:
            return
        call.on_hold = e.on_hold
        self._publish("call.updated", call, e.at)

    def _recording(self, e: RecordingStarted) -> None:
        call = self._calls.get(e.call_key)
        if call is None or e.path in call.recordings:
            return
        call.recordings.append(e.path)
        if e.kind is RecordingKind.VOICEMAIL:
            call.voicemails.append(e.path)
        if self._sink:
            self._sink.recording_started(call, e.path)
        self._publish("call.updated", call, e.at)

    def sweep(self, now: float, *, ringing_max: float = 3600.0, live_max: float = 12 * 3600.0
              ) -> list[str]:
        """End calls the line has gone silent about (a lost Hangup, a failed resync), so no
        card sticks in "ringing" forever. Returns the ids ended."""
        stale = [c.id for c in self._calls.values()
                 if now - c.started_at > live_max
                 or (c.answered_at is None and now - c.started_at > ringing_max)]
        for call_id in stale:
            log.warning("call %s: no news from its line for too long; closing it", call_id)
            call = self._calls[call_id]
            self._ended_call(CallEnded(call_id, now, EndState.ANSWERED if call.answered_at
                                       else EndState.FAILED,
                                       cause="closed by callcenter: no news from the line"))
        return stale

    def forget_line(self, line: str) -> list[str]:
        """Drop the live calls of ``line`` without ending them: another instance of a cluster
        took the line over and follows them now (it re-adopts them or closes them in the log;
        ending them here as well would log them twice). Returns their ids."""
        gone = [key for key, call in self._calls.items() if call.line == line]
        for key in gone:
            del self._calls[key]
            self._resumed.pop(key, None)
        return gone

    def _ended_call(self, e: CallEnded) -> None:
        call = self._calls.pop(e.call_key, None)
        if call is None:
            return
        self._ended[e.call_key] = None
        if len(self._ended) > 10_000:
            self._ended.pop(next(iter(self._ended)))
        call.ended_at = e.at
        call.end_state = e.state
        call.reason = e.reason
        answered_before = self._resumed.pop(e.call_key, None) is not None
        if answered_before and e.state is not EndState.ANSWERED:
            # Answered before the restart: the line, having seen no answer since, calls it
            # missed when the caller hangs up (still queued, or a transfer ringing).
            call.end_state, call.reason = EndState.ANSWERED, None
        call.cause = e.cause
        # Nor is it the PBX's alone: a person (or the other side) answered before the restart.
        call.handled_by_pbx = (e.by_pbx and e.state is EndState.ANSWERED
                               and not answered_before)
        call.ringing_now((), e.at)
        if self._sink:
            self._sink.call_finished(call)
        topic = "call.missed" if call.end_state is EndState.MISSED else "call.ended"
        self._publish(topic, call, e.at)


__all__ = ["CallRegistry", "Resumed", "iso"]

"""A call as the core knows it while it lives, and its JSON form for events and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callcenter.line_events import Direction, EndState, MissReason
from callcenter.matching import CallerMatch


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class Transfer:
    kind: str
    from_ext: str | None
    to: str
    at: float
    result: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "from": self.from_ext, "to": self.to, "at": iso(self.at),
                "result": self.result}


@dataclass(slots=True)
class LiveCall:
    id: str
    line: str
    direction: Direction
    caller_raw: str
    caller_name: str
    withheld: bool
    called: str
    started_at: float
    match: CallerMatch
    caller_e164: str | None = None
    caller_display: str = ""
    # The number a caller withheld, as delivered: for the call-log row (admins) only, never
    # in an event, an interaction or a task.
    withheld_raw: str = ""
    originated: bool = False
    originated_by: int | None = None  # the user whose click-to-call started it
    placed_by: int | None = None  # the user whose extension called out (any outbound call)
    ringing: tuple[str, ...] = ()
    rang: list[str] = field(default_factory=list)
    queue: str | None = None
    answered_ext: str | None = None  # the first office answerer (the call log's "answered by")
    current_ext: str | None = None  # who holds the call now (after transfers)
    users: set[int] = field(default_factory=set)  # everyone who took part, for visibility
    client_phone: str | None = None  # the client's number (caller in, called out), E.164
    answered_user: int | None = None
    answered_user_name: str | None = None
    answered_by_outside: bool = False
    answered_at: float | None = None
    ended_at: float | None = None
    end_state: EndState | None = None
    reason: MissReason | None = None
    cause: str = ""
    transfers: list[Transfer] = field(default_factory=list)
    on_hold: bool = False
    recordings: list[str] = field(default_factory=list)
    voicemails: list[str] = field(default_factory=list)  # those of ``recordings`` left as messages
    pbx_answered_at: float | None = None  # the dialplan answered (IVR, announcement, voicemail)
    handled_by_pbx: bool = False  # ended answered by the PBX alone, no person
    # Time extensions actually rang: closed intervals so far + the open one's start.
    rang_seconds: float = 0.0
    ringing_since: float | None = None
    # The screen-pop's client block, computed once when the call starts.
    match_json: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        if self.end_state is None:
            return "answered" if self.answered_at is not None else "ringing"
        if self.end_state is EndState.ANSWERED:
            return "ended"
        return self.end_state.value

    @property
    def log_state(self) -> str:
        """The call log's verdict: answered, missed or failed (live calls: their state)."""
        if self.end_state is None:
            return self.state
        return self.end_state.value

    def ringing_now(self, extensions: tuple[str, ...], at: float) -> None:
        """Keep the ring time as the ringing set changes (the registry calls this)."""
        if extensions and self.ringing_since is None:
            self.ringing_since = at
        elif not extensions and self.ringing_since is not None:
            self.rang_seconds += max(0.0, at - self.ringing_since)
            self.ringing_since = None
        self.ringing = extensions

    @property
    def ring_seconds(self) -> float | None:
        """How long extensions rang; a call that rang nobody: its wait before an answer (by a
        person or the PBX) or its end."""
        end = self.answered_at or self.ended_at
        if end is None:
            return None
        if self.rang_seconds or self.ringing_since is not None:
            total = self.rang_seconds
            if self.ringing_since is not None:
                total += max(0.0, end - self.ringing_since)
            return round(total, 3)
        if self.pbx_answered_at is not None:
            end = min(end, self.pbx_answered_at)
        return round(max(0.0, end - self.started_at), 3)

    @property
    def ivr_seconds(self) -> float | None:
        """Time with the PBX's own dialplan (IVR, announcement, voicemail) after it answered."""
        end = self.answered_at or self.ended_at
        if self.pbx_answered_at is None or end is None:
            return None
        return round(max(0.0, end - self.pbx_answered_at), 3)

    @property
    def talk_seconds(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return round(max(0.0, self.ended_at - self.answered_at), 3)

    @property
    def client_id(self) -> int | None:
        return self.match.client_id

    @property
    def contact_id(self) -> int | None:
        contact = self.match.contact
        return contact.contact_id if contact else None

    def answered_by_json(self) -> dict[str, Any] | None:
        if self.answered_ext is None and not self.answered_by_outside:
            return None
        return {"extension": self.answered_ext, "user_id": self.answered_user,
                "user_name": self.answered_user_name, "outside": self.answered_by_outside}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "line": self.line,
            "direction": self.direction.value,
            "caller": {"raw": self.caller_raw, "e164": self.caller_e164,
                       "name": self.caller_name, "withheld": self.withheld,
                       "display": self.caller_display},
            "called": self.called,
            "state": self.state,
            "reason": self.reason.value if self.reason else None,
            "cause": self.cause,
            "ringing": list(self.ringing),
            "rang": list(self.rang),
            "queue": self.queue,
            "answered_by": self.answered_by_json(),
            "current_extension": self.current_ext,
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "ring_seconds": self.ring_seconds,
            "talk_seconds": self.talk_seconds,
            "transfers": [t.to_json() for t in self.transfers],
            "on_hold": self.on_hold,
            # How many, never the PBX paths: file names often hold the caller's number
            # (FreePBX in-<exten>-<callerid>-..., Record(vm-${CALLERID(num)})). The call log
            # gives each recording by id and url.
            "recordings": len(self.recordings),
            "voicemail": bool(self.voicemails),
            "handled_by_pbx": self.handled_by_pbx,
            "ivr_seconds": self.ivr_seconds,
            "originated_by": self.originated_by,
            "placed_by": self.placed_by,
            "users": sorted(self.users),
        }

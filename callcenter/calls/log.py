"""The call log: writes every call to the store, on the client card, with callback tasks.

The registry hands calls over synchronously; the writes happen in one owned task in arrival
order, so the screen-pop path never waits for the disk. A write that fails is retried with
backoff for as long as the process runs, never dropped: a call record must survive a busy or
failing database. From a write's first failure until the queue is written again, the queue
is also kept in the journal (:mod:`callcenter.calls.journal`), so even a killed process loses
nothing; what is still queued when the process must stop goes there too, and the next start
replays it through the queue, ahead of any new write (without holding up start-up for a
long lock or a poison write).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.calls.journal import Journal, Write
from callcenter.calls.model import LiveCall, Transfer, iso
from callcenter.calls.registry import Resumed
from callcenter.line_events import Direction, EndState
from callcenter.matching import CallerMatch
from callcenter.models import InteractionKind, Role, TaskKind
from callcenter.phones import Number, NumberKind
from callcenter.store.base import Conflict, NotFound, PhoneMatch, Store

log = logging.getLogger(__name__)

# A write that fails this often for a reason other than a busy database (a bug, a CHECK
# constraint) will not succeed by waiting: it goes to the dead-letter file instead of
# stopping every later call behind it.
PERMANENT_ATTEMPTS = 5

# The writer's own step after the journal's writes at start; never journaled.
_CLOSE_DANGLING = "close_dangling"


def transient(exc: BaseException) -> bool:
    """Whether waiting can cure this failure: a busy or locked database, a full or failing
    disk. Everything else (a code bug, a constraint) is permanent."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in ("locked", "busy", "disk", "unable to open"))
    return False


def call_row(call: LiveCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "line": call.line,
        "direction": call.direction.value,
        "caller_raw": call.caller_raw,
        "caller_e164": call.caller_e164,
        "caller_name": call.caller_name,
        "withheld": int(call.withheld),
        "withheld_raw": call.withheld_raw,
        "called": call.called,
        "client_id": call.client_id,
        "contact_id": call.contact_id,
        "candidates": call.match_json.get("candidates", []),
        "state": call.log_state,
        "reason": call.reason.value if call.reason else None,
        "cause": call.cause,
        "answered_by_user": call.answered_user,
        "answered_by_ext": call.answered_ext,
        "user_id": call.placed_by or call.answered_user,
        "rang": list(call.rang),
        "ringing_at": iso(call.started_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
        "transfers": [t.to_json() for t in call.transfers],
        "users": sorted(call.users),
        "handled_by_pbx": int(call.handled_by_pbx),
        "ivr_seconds": call.ivr_seconds,
        "answered_by_outside": int(call.answered_by_outside),
        "queue": call.queue,
    }


def summary(call: LiveCall) -> str:
    who = call.caller_name or call.caller_display or call.caller_raw or "withheld"
    if call.direction is Direction.OUTBOUND:
        text = f"Outbound call to {call.called}"
    elif call.direction is Direction.INTERNAL:
        text = f"Internal call from {who}"
    else:
        text = f"Inbound call from {who}"
    if call.handled_by_pbx:
        text += f", answered by the PBX ({round(call.ivr_seconds or 0)} s)"
    elif call.end_state is EndState.ANSWERED:
        by = call.answered_user_name or call.answered_ext or "the other side"
        text += f", answered by {by}, talk {round(call.talk_seconds or 0)} s"
    elif call.end_state is EndState.MISSED:
        text += f", missed ({call.reason.value if call.reason else 'not answered'})"
    elif call.end_state is EndState.FAILED:
        text += f", failed ({call.reason.value if call.reason else call.cause or 'error'})"
    if call.transfers:
        text += ", transferred to " + ", ".join(t.to for t in call.transfers)
    if call.voicemails:
        text += ", left a voicemail"
    return text


def _unix(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _transfers(stored: list[dict[str, Any]]) -> list[Transfer]:
    return [Transfer(t["kind"], t["from"], t["to"], _unix(t["at"]) or 0.0, t["result"])
            for t in stored]


def _left_open_call(row: dict[str, Any]) -> LiveCall:
    """A call a previous run left open and no line re-adopted (it ended while callcenter was
    down), rebuilt from its row for the finish step. Nobody was seen answering an inbound one:
    as far as anyone knows the caller waited in vain, so it is missed."""
    direction = Direction(row["direction"])
    stored = [c for c in row["candidates"] if c.get("client_id") == row["client_id"]]
    candidates = tuple(
        PhoneMatch(c["client_id"], c.get("client_name") or "", c.get("contact_id") or 0,
                   c.get("contact_name") or "", c.get("manager_id"), "",
                   c.get("matched_by") or "")
        for c in (stored if row["client_id"] is not None else []))
    number = Number(row["caller_raw"], NumberKind.WITHHELD if row["withheld"]
                    else NumberKind.EXTERNAL, row["caller_e164"])
    if row["answered_at"] is not None:
        state = EndState.ANSWERED
    else:
        state = EndState.MISSED if direction is Direction.INBOUND else EndState.FAILED
    call = LiveCall(
        id=row["id"], line=row["line"], direction=direction, caller_raw=row["caller_raw"],
        caller_name=row["caller_name"], withheld=bool(row["withheld"]), called=row["called"],
        started_at=_unix(row["ringing_at"]) or 0.0, match=CallerMatch(number, candidates),
        caller_e164=row["caller_e164"], caller_display=row["caller_e164"] or "",
        placed_by=row["user_id"] if direction is not Direction.INBOUND else None,
        rang=list(row["rang"]), answered_ext=row["answered_by_ext"],
        users=set(row["users"]), answered_user=row["answered_by_user"],
        answered_user_name=row["answered_by_name"],
        answered_by_outside=bool(row["answered_by_outside"]),
        answered_at=_unix(row["answered_at"]), ended_at=_unix(row["ended_at"]),
        end_state=state, cause=row["cause"], transfers=_transfers(row["transfers"]),
        recordings=[r["pbx_path"] for r in row["recordings"]],
        voicemails=[r["pbx_path"] for r in row["recordings"] if r.get("kind") == "voicemail"],
        handled_by_pbx=bool(row.get("handled_by_pbx")),
        match_json={"candidates": row["candidates"], "client": {
            "id": row["client_id"], "name": row["client_name"],
            "manager_id": candidates[0].manager_id if candidates else None,
        } if row["client_id"] is not None else None},
    )
    if direction is Direction.INBOUND and not call.withheld:
        call.client_phone = row["caller_e164"] or row["caller_raw"] or None
    return call


def _resumed(row: dict[str, Any]) -> Resumed:
    return Resumed(
        started_at=_unix(row["ringing_at"]) or 0.0, answered_at=_unix(row["answered_at"]),
        answered_ext=row["answered_by_ext"], answered_user=row["answered_by_user"],
        answered_by_outside=row["answered_by_outside"],
        rang=tuple(row["rang"]), users=frozenset(row["users"]),
        recordings=tuple(row["recordings"]),
        transfers=tuple(_transfers(row["transfers"])),
        withheld=bool(row.get("withheld")))


def wants_callback(call: LiveCall, policy: str) -> bool:
    """Whether an ended inbound call gets a callback task under the line's ``callback_on``
    policy (callcenter.config.CALLBACK_POLICIES): a caller who waited for a person and got
    none, or left a message, wants a call back; one who heard the office's announcement
    (answered by the PBX alone) does not, unless the line says "always"."""
    if call.direction is not Direction.INBOUND or call.answered_at is not None:
        return False
    if policy == "never":
        return False
    if call.voicemails:
        return True
    if policy == "voicemail":
        return False
    if call.handled_by_pbx:
        return policy == "always"
    return call.end_state is EndState.MISSED


def _kind(call: LiveCall, path: str) -> str:
    return "voicemail" if path in call.voicemails else "call"


def _unlinked(kind: str, item: Any) -> Any:
    if kind == "upsert":
        return {**item, "client_id": None, "contact_id": None}
    if kind == "finish":
        item.match = CallerMatch(item.match.number)  # no candidates: unmatched
        item.match_json = {**item.match_json, "client": None, "contact": None}
    return item


class CallLog:
    """The call log's writer. ``journal`` is where writes still held at stop are spooled (and
    replayed from at start); ``retry_seconds`` doubles per failed attempt up to
    ``max_retry_seconds`` (for ever while the failure is :func:`transient`; after
    ``permanent_attempts`` other failures the write goes to ``call-log.dead`` beside the
    journal); ``start`` waits up to ``start_wait_seconds`` for the journal's replay and
    ``stop`` waits ``drain_seconds`` for the queue to empty first.
    ``callback_on`` maps a line name to its callback policy (config ``callback_on``);
    ``callback_due`` gives the due time of a callback for a call at a time (a call outside
    the office's hours: its next opening)."""

    def __init__(self, store: Store, *, journal: Path | None = None,
                 retry_seconds: float = 2.0, max_retry_seconds: float = 30.0,
                 drain_seconds: float = 10.0, permanent_attempts: int = PERMANENT_ATTEMPTS,
                 start_wait_seconds: float = 5.0,
                 callback_on: Mapping[str, str] | None = None,
                 callback_due: Callable[[datetime], datetime] | None = None,
                 close_dangling: bool = True) -> None:
        self._store = store
        # False in a cluster: the calls left open belong to the lines' owners; an instance
        # closes a line's when it takes the line over (take_over).
        self._close_dangling_at_start = close_dangling
        # When a callback for a call at a time is due (the office's hours); None: at once.
        self._callback_due = callback_due
        self._callback_on = dict(callback_on or {})  # line name -> policy
        self._journal = Journal(journal) if journal is not None else None
        self._queue: deque[Write] = deque()  # a deque: spooling reads it whole
        self._queued = asyncio.Event()  # set while the queue is not empty
        self._task: asyncio.Task[None] | None = None
        self._current: Write | None = None  # taken from the queue, not yet written
        self._spooling = False  # the journal holds the current write and the queue
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._drain = drain_seconds
        self._permanent_attempts = permanent_attempts
        self._start_wait = start_wait_seconds
        self._dangling_closed = asyncio.Event()  # the last run's open calls are closed
        self._finish_pending = False  # finish_left_open() came before that
        self._idle = asyncio.Event()
        self._idle.set()
        self._left_open: dict[str, Resumed] = {}

    def set_callback_on(self, line: str, policy: str | None) -> None:
        """A line added, edited or removed at run time (None: removed)."""
        if policy is None:
            self._callback_on.pop(line, None)
        else:
            self._callback_on[line] = policy

    # -- the registry's sink ---------------------------------------------------------------

    def resumed(self, call_key: str) -> Resumed | None:
        return self._left_open.pop(call_key, None)

    def call_changed(self, call: LiveCall) -> None:
        self._put("upsert", call_row(call))

    def recording_started(self, call: LiveCall, path: str) -> None:
        self._put("recording", (call.id, path, _kind(call, path)))

    def call_finished(self, call: LiveCall) -> None:
        self._put("finish", call)

    def finish_left_open(self) -> int:
        """Called once the lines have re-adopted what is still up (their first resync): the
        calls the previous run left open that no line re-adopted ended while callcenter was
        down. Each gets the finish step it missed: the card's interaction, and a callback task
        for a caller nobody answered. Returns how many."""
        if not self._dangling_closed.is_set():
            # The database was too slow at start: the closing step, still queued, finishes
            # them once it runs (behind the re-adopted calls' writes, which it then skips).
            self._finish_pending = True
            return 0
        left, self._left_open = list(self._left_open), {}
        for call_id in left:
            self._put("left_open", call_id)
        return len(left)

    async def take_over(self, line: str) -> int:
        """An instance of a cluster takes ``line`` over from one that stopped or died: the
        calls that one left open on the line are closed as at a start, and their rows kept for
        the line's resync to re-adopt (resumed()); finish_left_open() once it has resynced
        finishes the others. Written at once, not queued: this instance has no writes of that
        line queued. Returns how many were open."""
        closed = await self._store.close_dangling_calls(
            "the instance running the line stopped during the call", line=line)
        if closed:
            log.warning("line %s: %d calls were live when its previous instance stopped",
                        line, len(closed))
        self._left_open.update({row["id"]: _resumed(row) for row in closed})
        return len(closed)

    def _put(self, kind: str, item: Any) -> None:
        self._idle.clear()
        self._queue.append((kind, item))
        self._queued.set()
        if self._spooling and self._journal is not None:
            try:
                self._journal.append(kind, item)
            except OSError:
                log.exception("call log: cannot append to %s; the write is held in memory",
                              self._journal.path)

    def _start_spooling(self) -> None:
        """The current write failed: keep it and the queue behind it on disk until written."""
        if self._spooling or self._journal is None or self._current is None:
            return
        held = [w for w in (self._current, *self._queue) if w[0] != _CLOSE_DANGLING]
        try:
            # Blocking file I/O on purpose: rare, and the writes must be on disk before
            # anything else happens.
            self._journal.spool(held)
        except OSError:
            log.exception("call log: cannot spool to %s; %d writes held in memory",
                          self._journal.path, len(held))
            return
        self._spooling = True
        log.warning("call log: database failing; %d writes kept in %s until written",
                    len(held), self._journal.path)

    def _stop_spooling(self) -> None:
        if not self._spooling or self._journal is None:
            return
        try:
            self._journal.clear()
        except OSError:
            log.exception("call log: cannot remove %s (its writes are all stored; replaying"
                          " it is harmless)", self._journal.path)
        self._spooling = False

    # -- the writer task -------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Writes waiting for the store (for /metrics)."""
        return len(self._queue) + (self._current is not None)

    async def start(self) -> None:
        """Queue what the last run left in the journal, then the closing of the calls it left
        open, ahead of any new write, and wait up to ``start_wait_seconds`` for both: a long
        lock or a poison line must not keep the lines from connecting (their writes queue
        behind). Normally this all happens before the lines connect: a call still up is
        re-adopted by its line's resync afterwards, and picks up what the previous run
        stored (see resumed())."""
        writes = self._journal.load() if self._journal is not None else []
        if writes and self._journal is not None:
            log.warning("call log: replaying %d writes from %s", len(writes),
                        self._journal.path)
            # They are in the journal already, in order: new writes are appended behind them
            # until the queue is written, and the journal goes then.
            self._spooling = True
            self._queue.extend(writes)
        if self._close_dangling_at_start:
            self._queue.append((_CLOSE_DANGLING, None))
        else:
            self._dangling_closed.set()
        if self._queue:
            self._idle.clear()
            self._queued.set()
        self._task = asyncio.create_task(self._run(), name="call-log-writer")
        try:
            await asyncio.wait_for(self._dangling_closed.wait(), self._start_wait)
        except TimeoutError:
            log.warning("call log: the database is slow; %d writes from the last run are"
                        " stored in the background, ahead of new calls", len(writes))

    async def _close_dangling(self) -> None:
        closed = await self._store.close_dangling_calls(
            "callcenter stopped during the call")
        if closed:
            log.warning("%d calls were still live when callcenter last stopped", len(closed))
        self._left_open = {row["id"]: _resumed(row) for row in closed}
        self._dangling_closed.set()
        if self._finish_pending:
            self._finish_pending = False
            self.finish_left_open()

    async def replay_journal(self) -> int:
        """Write what the last run spooled; the journal goes only once all of it is stored.
        Runs before dangling calls are closed, so a call spooled while live is closed too."""
        if self._journal is None:
            return 0
        writes = self._journal.load()
        if writes:
            log.warning("call log: replaying %d writes from %s", len(writes),
                        self._journal.path)
        for kind, item in writes:
            await self._write_retrying(kind, item)
        self._journal.clear()
        return len(writes)

    async def stop(self) -> None:
        """Write what is queued; what cannot be written in time goes to the journal."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), self._drain)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        held = [self._current] if self._current is not None else []
        self._current = None
        held.extend(self._queue)
        held = [w for w in held if w[0] != _CLOSE_DANGLING]  # the next start does it again
        self._queue.clear()
        self._queued.clear()
        if held and self._spooling:
            # Already there, in order (appending them again would put older states of a
            # call after newer ones).
            log.warning("call log: %d writes kept in %s for the next start", len(held),
                        self._journal.path if self._journal else "?")
        elif held:
            if self._journal is None:
                log.error("call log: no journal configured; %d writes are lost", len(held))
            else:
                # Blocking file I/O on purpose: this is shutdown, and nothing else should run
                # before the writes are safely on disk.
                self._journal.spool(held)
                log.warning("call log: %d writes spooled to %s for the next start",
                            len(held), self._journal.path)
        self._spooling = False
        self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._queued.wait()
            self._current = self._queue.popleft()
            if not self._queue:
                self._queued.clear()
            await self._write_retrying(*self._current, on_failure=self._start_spooling)
            self._current = None
            if not self._queue:
                self._stop_spooling()
                self._idle.set()

    async def _write_retrying(self, kind: str, item: Any,
                              on_failure: Callable[[], None] | None = None) -> None:
        delay, attempt, permanent, unlinked = self._retry, 0, 0, False
        while True:
            attempt += 1
            try:
                await self._write(kind, item)
                return
            except (sqlite3.IntegrityError, Conflict):
                if not unlinked:
                    # The client or contact was deleted while the call went on: keep the
                    # call, unlinked, rather than block every later call behind it.
                    log.warning("call log: %s refers to a deleted record; unlinking", kind)
                    item, unlinked = _unlinked(kind, item), True
                    if self._current is not None:
                        self._current = (kind, item)
                    continue
                permanent += 1
                log.exception("call log: %s write failed (attempt %d); retrying in %.1f s",
                              kind, attempt, delay)
                if on_failure is not None:
                    on_failure()
            except Exception as exc:
                permanent += not transient(exc)
                if attempt == 1:
                    log.exception("call log: %s write failed; retrying in %.1f s", kind, delay)
                else:
                    log.warning("call log: %s write still failing (attempt %d); retrying in"
                                " %.1f s", kind, attempt, delay)
                if on_failure is not None:
                    on_failure()
            if permanent >= self._permanent_attempts:
                self._dead_letter(kind, item)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry)

    def _dead_letter(self, kind: str, item: Any) -> None:
        if kind == _CLOSE_DANGLING:
            log.error("call log: cannot close the calls the last run left open; they stay"
                      " open until the next start")
            self._dangling_closed.set()
            return
        if self._journal is None:
            log.error("call log: %s write keeps failing; no journal configured, dropped", kind)
            return
        dead = self._journal.path.with_name(self._journal.path.stem + ".dead")
        try:
            Journal(dead).append(kind, item)
        except OSError:
            log.exception("call log: cannot write %s; the %s write is dropped", dead, kind)
            return
        log.error("call log: %s write failed %d times; moved to %s (JSON lines, one write each)"
                  " so the calls behind it are stored", kind, self._permanent_attempts, dead)

    async def _write(self, kind: str, item: Any) -> None:
        if kind == _CLOSE_DANGLING:
            await self._close_dangling()
        elif kind == "upsert":
            await self._store.upsert_call(item)
        elif kind == "recording":
            await self._store.add_recording(*item)
        elif kind == "left_open":
            await self._finish_left_open(item)
        else:
            await self._finish(item)

    async def _finish(self, call: LiveCall) -> None:
        store = self._store
        await store.upsert_call(call_row(call))
        for path in call.recordings:
            # no-op when known since it started
            await store.add_recording(call.id, path, _kind(call, path))
        await store.schedule_recordings(call.id)
        await self._on_the_card(call)

    async def _finish_left_open(self, call_id: str) -> None:
        try:
            row = await self._store.get_call(call_id)
        except NotFound:
            return
        if row["ended_at"] is None:
            return  # re-adopted after all (a late resync): its own end is logged as usual
        call = _left_open_call(row)
        if row["state"] != call.log_state:
            # Its ring time is unknown: the end is when callcenter started again, not when
            # the caller gave up. Its recordings stay as closed: fetched once stable.
            await self._store.upsert_call({**call_row(call), "ring_seconds": None})
        await self._on_the_card(call)

    async def _on_the_card(self, call: LiveCall) -> None:
        """The call on the client card, with a callback task when one is owed."""
        store = self._store
        at = datetime.fromtimestamp(call.started_at, UTC)
        await store.add_interaction(
            InteractionKind.CALL, at, summary(call), client_id=call.client_id,
            contact_id=call.contact_id, user_id=call.placed_by or call.answered_user,
            ref=call.id, data={
                "call_id": call.id, "direction": call.direction.value,
                "state": call.log_state, "reason": call.reason.value if call.reason else None,
                "caller": call.caller_raw, "caller_name": call.caller_name,
                "called": call.called, "answered_by": call.answered_by_json(),
                "ring_seconds": call.ring_seconds, "talk_seconds": call.talk_seconds,
                "transfers": [t.to_json() for t in call.transfers],
                "recordings": len(call.recordings),  # not the PBX paths (caller numbers)
                "voicemail": bool(call.voicemails), "handled_by_pbx": call.handled_by_pbx,
                "ivr_seconds": call.ivr_seconds,
            })
        if wants_callback(call, self._callback_on.get(call.line, "waited_or_voicemail")):
            await self._callback_task(call)
        elif call.answered_at is not None and call.client_phone:
            # They got through (called again, or we called them): the callback is done.
            await store.close_callback_tasks(call.client_phone, call.id)

    async def _callback_task(self, call: LiveCall) -> None:
        if call.withheld or not call.caller_raw:
            return  # nobody to call back
        phone = call.client_phone or call.caller_raw
        if await self._store.open_callback_task(phone) is not None:
            return  # one open task per number, however often they tried
        manager_id = None
        if call.client_id is not None:
            manager_id = (call.match_json.get("client") or {}).get("manager_id")
        if manager_id is not None:
            try:
                manager = await self._store.get_user(manager_id)
            except NotFound:
                manager = None
            if manager is None or not manager.active:
                manager_id = None  # nobody would see it: the secretaries take it
        who = call.caller_name or call.caller_display or call.caller_raw
        client = (call.match_json.get("client") or {}).get("name")
        title = f"Call back {who}" + (f" ({client})" if client and client != who else "")
        now = datetime.now(UTC)
        due = now
        if self._callback_due is not None:
            # By when the caller rang: a call at 23:00 is due at opening even if the log
            # writes it after midnight.
            due = max(now, self._callback_due(datetime.fromtimestamp(call.started_at, UTC)))
        await self._store.create_task(
            TaskKind.CALLBACK, title, due_at=due, assignee_id=manager_id,
            assignee_role=None if manager_id else Role.SECRETARY, client_id=call.client_id,
            phone=phone, ref=call.id, voicemail=bool(call.voicemails),
        )

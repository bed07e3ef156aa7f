"""The call log: writes every call to the store, on the client card, with callback tasks.

The registry hands calls over synchronously; the writes happen in one owned task in arrival
order, so the screen-pop path never waits for the disk. A write that fails is retried with
backoff for as long as the process runs, never dropped: a call record must survive a busy or
failing database. What is still queued when the process must stop goes to the journal
(:mod:`callcenter.calls.journal`), which the next start replays before the lines connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.calls.journal import Journal, Write
from callcenter.calls.model import LiveCall, iso
from callcenter.calls.registry import Resumed
from callcenter.line_events import Direction, EndState
from callcenter.matching import CallerMatch
from callcenter.models import InteractionKind, Role, TaskKind
from callcenter.store.base import Conflict, NotFound, Store

log = logging.getLogger(__name__)


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


def _resumed(row: dict[str, Any]) -> Resumed:
    return Resumed(
        started_at=_unix(row["ringing_at"]) or 0.0, answered_at=_unix(row["answered_at"]),
        answered_ext=row["answered_by_ext"], answered_user=row["answered_by_user"],
        rang=tuple(row["rang"]), users=frozenset(row["users"]),
        recordings=tuple(row["recordings"]))


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
    ``max_retry_seconds``; ``stop`` waits ``drain_seconds`` for the queue to empty first.
    ``callback_on`` maps a line name to its callback policy (config ``callback_on``)."""

    def __init__(self, store: Store, *, journal: Path | None = None,
                 retry_seconds: float = 2.0, max_retry_seconds: float = 30.0,
                 drain_seconds: float = 10.0,
                 callback_on: Mapping[str, str] | None = None) -> None:
        self._store = store
        self._callback_on = dict(callback_on or {})  # line name -> policy
        self._journal = Journal(journal) if journal is not None else None
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._current: Write | None = None  # taken from the queue, not yet written
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._drain = drain_seconds
        self._idle = asyncio.Event()
        self._idle.set()
        self._left_open: dict[str, Resumed] = {}

    # -- the registry's sink ---------------------------------------------------------------

    def resumed(self, call_key: str) -> Resumed | None:
        return self._left_open.pop(call_key, None)

    def call_changed(self, call: LiveCall) -> None:
        self._put("upsert", call_row(call))

    def recording_started(self, call: LiveCall, path: str) -> None:
        self._put("recording", (call.id, path, _kind(call, path)))

    def call_finished(self, call: LiveCall) -> None:
        self._put("finish", call)

    def _put(self, kind: str, item: Any) -> None:
        self._idle.clear()
        self._queue.put_nowait((kind, item))

    # -- the writer task -------------------------------------------------------------------

    async def start(self) -> None:
        await self.replay_journal()
        # Before the lines connect: a call still up is re-adopted by its line's resync
        # afterwards, and picks up what the previous run stored (see resumed()).
        closed = await self._store.close_dangling_calls(
            "callcenter stopped during the call")
        if closed:
            log.warning("%d calls were still live when callcenter last stopped", len(closed))
        self._left_open = {row["id"]: _resumed(row) for row in closed}
        self._task = asyncio.create_task(self._run(), name="call-log-writer")

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
        while not self._queue.empty():
            held.append(self._queue.get_nowait())
        if held:
            if self._journal is None:
                log.error("call log: no journal configured; %d writes are lost", len(held))
            else:
                # Blocking file I/O on purpose: this is shutdown, and nothing else should run
                # before the writes are safely on disk.
                self._journal.spool(held)
                log.warning("call log: %d writes spooled to %s for the next start",
                            len(held), self._journal.path)
        self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            self._current = await self._queue.get()
            await self._write_retrying(*self._current)
            self._current = None
            if self._queue.empty():
                self._idle.set()

    async def _write_retrying(self, kind: str, item: Any) -> None:
        delay, attempt, unlinked = self._retry, 0, False
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
                log.exception("call log: %s write failed (attempt %d); retrying in %.1f s",
                              kind, attempt, delay)
            except Exception:
                if attempt == 1:
                    log.exception("call log: %s write failed; retrying in %.1f s", kind, delay)
                else:
                    log.warning("call log: %s write still failing (attempt %d); retrying in"
                                " %.1f s", kind, attempt, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry)

    async def _write(self, kind: str, item: Any) -> None:
        if kind == "upsert":
            await self._store.upsert_call(item)
        elif kind == "recording":
            await self._store.add_recording(*item)
        else:
            await self._finish(item)

    async def _finish(self, call: LiveCall) -> None:
        store = self._store
        await store.upsert_call(call_row(call))
        for path in call.recordings:
            # no-op when known since it started
            await store.add_recording(call.id, path, _kind(call, path))
        await store.schedule_recordings(call.id)
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
                "recordings": list(call.recordings),
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
        await self._store.create_task(
            TaskKind.CALLBACK, title, due_at=datetime.now(UTC), assignee_id=manager_id,
            assignee_role=None if manager_id else Role.SECRETARY, client_id=call.client_id,
            phone=phone, ref=call.id, voicemail=bool(call.voicemails),
        )

"""The call log and its recordings in SQLite (tables of migration 0002)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.store.base import CallFilter, NotFound
from callcenter.store.sqlite_db import SqliteDb

# A user took part in a call: answered it, placed it, rang for it or got it transferred.
_INVOLVES = (
    # users is a JSON array of ids ("[3, 12]"): found as ",3," in ",3,12," - plain SQL that
    # both SQLite and PostgreSQL run (no json_each).
    "(c.answered_by_user = ? OR c.user_id = ? OR (',' || REPLACE(REPLACE(REPLACE(c.users,"
    " '[', ''), ']', ''), ' ', '') || ',') LIKE ('%,' || CAST(? AS TEXT) || ',%'))"
)


def now_utc() -> datetime:
    return datetime.now(UTC)


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


_CALL_COLUMNS = (
    "id", "line", "direction", "caller_raw", "caller_e164", "caller_name", "withheld", "called",
    "client_id", "contact_id", "candidates", "state", "reason", "cause", "answered_by_user",
    "answered_by_ext", "user_id", "rang", "ringing_at", "answered_at", "ended_at",
    "ring_seconds", "talk_seconds", "transfers", "users", "handled_by_pbx", "ivr_seconds",
    "answered_by_outside", "withheld_raw", "queue",
)
_CALL_JSON = {"candidates", "rang", "transfers", "users"}
_NOT_YET = "9999-12-31T00:00:00+00:00"  # a recording whose call is still going on
# A call re-adopted after a restart is the same call: the first ringing and answer times
# stored win over the later sightings.
_FIRST_WINS = {"ringing_at": "calls.ringing_at",
               "answered_at": "COALESCE(calls.answered_at, excluded.answered_at)",
               "queue": "COALESCE(excluded.queue, calls.queue)"}
# Once withheld, always withheld: a later sighting (a re-adoption after a restart that did
# not learn it again) never brings the number, name or client back.
_WITHHELD_STAYS = {
    "withheld": "CASE WHEN calls.withheld = 1 THEN 1 ELSE excluded.withheld END"} | {
    c: f"CASE WHEN calls.withheld = 1 THEN {blank} ELSE excluded.{c} END"
    for c, blank in (("caller_raw", "''"), ("caller_e164", "NULL"), ("caller_name", "''"),
                     ("client_id", "NULL"), ("contact_id", "NULL"), ("candidates", "'[]'"))} | {
    # the number a caller withheld, kept for admins: a later sighting without it keeps it
    "withheld_raw": "COALESCE(NULLIF(excluded.withheld_raw, ''), calls.withheld_raw)"}
_UPDATES = ", ".join(f"{c} = {(_FIRST_WINS | _WITHHELD_STAYS).get(c, f'excluded.{c}')}"
                     for c in _CALL_COLUMNS[1:])
# An ended call stays ended: a live sighting (no ended_at) is applied only to a live row or to
# one closed merely because its line's process stopped (dangling_closed: the resync re-adopts
# it). A flag rather than a version column: the writers of one call (the old owner's late
# queue or journal, the new owner's resync) share no counter, while "its end was logged" is
# the one fact every writer agrees on. Plain ON CONFLICT ... DO UPDATE ... WHERE: SQLite and
# PostgreSQL both run it.
_STAYS_ENDED = ("calls.ended_at IS NULL OR calls.dangling_closed = 1"
                " OR excluded.ended_at IS NOT NULL")
# Live in the log: not ended yet (an answered call that is over is "answered" too).
_OPEN = "state IN ('ringing', 'answered') AND ended_at IS NULL"
_CALL_DEFAULTS: dict[str, Any] = {"caller_raw": "", "caller_name": "", "withheld": 0,
                                  "called": "", "cause": "", "candidates": [], "rang": [],
                                  "transfers": [], "users": [], "handled_by_pbx": 0,
                                  "answered_by_outside": 0, "withheld_raw": ""}


class CallLogMixin:
    """The call log and its recordings (migration 0002)."""

    _db: SqliteDb

    async def upsert_call(self, row: dict[str, Any]) -> None:
        full = {**_CALL_DEFAULTS, **{k: v for k, v in row.items() if v is not None}}
        values = [json.dumps(full.get(c), ensure_ascii=False) if c in _CALL_JSON
                  else full.get(c) for c in _CALL_COLUMNS]
        await self._db.execute(
            f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES"
            f" ({', '.join('?' * len(_CALL_COLUMNS))}) ON CONFLICT (id) DO UPDATE SET {_UPDATES},"
            f" dangling_closed = 0 WHERE {_STAYS_ENDED}",
            values,
        )

    async def close_dangling_calls(self, cause: str, line: str | None = None
                                   ) -> list[dict[str, Any]]:
        """Calls a previous run left ringing or answered (it stopped during them). Each is
        closed now: answered ones stay answered (talk time unknown), the others become failed,
        so none shows live forever. Their recordings are fetched once the file stops growing
        (the end was not seen: MixMonitor may still be writing). A call the line re-adopts
        afterwards is live again with the same row (see upsert_call). Returns the calls
        closed, with their first times, who answered, rang, users, transfers and recordings,
        for that re-adoption. ``line``: only that line's (an instance of a cluster taking
        over a line closes what the instance before it left open there, and nothing else)."""
        where, args = (_OPEN, ()) if line is None else (f"{_OPEN} AND line = ?", (line,))
        keys = ("id", "ringing_at", "answered_at", "answered_by_user", "answered_by_ext",
                "answered_by_outside", "rang", "users", "transfers", "withheld", "recordings")
        closed = []
        # One transaction: the rows returned are exactly the rows closed.
        async with self._db.transaction():
            rows = await self._db.rows(
                "SELECT id, ringing_at, answered_at, answered_by_user, answered_by_ext,"
                " answered_by_outside, rang, users, transfers, withheld"
                f" FROM calls WHERE {where}", args)
            recordings: dict[str, list[str]] = {}
            for call_id, pbx_path in await self._db.rows(
                    "SELECT call_id, pbx_path FROM recordings WHERE call_id IN"
                    f" (SELECT id FROM calls WHERE {where}) ORDER BY id", args):
                recordings.setdefault(call_id, []).append(pbx_path)
            for r in rows:
                row = dict(zip(keys, (*r, None), strict=True))
                row["answered_by_outside"] = bool(row["answered_by_outside"])
                for key in ("rang", "users", "transfers"):
                    row[key] = json.loads(row[key] or "[]")
                row["recordings"] = recordings.get(row["id"], [])
                closed.append(row)
            if not closed:
                return []
            now = ts(now_utc())
            await self._db.execute(
                "UPDATE recordings SET until_stable = 1, seen_size = NULL, next_try_at = ?"
                f" WHERE next_try_at = ? AND call_id IN (SELECT id FROM calls WHERE {where})",
                (now, _NOT_YET, *args))
            await self._db.execute(
                "UPDATE calls SET state = CASE WHEN answered_at IS NULL THEN 'failed'"
                f" ELSE 'answered' END, cause = ?, ended_at = ?, dangling_closed = 1"
                f" WHERE {where}",
                (cause, now, *args))
        return closed

    async def list_calls(self, f: CallFilter) -> list[dict[str, Any]]:
        where, params = ["1 = 1"], []
        if f.since:
            where.append("c.ringing_at >= ?")
            params.append(ts(f.since))
        if f.until:
            where.append("c.ringing_at < ?")
            params.append(ts(f.until))
        if f.number:
            digits = "".join(ch for ch in f.number if ch.isdigit())
            tail = digits[-10:]
            where.append("(c.caller_e164 = ? OR c.caller_raw LIKE ? OR c.called LIKE ?)")
            params += [f.number, f"%{tail}", f"%{tail}"]
        if f.client_id is not None:
            where.append("c.client_id = ?")
            params.append(f.client_id)
        if f.user_id is not None:
            where.append(_INVOLVES)
            params += [f.user_id, f.user_id, f.user_id]
        if f.state:
            where.append("c.state = ?")
            params.append(f.state)
        if f.visible_to is not None:
            where.append(f"({_INVOLVES} OR c.client_id IN"
                         " (SELECT id FROM clients WHERE manager_id = ?))")
            params += [f.visible_to, f.visible_to, f.visible_to, f.visible_to]
        return await self._list_calls_where(" AND ".join(where), params, f.limit, f.offset)

    async def get_call(self, call_id: str) -> dict[str, Any]:
        rows = await self._list_calls_where("c.id = ?", [call_id], 1, 0)
        if not rows:
            raise NotFound("call", call_id)
        return rows[0]

    async def _list_calls_where(self, where: str, params: list[Any], limit: int, offset: int
                               ) -> list[dict[str, Any]]:
        rows = await self._db.rows(
            f"SELECT {', '.join('c.' + c for c in _CALL_COLUMNS)}, u.name, cl.name FROM calls c"
            " LEFT JOIN users u ON u.id = c.answered_by_user"
            f" LEFT JOIN clients cl ON cl.id = c.client_id WHERE {where}"
            " ORDER BY c.ringing_at DESC LIMIT ? OFFSET ?", (*params, limit, offset))
        out = []
        for r in rows:
            row = dict(zip(_CALL_COLUMNS, r, strict=False))
            for c in _CALL_JSON:
                row[c] = json.loads(row[c]) if row[c] else []
            row["answered_by_name"] = r[len(_CALL_COLUMNS)]
            row["client_name"] = r[len(_CALL_COLUMNS) + 1]
            out.append(row)
        if out:
            marks = ",".join("?" * len(out))
            recs: dict[str, list[dict[str, Any]]] = {}
            for rid, call_id, pbx_path, state, size, kind in await self._db.rows(
                "SELECT id, call_id, pbx_path, state, size, kind FROM recordings"
                f" WHERE call_id IN ({marks}) ORDER BY id", [r["id"] for r in out]):
                recs.setdefault(call_id, []).append(
                    {"id": rid, "pbx_path": pbx_path, "state": state, "size": size,
                     "kind": kind})
            for row in out:
                row["recordings"] = recs.get(row["id"], [])
        return out

    async def add_recording(self, call_id: str, pbx_path: str, kind: str = "call") -> None:
        """Known as soon as the recording starts (so a restart cannot lose it); fetched only
        once schedule_recordings() says the call is over - the file is still being written.
        ``kind``: "call" (the conversation) or "voicemail" (a message the caller left)."""
        await self._db.execute(
            "INSERT INTO recordings (call_id, pbx_path, next_try_at, kind) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (call_id, pbx_path) DO NOTHING", (call_id, pbx_path, _NOT_YET, kind))

    async def schedule_recordings(self, call_id: str, delay: float = 2.0) -> None:
        """The call has ended: its recordings become due. MixMonitor closes the file at
        hang-up, so the first try waits a moment. A recording waiting for its file to stop
        growing (a call re-adopted after a restart) now waits for this end instead, with its
        attempts counted afresh: those spent on a file still being written (even given up
        on) say nothing about the finished one."""
        await self._db.execute(
            "UPDATE recordings SET next_try_at = ?, until_stable = 0, seen_size = NULL,"
            " state = 'pending', attempts = 0 WHERE call_id = ?"
            " AND ((state = 'pending' AND next_try_at = ?) OR (state IN ('pending', 'failed')"
            " AND until_stable = 1))",
            (ts(now_utc() + timedelta(seconds=delay)), call_id, _NOT_YET))

    async def due_recordings(self, limit: int = 20) -> list[dict[str, Any]]:
        """Pending recordings whose try is due, of calls that have ended (a call re-adopted
        after a restart is live again: its file is still being written)."""
        rows = await self._db.rows(
            "SELECT r.id, r.call_id, r.pbx_path, r.attempts, r.until_stable, r.seen_size"
            " FROM recordings r JOIN calls c ON c.id = r.call_id WHERE r.state = 'pending'"
            " AND (r.next_try_at IS NULL OR r.next_try_at <= ?) AND c.ended_at IS NOT NULL"
            " ORDER BY r.id LIMIT ?", (ts(now_utc()), limit))
        return [{"id": r[0], "call_id": r[1], "pbx_path": r[2], "attempts": r[3],
                 "until_stable": bool(r[4]), "seen_size": r[5]} for r in rows]

    async def update_recording(self, recording_id: int, **changes: Any) -> None:
        allowed = {"local_path", "state", "attempts", "last_error", "next_try_at", "size",
                   "until_stable", "seen_size"}
        if set(changes) - allowed:
            raise ValueError(f"cannot change {set(changes) - allowed} of a recording")
        values = [ts(v) if isinstance(v, datetime) else v for v in changes.values()]
        await self._db.execute(
            f"UPDATE recordings SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
            (*values, recording_id))

    async def get_recording(self, recording_id: int) -> dict[str, Any]:
        rows = await self._db.rows(
            "SELECT r.id, r.call_id, r.pbx_path, r.local_path, r.state, r.size, r.last_error,"
            " r.attempts, c.client_id, c.answered_by_user, c.user_id, c.users"
            " FROM recordings r JOIN calls c ON c.id = r.call_id WHERE r.id = ?",
            (recording_id,))
        if not rows:
            raise NotFound("recording", recording_id)
        r = next(iter(rows))
        keys = ("id", "call_id", "pbx_path", "local_path", "state", "size", "last_error",
                "attempts", "client_id", "answered_by_user", "user_id", "users")
        row = dict(zip(keys, r, strict=True))
        row["users"] = json.loads(row["users"] or "[]")
        return row

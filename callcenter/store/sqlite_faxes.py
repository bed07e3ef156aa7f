"""Fax jobs and received faxes in SQLite (tables of migration 0009_faxes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callcenter.store.base import NotFound
from callcenter.store.sqlite_calls import now_utc, ts
from callcenter.store.sqlite_db import SqliteDb

_JOB_COLUMNS = (
    "line", "number", "client_id", "user_id", "state", "document", "thumbnail", "file_name",
    "pages", "pages_confirmed", "page", "attempts", "next_try_at", "backend_ref",
    "remote_station", "result", "t30_code", "detail", "cancel_requested", "interrupted",
    "finished_at", "resolution", "paper",
)
_JOB_KEYS = ("id", *_JOB_COLUMNS, "created_at", "updated_at", "client_name", "manager_id")
_JOB_SELECT = (
    "SELECT " + ", ".join(f"j.{c}" for c in _JOB_KEYS[:-2])
    + ", c.name, c.manager_id FROM fax_jobs j LEFT JOIN clients c ON c.id = j.client_id"
)
_RECEIVED_COLUMNS = (
    "line", "source_key", "received_at", "caller_raw", "caller_e164", "remote_station",
    "pages", "ok", "detail", "pdf", "client_id", "contact_id", "matched_by",
)
_RECEIVED_KEYS = ("id", *_RECEIVED_COLUMNS, "client_name", "manager_id")
_RECEIVED_SELECT = (
    "SELECT " + ", ".join(f"f.{c}" for c in _RECEIVED_KEYS[:-2])
    + ", c.name, c.manager_id FROM fax_received f LEFT JOIN clients c ON c.id = f.client_id"
)


def _job(row: Any) -> dict[str, Any]:
    return dict(zip(_JOB_KEYS, row, strict=True))


def _received(row: Any) -> dict[str, Any]:
    return dict(zip(_RECEIVED_KEYS, row, strict=True))


@dataclass(slots=True)
class FaxFilter:
    client_id: int | None = None
    state: str | None = None  # a job state; for received faxes "ok" or "failed"
    # A manager's view: only faxes of the manager's clients (and, for jobs, their own).
    manager_id: int | None = None
    search: str = ""  # digits of the number or part of the station ID
    limit: int = 100
    before_id: int | None = None


def _where(f: FaxFilter, table: str, own_column: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.client_id is not None:
        clauses.append(f"{table}.client_id = ?")
        params.append(f.client_id)
    if f.manager_id is not None:
        own = f" OR {table}.{own_column} = ?" if own_column else ""
        clauses.append(f"(c.manager_id = ?{own})")
        params += [f.manager_id] + ([f.manager_id] if own_column else [])
    if f.before_id is not None:
        clauses.append(f"{table}.id < ?")
        params.append(f.before_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class FaxStoreMixin:
    """Fax jobs and received faxes (migration 0009_faxes)."""

    _db: SqliteDb

    # -- jobs ------------------------------------------------------------------------------

    async def create_fax_job(self, row: dict[str, Any]) -> dict[str, Any]:
        now = ts(now_utc())
        full = {"state": "queued", "pages_confirmed": 0, "page": 0, "attempts": 0,
                "remote_station": "", "result": "", "detail": "", "cancel_requested": 0,
                "interrupted": 0, "thumbnail": "", "file_name": "", **row}
        columns = [c for c in _JOB_COLUMNS if c in full]
        cursor = await self._db.execute(
            f"INSERT INTO fax_jobs ({', '.join(columns)}, created_at, updated_at) VALUES"
            f" ({', '.join('?' * len(columns))}, ?, ?)",
            [full[c] for c in columns] + [now, now],
        )
        return await self.get_fax_job(int(cursor.lastrowid or 0))

    async def get_fax_job(self, job_id: int) -> dict[str, Any]:
        row = await self._db.one(f"{_JOB_SELECT} WHERE j.id = ?", (job_id,), "fax job", job_id)
        return _job(row)

    async def update_fax_job(self, job_id: int, *, only_states: tuple[str, ...] = (),
                             **changes: Any) -> dict[str, Any] | None:
        """Apply ``changes``; with ``only_states`` only while the job is in one of them (None
        when it was not: another path moved it first)."""
        # claimed_by: written by a claim, never shown (which instance is sending the job)
        unknown = set(changes) - set(_JOB_COLUMNS) - {"claimed_by"}
        if unknown:
            raise ValueError(f"unknown fax job columns {sorted(unknown)}")
        sets = ", ".join(f"{c} = ?" for c in changes)
        guard = (f" AND state IN ({', '.join('?' * len(only_states))})" if only_states else "")
        cursor = await self._db.execute(
            f"UPDATE fax_jobs SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?{guard}",
            [*changes.values(), ts(now_utc()), job_id, *only_states],
        )
        if not cursor.rowcount:
            await self.get_fax_job(job_id)  # NotFound when there is no such job
            return None
        return await self.get_fax_job(job_id)

    async def fax_job_by_ref(self, line: str, ref: str) -> dict[str, Any] | None:
        rows = await self._db.rows(f"{_JOB_SELECT} WHERE j.line = ? AND j.backend_ref = ?",
                                   (line, ref))
        return _job(rows[0]) if rows else None

    async def fax_jobs_in(self, states: tuple[str, ...], line: str | None = None,
                          claimed_by: str | None = None) -> list[dict[str, Any]]:
        """``claimed_by``: only the jobs that instance claimed (or nobody named)."""
        params: list[Any] = list(states)
        sql = f"{_JOB_SELECT} WHERE j.state IN ({', '.join('?' * len(states))})"
        if claimed_by is not None:
            sql += " AND (j.claimed_by = ? OR j.claimed_by IS NULL)"
            params.append(claimed_by)
        if line is not None:
            sql += " AND j.line = ?"
            params.append(line)
        return [_job(r) for r in await self._db.rows(sql + " ORDER BY j.id", params)]

    async def due_fax_jobs(self, line: str, limit: int = 10) -> list[dict[str, Any]]:
        """Queued jobs, and retries whose time has come, oldest first."""
        rows = await self._db.rows(
            f"{_JOB_SELECT} WHERE j.line = ? AND (j.state = 'queued' OR (j.state ="
            " 'retry_scheduled' AND j.next_try_at <= ?)) ORDER BY j.id LIMIT ?",
            (line, ts(now_utc()), limit))
        return [_job(r) for r in rows]

    async def fax_job_documents(self) -> set[str]:
        """Every document path a job refers to (kept for its thumbnail and history)."""
        rows = await self._db.rows("SELECT DISTINCT document FROM fax_jobs", ())
        return {r[0] for r in rows}

    async def next_fax_retry_at(self, line: str) -> str | None:
        rows = await self._db.rows(
            "SELECT MIN(next_try_at) FROM fax_jobs WHERE line = ? AND state = 'retry_scheduled'",
            (line,))
        return rows[0][0] if rows else None

    async def list_fax_jobs(self, f: FaxFilter) -> list[dict[str, Any]]:
        where, params = _where(f, "j", "user_id")
        if f.state:
            where += (" AND " if where else " WHERE ") + "j.state = ?"
            params.append(f.state)
        if f.search:
            where += (" AND " if where else " WHERE ") + (
                "(j.number LIKE ? OR j.remote_station LIKE ?)")
            params += [f"%{f.search}%"] * 2
        rows = await self._db.rows(f"{_JOB_SELECT}{where} ORDER BY j.id DESC LIMIT ?",
                                   [*params, f.limit])
        return [_job(r) for r in rows]

    # -- received --------------------------------------------------------------------------

    async def add_received_fax(self, row: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store a received fax; (the row, True) when new, (the stored row, False) when this
        line already stored a fax of that ``source_key``."""
        columns = [c for c in _RECEIVED_COLUMNS if c in row]
        cursor = await self._db.execute(
            f"INSERT INTO fax_received ({', '.join(columns)}) VALUES"
            f" ({', '.join('?' * len(columns))}) ON CONFLICT (line, source_key) DO NOTHING",
            [row[c] for c in columns],
        )
        created = bool(cursor.rowcount)
        rows = await self._db.rows(f"{_RECEIVED_SELECT} WHERE f.line = ? AND f.source_key = ?",
                                   (row["line"], row["source_key"]))
        return _received(rows[0]), created

    async def get_received_fax(self, fax_id: int) -> dict[str, Any]:
        row = await self._db.one(f"{_RECEIVED_SELECT} WHERE f.id = ?", (fax_id,),
                                 "received fax", fax_id)
        return _received(row)

    async def list_received_faxes(self, f: FaxFilter) -> list[dict[str, Any]]:
        where, params = _where(f, "f", None)
        if f.state in ("ok", "failed"):
            where += (" AND " if where else " WHERE ") + "f.ok = ?"
            params.append(1 if f.state == "ok" else 0)
        if f.search:
            where += (" AND " if where else " WHERE ") + (
                "(f.caller_raw LIKE ? OR f.remote_station LIKE ? OR c.name LIKE ?)")
            params += [f"%{f.search}%"] * 3
        rows = await self._db.rows(f"{_RECEIVED_SELECT}{where} ORDER BY f.id DESC LIMIT ?",
                                   [*params, f.limit])
        return [_received(r) for r in rows]


__all__ = ["FaxFilter", "FaxStoreMixin", "NotFound"]

"""The audit log in SQLite (table of migration 0006)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from callcenter.audit.model import AuditEntry, AuditFilter
from callcenter.store.sqlite_calls import ts
from callcenter.store.sqlite_db import SqliteDb

_COLUMNS = ("id, at, actor_id, actor_label, address, action, target_kind, target_id, before,"
            " after")


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], r[6], r[7],
                      None if r[8] is None else json.loads(r[8]),
                      None if r[9] is None else json.loads(r[9]))


class AuditMixin:
    """The audit log (migration 0006)."""

    _db: SqliteDb

    async def add_audit(self, at: datetime, actor_id: int | None, actor_label: str,
                        address: str, action: str, target_kind: str, target_id: str | None,
                        before: dict[str, Any] | None, after: dict[str, Any] | None
                        ) -> AuditEntry:
        cursor = await self._db.execute(
            "INSERT INTO audit_log (at, actor_id, actor_label, address, action, target_kind,"
            " target_id, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ts(at), actor_id, actor_label, address, action, target_kind, target_id,
             _json(before), _json(after)))
        return AuditEntry(int(cursor.lastrowid or 0), at, actor_id, actor_label, address,
                          action, target_kind, target_id,
                          None if before is None else json.loads(_json(before) or "null"),
                          None if after is None else json.loads(_json(after) or "null"))

    async def list_audit(self, f: AuditFilter) -> list[AuditEntry]:
        """Newest first."""
        where, params = ["1 = 1"], []
        for column, value in (("actor_id", f.actor_id), ("actor_label", f.actor_label),
                              ("target_kind", f.target_kind), ("target_id", f.target_id),
                              ("action", f.action)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if f.since is not None:
            where.append("at >= ?")
            params.append(ts(f.since))
        if f.until is not None:
            where.append("at < ?")
            params.append(ts(f.until))
        rows = await self._db.rows(
            f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)}"
            " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?", (*params, f.limit, f.offset))
        return [_entry(r) for r in rows]

"""Lines in SQLite (tables of migration 0011_lines): settings as JSON, secrets in a table apart.

Nothing here returns a secret except :meth:`LinesMixin.line_secrets`, which only the line
manager calls (to build a line); every listing reads the ``lines`` table alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from callcenter.lines.records import LineRecord
from callcenter.store.base import NotFound
from callcenter.store.sqlite_calls import now_utc, ts
from callcenter.store.sqlite_db import SqliteDb

_COLUMNS = "id, name, kind, enabled, settings"

# aiosqlite logs every statement *with its parameters* at DEBUG: a line's secret (and a user's
# password hash) would reach the log of anyone debugging. Its records stop at INFO.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def _record(row: Any, secrets: dict[str, str] | None = None) -> LineRecord:
    return LineRecord(name=row[1], kind=row[2], enabled=bool(row[3]),
                      settings=json.loads(row[4] or "{}"), secrets=dict(secrets or {}))


class LinesMixin:
    """Stored lines (migration 0011_lines)."""

    _db: SqliteDb

    async def list_lines(self, *, with_secrets: bool = False) -> list[LineRecord]:
        rows = await self._db.rows(f"SELECT {_COLUMNS} FROM lines ORDER BY id")
        if not with_secrets:
            return [_record(r) for r in rows]
        return [_record(r, await self.line_secrets(r[1])) for r in rows]

    async def get_line(self, name: str, *, with_secrets: bool = False) -> LineRecord:
        row = await self._db.one(f"SELECT {_COLUMNS} FROM lines WHERE name = ?", (name,),
                                 "line", name)
        return _record(row, await self.line_secrets(name) if with_secrets else None)

    async def line_secrets(self, name: str) -> dict[str, str]:
        rows = await self._db.rows(
            "SELECT s.key, s.value FROM line_secrets s JOIN lines l ON l.id = s.line_id"
            " WHERE l.name = ?", (name,))
        return {r[0]: r[1] for r in rows}

    async def save_line(self, record: LineRecord, *, previous_name: str | None = None) -> None:
        """Insert ``record``, or replace the stored line ``previous_name`` (a rename when the
        names differ). Its secrets are replaced by ``record.secrets`` in the same
        transaction."""

        async def work() -> None:
            now = ts(now_utc())
            settings = json.dumps(record.settings, ensure_ascii=False, sort_keys=True)
            if previous_name is None:
                await self._db.execute(
                    "INSERT INTO lines (name, kind, enabled, settings, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (record.name, record.kind, int(record.enabled), settings, now, now))
            else:
                cursor = await self._db.execute(
                    "UPDATE lines SET name = ?, kind = ?, enabled = ?, settings = ?,"
                    " updated_at = ? WHERE name = ?",
                    (record.name, record.kind, int(record.enabled), settings, now,
                     previous_name))
                if cursor.rowcount == 0:
                    raise NotFound("line", previous_name)
            row = await self._db.one("SELECT id FROM lines WHERE name = ?", (record.name,),
                                     "line", record.name)
            await self._db.execute("DELETE FROM line_secrets WHERE line_id = ?", (row[0],))
            for key, value in sorted(record.secrets.items()):
                await self._db.execute(
                    "INSERT INTO line_secrets (line_id, key, value) VALUES (?, ?, ?)",
                    (row[0], key, value))

        await self._db.in_transaction(work)

    async def delete_line(self, name: str) -> None:
        cursor = await self._db.execute("DELETE FROM lines WHERE name = ?", (name,))
        if cursor.rowcount == 0:
            raise NotFound("line", name)

    async def lines_seeded(self) -> bool:
        return bool(await self._db.rows("SELECT 1 FROM lines_seeded"))

    async def seed_lines(self, records: list[LineRecord], source: str) -> bool:
        """Store ``records`` unless lines were seeded before (then nothing changes): the
        configuration file seeds the table once, the database wins afterwards. Lines stored
        before the first start (``callcenter line add`` in a scripted install) win too: the
        table is marked seeded and the file is not read into it."""

        async def work() -> bool:
            if await self._db.rows("SELECT 1 FROM lines_seeded"):
                return False
            filled = bool(await self._db.rows("SELECT 1 FROM lines LIMIT 1"))
            for record in [] if filled else records:
                await self.save_line(record)
            await self._db.execute("INSERT INTO lines_seeded (id, at, source) VALUES (1, ?, ?)",
                                   (ts(now_utc()), "lines stored before" if filled
                                    else source))
            return not filled

        return bool(await self._db.in_transaction(work))

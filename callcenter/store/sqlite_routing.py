"""Settings and secretary groups in SQLite (tables of migration 0007)."""

from __future__ import annotations

import json
from typing import Any

from callcenter.routing.table import Group
from callcenter.store.base import NotFound
from callcenter.store.sqlite_db import SqliteDb


class RoutingMixin:
    _db: SqliteDb

    async def get_settings(self) -> dict[str, Any]:
        return {r[0]: json.loads(r[1])
                for r in await self._db.rows("SELECT key, value FROM settings")}

    async def set_setting(self, key: str, value: Any) -> None:
        """``value`` None removes the setting (the TOML file's value applies again)."""
        if value is None:
            await self._db.execute("DELETE FROM settings WHERE key = ?", (key,))
            return
        await self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
            " value = excluded.value", (key, json.dumps(value, ensure_ascii=False)))

    async def list_groups(self) -> list[Group]:
        groups = {r[0]: Group(r[0], r[1]) for r in await self._db.rows(
            "SELECT id, name FROM secretary_groups ORDER BY name COLLATE NOCASE, id")}
        for gid, uid in await self._db.rows(
                "SELECT group_id, user_id FROM group_members ORDER BY user_id"):
            groups[gid].members.append(uid)
        for gid, kind, value in await self._db.rows(
                "SELECT group_id, kind, value FROM group_routes ORDER BY value"):
            getattr(groups[gid], {"did": "dids", "queue": "queues", "line": "lines"}[kind]
                    ).append(value)
        return list(groups.values())

    async def save_group(self, group_id: int | None, name: str, members: list[int],
                         dids: list[str], queues: list[str], lines: list[str]) -> int:
        """Create (``group_id`` None) or replace a group whole, in one transaction."""

        async def work() -> int:
            gid = group_id
            if gid is None:
                cursor = await self._db.execute(
                    "INSERT INTO secretary_groups (name) VALUES (?)", (name,))
                gid = int(cursor.lastrowid or 0)
            else:
                cursor = await self._db.execute(
                    "UPDATE secretary_groups SET name = ? WHERE id = ?", (name, gid))
                if not cursor.rowcount:
                    raise NotFound("group", gid)
                await self._db.execute("DELETE FROM group_members WHERE group_id = ?", (gid,))
                await self._db.execute("DELETE FROM group_routes WHERE group_id = ?", (gid,))
            for uid in dict.fromkeys(members):
                await self._db.execute(
                    "INSERT INTO group_members (group_id, user_id) VALUES (?, ?)", (gid, uid))
            for kind, values in (("did", dids), ("queue", queues), ("line", lines)):
                for value in dict.fromkeys(values):
                    await self._db.execute(
                        "INSERT INTO group_routes (group_id, kind, value) VALUES (?, ?, ?)",
                        (gid, kind, value))
            return gid

        return await self._db.in_transaction(work)

    async def delete_group(self, group_id: int) -> None:
        cursor = await self._db.execute("DELETE FROM secretary_groups WHERE id = ?", (group_id,))
        if not cursor.rowcount:
            raise NotFound("group", group_id)

"""User administration in SQLite: changes that must keep an enabled admin, and the hand-over
of a user's open tasks and clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.store.sqlite_db import SqliteDb
from callcenter.users.model import Handover, LastAdmin


class UserAdminMixin:
    _db: SqliteDb

    async def enabled_admins(self) -> int:
        rows = await self._db.rows("SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1")
        return int(rows[0][0])

    async def update_user_keeping_admin(self, user_id: int, **changes: Any) -> None:
        """``update_user`` in one transaction with the check that an enabled admin is left:
        two admins demoting each other at once cannot both succeed."""

        async def work() -> None:
            await self.update_user(user_id, **changes)  # type: ignore[attr-defined]
            if await self.enabled_admins() == 0:
                raise LastAdmin("this is the last enabled admin: make another user an admin "
                                "first")

        await self._db.in_transaction(work)

    async def hand_over(self, from_user: int, to_user: int,
                        audit: Callable[[Handover], Awaitable[Any]] | None = None) -> Handover:
        """Give ``from_user``'s open tasks and the clients they manage to ``to_user``, all in
        one transaction with its audit entry (written by ``audit`` inside it)."""

        async def work() -> Handover:
            for uid in (from_user, to_user):
                await self._db.one("SELECT id FROM users WHERE id = ?", (uid,), "user", uid)
            tasks = [int(r[0]) for r in await self._db.rows(
                "SELECT id FROM tasks WHERE assignee_id = ? AND done = 0 ORDER BY id",
                (from_user,))]
            clients = [int(r[0]) for r in await self._db.rows(
                "SELECT id FROM clients WHERE manager_id = ? ORDER BY id", (from_user,))]
            await self._db.execute(
                "UPDATE tasks SET assignee_id = ? WHERE assignee_id = ? AND done = 0",
                (to_user, from_user))
            await self._db.execute("UPDATE clients SET manager_id = ? WHERE manager_id = ?",
                                   (to_user, from_user))
            done = Handover(from_user, to_user, tasks, clients)
            if audit is not None:
                await audit(done)
            return done

        return await self._db.in_transaction(work)

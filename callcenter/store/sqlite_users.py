"""User administration in SQLite: changes that must keep an enabled admin, and the hand-over
of a user's open tasks and clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from callcenter.store.sqlite_db import SqliteDb
from callcenter.users.model import Access, Handover, LastAdmin


class UserAdminMixin:
    _db: SqliteDb

    async def enabled_admins(self) -> int:
        rows = await self._db.rows("SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1")
        return int(rows[0][0])

    async def user_access(self, user_ids: Collection[int]) -> dict[int, Access]:
        """What decides whether a user's open consoles may stay, for many users in one
        query (the hub asks every few seconds; another process may have changed them)."""
        ids = sorted({int(i) for i in user_ids})
        if not ids:
            return {}
        rows = await self._db.rows(
            "SELECT id, active, session_epoch, role, must_change_password FROM users"
            f" WHERE id IN ({', '.join('?' * len(ids))})", ids)
        return {int(r[0]): Access(bool(r[1]), int(r[2]), str(r[3]), bool(r[4])) for r in rows}

    async def update_user_keeping_admin(self, user_id: int, **changes: Any) -> None:
        """``update_user`` in one transaction with the check that an enabled admin is left:
        refused only when the target is an enabled admin, the change demotes or disables it
        and no other enabled admin remains (a database without any admin can still be
        edited). Two admins demoting each other at once cannot both succeed."""

        async def work() -> None:
            row = await self._db.one("SELECT role, active FROM users WHERE id = ?", (user_id,),
                                     "user", user_id)
            was_admin = row[0] == "admin" and bool(row[1])
            await self.update_user(user_id, **changes)  # type: ignore[attr-defined]
            if not was_admin:
                return
            row = await self._db.one("SELECT role, active FROM users WHERE id = ?", (user_id,),
                                     "user", user_id)
            if (row[0] != "admin" or not row[1]) and await self.enabled_admins() == 0:
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
            # the caller_numbers copy (migration 0019), same transaction
            await self._hand_over_callers(from_user, to_user)  # type: ignore[attr-defined]
            done = Handover(from_user, to_user, tuple(tasks), tuple(clients))
            if audit is not None:
                await audit(done)
            return done

        return await self._db.in_transaction(work)

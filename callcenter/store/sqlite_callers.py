"""The caller_numbers table: one row per phone with what a screen-pop shows (migration 0019).

Every write that changes a phone, a contact's name, or a client's name or manager rewrites the
client's rows inside the same transaction, from the same join the lookup used to run, so the
table cannot say anything the join would not (property test in tests/test_caller_numbers.py).
Deletes follow phones through the foreign key (contact and client deletes cascade to phones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Every caller_numbers row, from the tables it copies (also how migrate-store fills its target:
# the table is derived, and a WITHOUT ROWID table cannot be paged through by rowid).
FILL = ("INSERT INTO caller_numbers (rev, contact_id, raw, phone_id, e164, client_id,"
        " client_name, contact_name, manager_id)"
        " SELECT p.rev, p.contact_id, p.raw, p.id, p.e164, cl.id, cl.name, c.name,"
        " cl.manager_id FROM phones p JOIN contacts c ON c.id = p.contact_id"
        " JOIN clients cl ON cl.id = c.client_id")


class CallerNumbersMixin:
    _db: Any
    caller_index: Any
    _callers_table = True  # False only for a store opened at an older schema version
    _changes_trimmed = 0

    async def trim_caller_changes(self) -> None:
        """Drop the change log (migration 0020) this process's caller index snapshot needs no
        more: with each write of numbers, and every minute on the server (for numbers that
        only other processes write, such as `callcenter import`)."""
        keeper = getattr(self.caller_index, "snapshot", None)
        point = keeper.trim_point if keeper is not None else 0
        if point > self._changes_trimmed:
            await self._db.execute("DELETE FROM caller_changes WHERE seq <= ?", (point,))
            self._changes_trimmed = point

    async def _refresh_callers(self, client_id: int) -> None:
        if not self._callers_table:
            return
        await self.trim_caller_changes()
        await self._db.execute("DELETE FROM caller_numbers WHERE client_id = ?", (client_id,))
        await self._db.execute(FILL + " WHERE cl.id = ?", (client_id,))

    async def _fill_callers(self, client_ids: Sequence[int]) -> None:
        """The rows of clients inserted in this transaction (they have none yet): one
        INSERT .. SELECT per 500 clients instead of a DELETE and an INSERT per client (an
        import batch of 1,000 clients took half as long again with the per-client refresh)."""
        if not self._callers_table:
            return
        await self.trim_caller_changes()
        for start in range(0, len(client_ids), 500):
            chunk = tuple(client_ids[start:start + 500])
            await self._db.execute(FILL + f" WHERE cl.id IN ({', '.join('?' * len(chunk))})",
                                   chunk)

    async def _hand_over_callers(self, from_user: int, to_user: int) -> None:
        if self._callers_table:
            await self.trim_caller_changes()
            await self._db.execute("UPDATE caller_numbers SET manager_id = ? WHERE manager_id = ?",
                                   (to_user, from_user))

    async def _refresh_callers_of_contact(self, contact_id: int) -> None:
        rows = await self._db.rows("SELECT client_id FROM contacts WHERE id = ?", (contact_id,))
        for (client_id,) in rows:
            await self._refresh_callers(int(client_id))

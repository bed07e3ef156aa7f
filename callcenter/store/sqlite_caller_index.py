"""The SQLite store's caller-ID index: the screen-pop's reads, on the event-loop thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from callcenter.models import Role, User
from callcenter.phones import Number, NumberKind
from callcenter.store.base import PhoneMatch, phone_matches
from callcenter.store.caller_snapshot_keeper import SnapshotKeeper

_CHANGE_TRIGGERS = ("caller_numbers_added", "caller_numbers_removed", "caller_numbers_changed")


class SqliteCallerIndex:
    """Caller-ID lookups on a private read connection used from the event-loop thread.

    An indexed point read costs ~12 µs; handing it to aiosqlite's thread costs ~0.6 ms, so the
    screen-pop path reads directly (see shared/LIBRARIES.md). Once :meth:`start_snapshot` is
    called (the server does), the range read is answered from an in-process snapshot wherever
    no number changed since it was taken (caller_snapshot.py).
    """

    def __init__(self, path: Path, writes: Callable[[], int] = lambda: 0) -> None:
        self._db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA busy_timeout=2000")
        self._db.execute("PRAGMA query_only=1")
        # Memory-mapped reads skip a copy per page: ~30% off a random lookup in 1M numbers.
        self._db.execute("PRAGMA mmap_size=1073741824")
        tables = {name for (name,) in self._db.execute(
            "SELECT name FROM sqlite_master WHERE name IN (?, ?, ?, ?, ?)",
            ("caller_numbers", "caller_changes", *_CHANGE_TRIGGERS))}
        self._callers = "caller_numbers" in tables  # migration 0019; an older schema joins
        # migration 0020: the change log the snapshot follows, and the triggers that feed it
        # (a later migration that rebuilds caller_numbers drops them with the table: without
        # them the snapshot would never hear of a change, so SQLite answers instead)
        self.snapshot = (SnapshotKeeper(path, self._db, writes)
                         if tables >= {"caller_changes", *_CHANGE_TRIGGERS} else None)

    def start_snapshot(self) -> None:
        if self.snapshot is not None:
            self.snapshot.start()

    _SELECT = (
        "SELECT cl.id, cl.name, c.id, c.name, cl.manager_id, p.raw FROM phones p "
        "JOIN contacts c ON c.id = p.contact_id JOIN clients cl ON cl.id = c.client_id "
    )

    def match(self, number: Number, tail_digits: int) -> list[PhoneMatch]:
        if number.kind is not NumberKind.EXTERNAL:
            return []
        tail = number.tail(tail_digits)
        if not tail:
            return []
        if number.e164 and number.digits != number.e164[1:]:
            return self.by_e164(number.e164) or self.by_tail(tail)  # never made by normalize()
        return list(self.lookup(number.e164, tail))

    # One range read of caller_numbers answers both steps: a stored number with this E.164
    # form has digits == e164[1:] (normalize() makes them so), so its reversed digits begin
    # with the reversed tail and it lies in the tail's range. The table is in phones_rev's
    # order, so the rows, their order and the LIMIT are the join's.
    _RANGE = ("SELECT client_id, client_name, contact_id, contact_name, manager_id, raw, e164"
              " FROM caller_numbers WHERE rev >= ? AND rev < ? LIMIT 50")

    def lookup(self, e164: str | None, tail: str) -> tuple[PhoneMatch, ...]:
        """The stored numbers equal to ``e164`` if there are any, else those ending in
        ``tail`` (the last digits of the caller's): match()'s answer, in one read."""
        if not self._callers:  # a store opened at an older schema: the two-step join
            return tuple((self.by_e164(e164) if e164 else None) or self.by_tail(tail))
        prefix = tail[::-1]
        snapshot = self.snapshot.current() if self.snapshot is not None else None
        rows = snapshot.rows(prefix) if snapshot is not None else None
        if rows is None:
            rows = self._db.execute(self._RANGE, (prefix, prefix + ":")).fetchall()
        if len(rows) == 1:  # the screen-pop's usual case: one tuple, nothing to sort out
            r = rows[0]
            return (PhoneMatch(r[0], r[1], r[2], r[3], r[4], r[5],
                               "e164" if e164 is not None and r[6] == e164 else "tail"),)
        if e164 is not None:
            if len(rows) >= 50:  # the exact rows may lie past the limit: ask for them
                exact = self.by_e164(e164)
                if exact:
                    return tuple(exact)
            else:
                exact_rows = [r[:6] for r in rows if r[6] == e164]
                if exact_rows:
                    return tuple(phone_matches(exact_rows, "e164"))
        return tuple(phone_matches([r[:6] for r in rows], "tail"))

    # Whole statements as constants: the sqlite3 statement cache is keyed by the text, and
    # building it anew on every ring cost a concatenation per lookup.
    _BY_E164 = _SELECT + "WHERE p.e164 = ?"
    _BY_TAIL = _SELECT + "WHERE p.rev >= ? AND p.rev < ? LIMIT 50"

    def by_e164(self, e164: str) -> list[PhoneMatch]:
        rows = self._db.execute(self._BY_E164, (e164,)).fetchall()
        if len(rows) == 1:  # the screen-pop's usual case: one row, nothing to de-duplicate
            return [PhoneMatch(*rows[0], "e164")]
        return phone_matches(rows, "e164")

    def by_tail(self, tail: str) -> list[PhoneMatch]:
        prefix = tail[::-1]
        # ':' sorts right after '9': [prefix, prefix + ':') is "starts with prefix".
        rows = self._db.execute(self._BY_TAIL, (prefix, prefix + ":")).fetchall()
        return phone_matches(rows, "tail")

    def user_by_extension(self, extension: str) -> User | None:
        row = self._db.execute(
            f"SELECT {USER_COLUMNS} FROM users WHERE extension = ? AND active = 1", (extension,)
        ).fetchone()
        return user_from_row(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        row = self._db.execute(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return user_from_row(row) if row else None

    def client_context(self, client_id: int, limit: int = 5) -> dict[str, Any]:
        """The client block of a screen-pop: name, manager, last contacts, open tasks."""
        row = self._db.execute(
            "SELECT id, name, kind, manager_id FROM clients WHERE id = ?", (client_id,)
        ).fetchone()
        client = ({"id": row[0], "name": row[1], "kind": row[2], "manager_id": row[3]}
                  if row else None)
        interactions = [
            # data rides along so the console can tell a call in the user's language
            {"at": r[0], "kind": r[1], "summary": r[2], "data": json.loads(r[3])}
            for r in self._db.execute(
                "SELECT at, kind, summary, data FROM interactions WHERE client_id = ?"
                " ORDER BY at DESC, id DESC LIMIT ?", (client_id, limit))
        ]
        tasks = [
            {"id": r[0], "title": r[1], "due_at": r[2]}
            for r in self._db.execute(
                "SELECT id, title, due_at FROM tasks WHERE client_id = ? AND done = 0"
                " ORDER BY COALESCE(due_at, created_at) LIMIT ?", (client_id, limit))
        ]
        return {"client": client, "last_interactions": interactions, "open_tasks": tasks}

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
        self._db.close()


USER_COLUMNS = "id, login, name, role, extension, language, active, must_change_password"


def user_from_row(row: Sequence[Any]) -> User:
    """A User from the columns USER_COLUMNS names, in that order."""
    return User(row[0], row[1], row[2], Role(row[3]), row[4], row[5], bool(row[6]),
                bool(row[7]))

"""The caller-ID index of the PostgreSQL store: everything a screen-pop reads, in memory.

A lookup must cost microseconds on the event loop (see :class:`callcenter.store.base.
CallerIndex`), never a network round trip, so the phones, contacts, clients, active users and
each client's last interactions and open tasks are held here. :meth:`PgCallerIndex.reload`
reads them again; the store calls it at open and after each write of its own that touched one
of :data:`TABLES`. This first version reloads everything (correct, not fast for a big base);
change notifications between instances and incremental updates come with the scale-out work.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from callcenter.models import Role, User
from callcenter.phones import Number, NumberKind
from callcenter.store.base import PhoneMatch

TABLES = frozenset({"users", "clients", "contacts", "phones", "interactions", "tasks"})
_CONTEXT_ROWS = 20  # per client: more than any screen-pop shows


@dataclass(slots=True)
class _Snapshot:
    by_e164: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    revs: list[str] = field(default_factory=list)  # sorted; rows[i] belongs to revs[i]
    rev_rows: list[tuple[Any, ...]] = field(default_factory=list)
    users: dict[int, User] = field(default_factory=dict)
    extensions: dict[str, User] = field(default_factory=dict)
    clients: dict[int, dict[str, Any]] = field(default_factory=dict)
    interactions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    tasks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class PgCallerIndex:
    """:class:`~callcenter.store.base.CallerIndex` over an in-memory snapshot."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._snap = _Snapshot()

    async def reload(self) -> None:
        snap = _Snapshot()
        async with self._pool.acquire() as conn:
            phones = await conn.fetch(
                "SELECT cl.id, cl.name, c.id, c.name, cl.manager_id, p.raw, p.e164, p.rev"
                " FROM phones p JOIN contacts c ON c.id = p.contact_id"
                " JOIN clients cl ON cl.id = c.client_id")
            users = await conn.fetch(
                "SELECT id, login, name, role, extension, language, active,"
                " must_change_password FROM users")
            clients = await conn.fetch("SELECT id, name, kind, manager_id FROM clients")
            interactions = await conn.fetch(
                "SELECT client_id, at, kind, summary, data FROM (SELECT client_id, at, kind,"
                " summary, data, id, row_number() OVER (PARTITION BY client_id"
                " ORDER BY at DESC, id DESC) AS n FROM interactions"
                " WHERE client_id IS NOT NULL) t WHERE n <= $1 ORDER BY client_id, at DESC,"
                " id DESC", _CONTEXT_ROWS)
            tasks = await conn.fetch(
                "SELECT client_id, id, title, due_at FROM (SELECT client_id, id, title, due_at,"
                " created_at, row_number() OVER (PARTITION BY client_id"
                " ORDER BY COALESCE(due_at, created_at), id) AS n FROM tasks"
                " WHERE client_id IS NOT NULL AND done = 0) t WHERE n <= $1"
                " ORDER BY client_id, COALESCE(due_at, created_at), id", _CONTEXT_ROWS)
        # Sorted here, not by the database's collation: by_tail bisects in Python's order.
        for r in sorted(phones, key=lambda r: (r[7], r[2], r[5])):
            row = (r[0], r[1], r[2], r[3], r[4], r[5])
            snap.revs.append(r[7])
            snap.rev_rows.append(row)
            if r[6]:
                snap.by_e164.setdefault(r[6], []).append((r[2], r[5], row))
        for rows in snap.by_e164.values():
            rows.sort(key=lambda t: (t[0], t[1]))  # as SQLite's (e164, contact_id, raw) index
        for r in users:
            user = User(r[0], r[1], r[2], Role(r[3]), r[4], r[5], bool(r[6]), bool(r[7]))
            snap.users[user.id] = user
            if user.extension and user.active:
                snap.extensions[user.extension] = user
        for r in clients:
            snap.clients[r[0]] = {"id": r[0], "name": r[1], "kind": r[2], "manager_id": r[3]}
        for r in interactions:
            snap.interactions.setdefault(r[0], []).append(
                {"at": r[1], "kind": r[2], "summary": r[3], "data": json.loads(r[4])})
        for r in tasks:
            snap.tasks.setdefault(r[0], []).append({"id": r[1], "title": r[2], "due_at": r[3]})
        self._snap = snap

    async def tables_changed(self, tables: frozenset[str]) -> None:
        if tables & TABLES:
            await self.reload()

    def match(self, number: Number, tail_digits: int) -> list[PhoneMatch]:
        if number.kind is not NumberKind.EXTERNAL:
            return []
        if number.e164:
            found = self.by_e164(number.e164)
            if found:
                return found
        tail = number.tail(tail_digits)
        return self.by_tail(tail) if tail else []

    def by_e164(self, e164: str) -> list[PhoneMatch]:
        return _matches([t[2] for t in self._snap.by_e164.get(e164, ())], "e164")

    def by_tail(self, tail: str) -> list[PhoneMatch]:
        snap = self._snap
        prefix = tail[::-1]
        start = bisect.bisect_left(snap.revs, prefix)
        end = bisect.bisect_left(snap.revs, prefix + ":")
        return _matches(snap.rev_rows[start:min(end, start + 50)], "tail")

    def user_by_extension(self, extension: str) -> User | None:
        return self._snap.extensions.get(extension)

    def user_by_id(self, user_id: int) -> User | None:
        return self._snap.users.get(user_id)

    def client_context(self, client_id: int, limit: int = 5) -> dict[str, Any]:
        snap = self._snap
        client = snap.clients.get(client_id)
        return {"client": dict(client) if client else None,
                "last_interactions": snap.interactions.get(client_id, [])[:limit],
                "open_tasks": snap.tasks.get(client_id, [])[:limit]}

    def close(self) -> None:
        self._snap = _Snapshot()


def _matches(rows: list[tuple[Any, ...]], how: str) -> list[PhoneMatch]:
    seen: set[int] = set()
    out = []
    for client_id, client_name, contact_id, contact_name, manager_id, raw in rows:
        if contact_id in seen:
            continue
        seen.add(contact_id)
        out.append(PhoneMatch(client_id, client_name, contact_id, contact_name, manager_id,
                              raw, how))
    return out

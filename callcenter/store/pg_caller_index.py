"""The caller-ID index of the PostgreSQL store: everything a screen-pop reads, in memory.

A lookup must cost microseconds on the event loop (see :class:`callcenter.store.base.
CallerIndex`), never a network round trip, so the phones, contacts, clients, active users and
each client's last interactions and open tasks are held here, loaded at open.

Kept current in three parts, each reloaded alone when one of its tables changed: the numbers
(clients, contacts, phones), the users, and the screen-pop context (interactions, tasks) -- a
call's card note reloads the context, not a million phones. After a write of its own the store
awaits the reload (what it wrote is found at once); the change is then announced with NOTIFY
on :data:`CHANNEL`, and every other instance listening (:meth:`listen`, in a cluster) reloads
the same parts in the background. Reloads are serialised and coalesced: changes that arrive
during one are loaded by the next. The rows are turned into the lookup structures on a worker
thread, so a big reload never holds the event loop (screen-pops go on meanwhile, reading the
previous snapshot, which is replaced part by part in one assignment each).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from callcenter.models import Role, User
from callcenter.phones import Number, NumberKind
from callcenter.store.base import PhoneMatch, phone_matches

log = logging.getLogger(__name__)

TABLES = frozenset({"users", "clients", "contacts", "phones", "interactions", "tasks"})
CHANNEL = "callcenter_index"
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # reconnecting the change listener
_CONTEXT_ROWS = 20  # per client: more than any screen-pop shows
NUMBERS, USERS, CONTEXT = "numbers", "users", "context"
PARTS = {"clients": NUMBERS, "contacts": NUMBERS, "phones": NUMBERS, "users": USERS,
         "interactions": CONTEXT, "tasks": CONTEXT}


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
        self._dirty: set[str] = set()
        self._lock = asyncio.Lock()
        self._token = secrets.token_hex(4)  # this index's NOTIFYs, ignored by its listener
        self._listener: asyncpg.Connection | None = None
        self._dsn: str | None = None  # set while following other instances' writes
        self._background: set[asyncio.Task[None]] = set()
        self.reloads: dict[str, int] = dict.fromkeys((NUMBERS, USERS, CONTEXT), 0)
        self.loaded = asyncio.Event()  # set after each reload (tests wait on it)

    async def reload(self) -> None:
        """Everything (at open)."""
        self._dirty |= {NUMBERS, USERS, CONTEXT}
        await self._reload_dirty()

    async def tables_changed(self, tables: frozenset[str]) -> None:
        """After a write of this store (awaited: the write's rows are found afterwards)."""
        parts = {PARTS[t] for t in tables if t in PARTS}
        if not parts:
            return
        self._dirty |= parts
        await self._reload_dirty()
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._pool.execute("SELECT pg_notify($1, $2)", CHANNEL,
                                     f"{self._token}:{','.join(sorted(parts))}")

    async def listen(self, dsn: str) -> None:
        """Follow the other instances' writes (a cluster): their NOTIFYs reload ours. A lost
        listener connection (the database restarted, a network blip) is reconnected, and
        everything is loaded again then: what changed meanwhile was announced to no one."""
        self._dsn = dsn
        await self._connect_listener()
        # What changed before the listener was there is loaded once more.
        await self.reload()

    async def _connect_listener(self) -> None:
        assert self._dsn is not None
        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn

    def _listener_lost(self, _conn: Any) -> None:
        if self._dsn is None:
            return  # closed on purpose
        self._listener = None
        log.warning("caller index: the change listener was lost; reconnecting")
        task = asyncio.get_running_loop().create_task(self._relisten())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _relisten(self) -> None:
        for attempt in itertools.count():
            if self._dsn is None:
                return
            try:
                await self._connect_listener()
                await self.reload()
                log.info("caller index: change listener back; reloaded")
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                log.warning("caller index: cannot listen (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        token, _, names = payload.partition(":")
        if token == self._token:
            return
        parts = {n for n in names.split(",") if n in (NUMBERS, USERS, CONTEXT)}
        if not parts:
            return
        self._dirty |= parts
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_quietly(self) -> None:
        try:
            await self._reload_dirty()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("caller index: reload after another instance's change failed (%s);"
                        " it is tried again with the next change", exc)

    async def _reload_dirty(self) -> None:
        async with self._lock:
            parts, self._dirty = set(self._dirty), set()
            if not parts:
                return  # loaded by the reload this one waited for
            try:
                await self._load(parts)
            except BaseException:
                self._dirty |= parts
                raise

    async def _load(self, parts: set[str]) -> None:
        async with self._pool.acquire() as conn:
            phones = clients = users = interactions = tasks = None
            if NUMBERS in parts:
                phones = await conn.fetch(
                    "SELECT cl.id, cl.name, c.id, c.name, cl.manager_id, p.raw, p.e164, p.rev"
                    " FROM phones p JOIN contacts c ON c.id = p.contact_id"
                    " JOIN clients cl ON cl.id = c.client_id")
                clients = await conn.fetch("SELECT id, name, kind, manager_id FROM clients")
            if USERS in parts:
                users = await conn.fetch(
                    "SELECT id, login, name, role, extension, language, active,"
                    " must_change_password FROM users")
            if CONTEXT in parts:
                interactions = await conn.fetch(
                    "SELECT client_id, at, kind, summary, data FROM (SELECT client_id, at,"
                    " kind, summary, data, id, row_number() OVER (PARTITION BY client_id"
                    " ORDER BY at DESC, id DESC) AS n FROM interactions"
                    " WHERE client_id IS NOT NULL) t WHERE n <= $1 ORDER BY client_id,"
                    " at DESC, id DESC", _CONTEXT_ROWS)
                tasks = await conn.fetch(
                    "SELECT client_id, id, title, due_at FROM (SELECT client_id, id, title,"
                    " due_at, created_at, row_number() OVER (PARTITION BY client_id"
                    " ORDER BY COALESCE(due_at, created_at), id) AS n FROM tasks"
                    " WHERE client_id IS NOT NULL AND done = 0) t WHERE n <= $1"
                    " ORDER BY client_id, COALESCE(due_at, created_at), id", _CONTEXT_ROWS)
        built = await asyncio.to_thread(_build, phones, clients, users, interactions, tasks)
        # A new snapshot object with the parts replaced: a lookup holds one snapshot.
        old = self._snap
        snap = _Snapshot(old.by_e164, old.revs, old.rev_rows, old.users, old.extensions,
                         old.clients, old.interactions, old.tasks)
        for name, value in built.items():
            setattr(snap, name, value)
        self._snap = snap
        for part in parts:
            self.reloads[part] += 1
        self.loaded.set()

    def match(self, number: Number, tail_digits: int) -> list[PhoneMatch]:
        if number.kind is not NumberKind.EXTERNAL:
            return []
        if number.e164:
            found = self.by_e164(number.e164)
            if found:
                return found
        tail = number.tail(tail_digits)
        return self.by_tail(tail) if tail else []

    def lookup(self, e164: str | None, tail: str) -> tuple[PhoneMatch, ...]:
        return tuple((self.by_e164(e164) if e164 else None) or self.by_tail(tail))

    def by_e164(self, e164: str) -> list[PhoneMatch]:
        return phone_matches([t[2] for t in self._snap.by_e164.get(e164, ())], "e164")

    def by_tail(self, tail: str) -> list[PhoneMatch]:
        snap = self._snap
        prefix = tail[::-1]
        start = bisect.bisect_left(snap.revs, prefix)
        end = bisect.bisect_left(snap.revs, prefix + ":")
        return phone_matches(snap.rev_rows[start:min(end, start + 50)], "tail")

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
        self._dsn = None
        self._snap = _Snapshot()
        for task in self._background:
            task.cancel()
        if self._listener is not None:
            self._listener.terminate()  # sync: close() is called from the store's close
            self._listener = None


def _build(phones: Any, clients: Any, users: Any, interactions: Any, tasks: Any
           ) -> dict[str, Any]:
    """The lookup structures of the parts loaded (on a worker thread)."""
    out: dict[str, Any] = {}
    if phones is not None:
        by_e164: dict[str, list[tuple[Any, ...]]] = {}
        revs: list[str] = []
        rev_rows: list[tuple[Any, ...]] = []
        # Sorted here, not by the database's collation: by_tail bisects in Python's order.
        for r in sorted(phones, key=lambda r: (r[7], r[2], r[5])):
            row = (r[0], r[1], r[2], r[3], r[4], r[5])
            revs.append(r[7])
            rev_rows.append(row)
            if r[6]:
                by_e164.setdefault(r[6], []).append((r[2], r[5], row))
        for rows in by_e164.values():
            rows.sort(key=lambda t: (t[0], t[1]))  # as SQLite's (e164, contact_id, raw) index
        out.update(by_e164=by_e164, revs=revs, rev_rows=rev_rows)
    if clients is not None:
        out["clients"] = {r[0]: {"id": r[0], "name": r[1], "kind": r[2], "manager_id": r[3]}
                          for r in clients}
    if users is not None:
        by_id: dict[int, User] = {}
        extensions: dict[str, User] = {}
        for r in users:
            user = User(r[0], r[1], r[2], Role(r[3]), r[4], r[5], bool(r[6]), bool(r[7]))
            by_id[user.id] = user
            if user.extension and user.active:
                extensions[user.extension] = user
        out.update(users=by_id, extensions=extensions)
    if interactions is not None:
        by_client: dict[int, list[dict[str, Any]]] = {}
        for r in interactions:
            by_client.setdefault(r[0], []).append(
                {"at": r[1], "kind": r[2], "summary": r[3], "data": json.loads(r[4])})
        out["interactions"] = by_client
    if tasks is not None:
        open_tasks: dict[int, list[dict[str, Any]]] = {}
        for r in tasks:
            open_tasks.setdefault(r[0], []).append(
                {"id": r[1], "title": r[2], "due_at": r[3]})
        out["tasks"] = open_tasks
    return out

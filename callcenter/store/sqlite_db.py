"""The SQLite connections of the store: one writer behind a lock, one reader that never waits.

SQLite allows one writer at a time per file, and a connection has one transaction at a time.
Sharing one aiosqlite connection between coroutines therefore mixes their statements: a second
``BEGIN IMMEDIATE`` fails with "cannot start a transaction within a transaction", and a plain
write from another coroutine lands inside someone else's transaction and is rolled back with
it. So every write - a single statement as much as a transaction - runs on the write connection
while holding :attr:`SqliteDb.lock`. Reads go to a second connection: in WAL mode they see the
last committed state and never wait for the writer, here or in another process.

The task holding the lock (inside :meth:`SqliteDb.transaction`) is remembered, so the store's
helpers nest without deadlocking, and its reads go to the write connection, where its own
uncommitted rows are visible. (A task, not a context variable: a task started inside a
transaction copies the context, and must not believe it holds the lock too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from callcenter.store.base import Conflict, NotFound
from callcenter.store.migrate import migrate

T = TypeVar("T")

# How long a write waits for another process (an import, a backup) to release the file
# before SQLite reports "database is locked"; the call log retries after that.
DEFAULT_BUSY_TIMEOUT_MS = 5000


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


async def _connect(path: Path, busy_timeout_ms: int) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                       "PRAGMA foreign_keys=ON", f"PRAGMA busy_timeout={int(busy_timeout_ms)}"):
            await db.execute(pragma)
        # SQLite's LIKE and lower() fold ASCII only: "ромашка" would never find
        # "Ромашка". Searches compare Python-casefolded text instead.
        await db.create_function("casefold", 1, _casefold, deterministic=True)
    except BaseException:
        await db.close()
        raise
    return db


class SqliteDb:
    """The write connection (behind ``lock``) and the read connection of one database file."""

    def __init__(self, path: Path, writer: aiosqlite.Connection,
                 reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self.lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None  # the task inside transaction()
        self.writes = 0  # commits so far (the caller index's snapshot reads its log after one)

    @classmethod
    async def open(cls, path: Path, *, target_version: int | None = None,
                   busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> SqliteDb:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path, busy_timeout_ms)
        try:
            await migrate(writer, str(path), target_version)
            reader = await _connect(path, busy_timeout_ms)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    def _holding(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    async def close(self) -> None:
        async with self.lock:
            await self._writer.close()
        await self._reader.close()

    @property
    def writer(self) -> aiosqlite.Connection:
        """The write connection, for code that holds :attr:`lock` (migrations, tests)."""
        return self._writer

    # -- reads -----------------------------------------------------------------------------

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        db = self._writer if self._holding() else self._reader
        return list(await db.execute_fetchall(sql, params))

    async def one(self, sql: str, params: Sequence[Any], what: str, ident: object) -> Any:
        rows = await self.rows(sql, params)
        if not rows:
            raise NotFound(what, ident)
        return rows[0]

    # -- writes ----------------------------------------------------------------------------

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        """One write statement; under the lock (taken here unless already held)."""
        if self._holding():
            return await self._run(sql, params)
        async with self.lock:
            try:
                return await self._run(sql, params)
            finally:
                self.writes += 1

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        """One write statement for many rows, in one transaction."""
        async with self.transaction():
            try:
                await self._writer.executemany(sql, seq)
            except sqlite3.IntegrityError as exc:
                raise Conflict(str(exc)) from exc

    async def _run(self, sql: str, params: Sequence[Any]) -> aiosqlite.Cursor:
        try:
            return await self._writer.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Hold the lock and one ``BEGIN IMMEDIATE`` transaction for the block; nested blocks
        join the outer transaction."""
        if self._holding():
            yield
            return
        async with self.lock:
            self._owner = asyncio.current_task()
            try:
                try:
                    # Inside the try: a caller cancelled while BEGIN waits for another
                    # process still has it run by aiosqlite's thread afterwards, and the
                    # rollback queued behind it (the queue is FIFO) closes what it opened.
                    await self._writer.execute("BEGIN IMMEDIATE")
                    yield
                    await self._writer.commit()
                except BaseException:
                    await _rollback(self._writer)
                    raise
            finally:
                self._owner = None
                # Counted however the block ended: a task cancelled while awaiting COMMIT
                # has still had it run by aiosqlite's thread (a rollback only over-counts).
                self.writes += 1

    async def in_transaction(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self.transaction():
            return await work()


async def _rollback(db: aiosqlite.Connection) -> None:
    # A cancelled caller must still leave the connection outside a transaction, or the next
    # BEGIN fails; shield the rollback from the cancellation that is unwinding us. With no
    # transaction open (a BEGIN that failed "locked") sqlite3's rollback() does nothing.
    await asyncio.shield(db.rollback())

"""The PostgreSQL connections of the store: :class:`PgDb`, the same small interface as
:class:`~callcenter.store.sqlite_db.SqliteDb` on an asyncpg pool, so the store's mixins run
unchanged on either database.

The mixins write SQLite-flavoured, mostly standard SQL with ``?`` placeholders. Each statement
is translated once and cached (:func:`translate`): ``?`` becomes ``$n``; ``LIKE`` becomes
``ILIKE`` (SQLite's LIKE ignores ASCII case, PostgreSQL's does not; ILIKE also folds non-ASCII
letters, so a search finds at least what SQLite finds), with ``ESCAPE ''`` when it has none;
``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``; an ``INSERT`` into a table with an
identity ``id`` gains ``RETURNING id``, which is what ``lastrowid`` reports. asyncpg is strict
about parameter types where SQLite converts (an int bound to a TEXT column, a float to an
integer one), so values are converted to the types PostgreSQL inferred for the prepared
statement, as SQLite's column affinity would.

Writes keep SQLite's discipline: one writer at a time, within one process behind
:attr:`PgDb.lock` and across every instance sharing the database behind a transaction-scoped
advisory lock (:data:`WRITE_LOCK_KEY`) taken first in each write transaction. So the mixins'
read-then-write steps (a task created once per ref, the last admin kept, a job claimed once,
the next number of a sequence read as MAX+1) stay correct with several instances: their reads
run after the lock is granted and, under READ COMMITTED, see every write committed before.
A write transaction is a few milliseconds; reads never take the lock. The task
inside :meth:`PgDb.transaction` reads on its transaction's connection (its own uncommitted rows
are visible); other reads take any pooled connection and never wait for the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from callcenter.store.base import Conflict, NotFound

T = TypeVar("T")
log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the store's writers: "callwrit" in ASCII (the migration
# runner's key differs, and h-scale's outbox writer has its own).
WRITE_LOCK_KEY = 0x63616C6C77726974
_INT_TYPES = {"int2", "int4", "int8", "oid"}
_FLOAT_TYPES = {"float4", "float8"}
_TEXT_TYPES = {"text", "varchar", "bpchar", "name", "unknown"}
_WRITE = re.compile(r"^\s*(?:INSERT\s+(?:OR\s+IGNORE\s+)?INTO|UPDATE|DELETE\s+FROM)\s+(\w+)",
                    re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
# A LIKE with no ESCAPE clause: SQLite has no escape character there, PostgreSQL takes a
# backslash (a search ending in one would fail: "LIKE pattern must not end with escape ...").
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*|\bLIKE\s+\?(?!\s*ESCAPE\b)|\?"
                    r"|\bLIKE\b", re.IGNORECASE)


def translate(sql: str, identity_tables: frozenset[str] = frozenset()) -> str:
    """SQLite-flavoured SQL of the mixins in PostgreSQL's dialect (see the module docstring).
    Quoted strings, quoted names and comments are left as they are."""
    count = 0

    def token(match: re.Match[str]) -> str:
        nonlocal count
        text = match.group(0)
        if text == "?":
            count += 1
            return f"${count}"
        if text.upper() == "LIKE":
            return "ILIKE"
        if text.upper().startswith("LIKE") and text.endswith("?"):
            count += 1
            return f"ILIKE ${count} ESCAPE ''"
        return text

    out = _TOKEN.sub(token, sql)
    if _INSERT_OR_IGNORE.match(out):
        out = _INSERT_OR_IGNORE.sub("INSERT INTO", out, count=1)
        out = _append(out, "ON CONFLICT DO NOTHING")
    write = _WRITE.match(out)
    if (write and out.lstrip()[:6].upper() == "INSERT" and write.group(1).lower()
            in identity_tables and not _RETURNING.search(out)):
        out = out.rstrip().rstrip(";") + " RETURNING id"
    return out


def _append(sql: str, clause: str) -> str:
    found = _RETURNING.search(sql)
    if found:
        return sql[:found.start()] + clause + " " + sql[found.start():]
    return sql.rstrip().rstrip(";") + " " + clause


def _coerce(value: Any, type_name: str) -> Any:
    """A value as SQLite's column affinity would have stored it, for asyncpg's strict codecs."""
    if value is None:
        return None
    if type_name in _TEXT_TYPES:
        if isinstance(value, bool):
            return str(int(value))
        return value if isinstance(value, str) else str(value)
    if type_name in _INT_TYPES:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value
    if type_name in _FLOAT_TYPES:
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                return value
        return float(value) if isinstance(value, bool) else value
    return value


def _decode_numeric(text: str) -> int | float:
    # SUM() of integers is numeric in PostgreSQL, an integer in SQLite: give back the same.
    return int(text) if text.lstrip("-").isdigit() else float(text)


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("numeric", encoder=str, decoder=_decode_numeric,
                              schema="pg_catalog", format="text")


@dataclass(slots=True)
class PgResult:
    """What a write returns: the cursor attributes the mixins read, and RETURNING's rows."""

    rows: list[asyncpg.Record]
    rowcount: int
    lastrowid: int | None

    def __iter__(self) -> Any:
        return iter(self.rows)

    async def fetchall(self) -> list[asyncpg.Record]:
        return self.rows

    async def fetchone(self) -> asyncpg.Record | None:
        return self.rows[0] if self.rows else None


def _rowcount(status: str | None) -> int:
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


ChangeListener = Callable[[frozenset[str]], Awaitable[None]]


class PgDb:
    """An asyncpg pool with SqliteDb's interface: rows/one/execute/executemany/transaction."""

    def __init__(self, pool: asyncpg.Pool, identity_tables: frozenset[str]) -> None:
        self.pool = pool
        self.identity_tables = identity_tables
        self.lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._conn: asyncpg.Connection | None = None  # the connection of transaction()
        self._sql: dict[str, str] = {}
        self._touched: set[str] = set()
        # Called after a write commits with the tables it changed (the caller-ID index).
        self.listeners: list[ChangeListener] = []

    @classmethod
    async def open(cls, dsn: str, *, target_version: int | None = None,
                   min_size: int = 1, max_size: int = 10) -> PgDb:
        from callcenter.store.pg_migrate import identity_tables, migrate_pg

        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                         init=init_connection)
        try:
            async with pool.acquire() as conn:
                await migrate_pg(conn, target_version)
                tables = await identity_tables(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, tables)

    def _holding(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    async def close(self) -> None:
        async with self.lock:
            await self.pool.close()

    def _translate(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = translate(sql, self.identity_tables)
        return found

    @staticmethod
    async def _run(conn: asyncpg.Connection, sql: str, params: Sequence[Any]
                   ) -> tuple[list[asyncpg.Record], str | None]:
        # A cached prepared statement: its parameter types say how to convert the values, and
        # it reports the status line (the row count) that fetch() does not.
        stmt = await conn._prepare(sql, use_cache=True)
        types = [t.name for t in stmt.get_parameters()]
        args = [_coerce(v, t) for v, t in zip(params, types, strict=False)]
        try:
            rows = await stmt.fetch(*args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict(str(exc)) from exc
        return rows, stmt.get_statusmsg()

    # -- reads -----------------------------------------------------------------------------

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        sql = self._translate(sql)
        if self._holding():
            assert self._conn is not None
            return (await self._run(self._conn, sql, params))[0]
        async with self.pool.acquire() as conn:
            return (await self._run(conn, sql, params))[0]

    async def one(self, sql: str, params: Sequence[Any], what: str, ident: object) -> Any:
        rows = await self.rows(sql, params)
        if not rows:
            raise NotFound(what, ident)
        return rows[0]

    # -- writes ----------------------------------------------------------------------------

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> PgResult:
        """One write statement; under the lock (taken here unless already held)."""
        if self._holding():
            return await self._write(sql, params)
        async with self.transaction():
            return await self._write(sql, params)

    async def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        async with self.transaction():
            for params in seq:
                await self._write(sql, params)

    async def _write(self, sql: str, params: Sequence[Any]) -> PgResult:
        assert self._conn is not None
        pg_sql = self._translate(sql)
        rows, status = await self._run(self._conn, pg_sql, params)
        write = _WRITE.match(sql)
        if write:
            self._touched.add(write.group(1).lower())
        lastrowid = (int(rows[0][0]) if rows and pg_sql.endswith(" RETURNING id")
                     and pg_sql.lstrip()[:6].upper() == "INSERT" else None)
        return PgResult(rows, _rowcount(status), lastrowid)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Hold the lock and one transaction for the block; nested blocks join it."""
        if self._holding():
            yield
            return
        async with self.lock:
            touched: frozenset[str] = frozenset()
            async with self.pool.acquire() as conn:
                self._owner = asyncio.current_task()
                self._conn = conn
                self._touched = set()
                try:
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK_KEY)
                        yield
                    touched = frozenset(self._touched)
                finally:
                    self._owner = None
                    self._conn = None
            if touched:
                for listener in self.listeners:
                    try:
                        await listener(touched)
                    except Exception:
                        # committed all the same: the caller must not retry it
                        log.exception("store: a change listener failed for %s",
                                      ", ".join(sorted(touched)))

    async def in_transaction(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self.transaction():
            return await work()

"""PostgreSQL implementation of the store: the SQLite store's queries on :class:`PgDb`.

Every query lives once, in :class:`~callcenter.store.sqlite.SqliteStore` and its feature
mixins, written in the SQL both databases understand; :mod:`callcenter.store.pg_db` translates
the little that differs. So a feature added to the store works on PostgreSQL without a second
implementation, and the both-backends tests keep the two honest.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from callcenter.store.pg_caller_index import PgCallerIndex
from callcenter.store.pg_db import PgDb
from callcenter.store.sqlite import SqliteStore


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def with_password(url: str, password: str) -> str:
    """The URL with the password (kept in the environment, never in the TOML file)."""
    parts = urlsplit(url)
    if not password or parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redacted(url: str) -> str:
    """The URL fit for a log line or an error message: no password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresStore(SqliteStore):
    """The product's store on a PostgreSQL database (several instances may share it)."""

    def __init__(self, url: str, db: PgDb) -> None:
        self.path = None  # type: ignore[assignment]
        self.url = redacted(url)
        self.dsn = url  # with the password: for a second connection, never for a log line
        self._db = db  # type: ignore[assignment]
        self.caller_index = PgCallerIndex(db.pool)  # type: ignore[assignment]

    @classmethod
    async def open(cls, url: str, *, target_version: int | None = None,  # type: ignore[override]
                   **_: object) -> PostgresStore:
        db = await PgDb.open(url, target_version=target_version)
        store = cls(url, db)
        if target_version is not None:
            store._callers_table = bool(await db.rows(  # migration 0019 may be ahead of it
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'caller_numbers'"
                " AND table_schema = current_schema()"))
            return store  # an old schema, for upgrade tests: the index reads today's columns
        try:
            await store.caller_index.reload()
            db.listeners.append(store.caller_index.tables_changed)
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        self.caller_index.close()
        await self._db.close()

"""Versioned schema migrations for SQLite, kept in ``PRAGMA user_version``.

Migrations are plain SQL files named ``NNNN_title.sql``, applied in order, each in its own
transaction together with the version bump, so a crash leaves the database at a whole version.
Written here rather than with alembic or yoyo: those need a synchronous DB-API connection and
their own bookkeeping tables, while SQLite already keeps a version number in the file header;
the SQL files themselves stay reusable by a PostgreSQL store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import aiosqlite

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer callcenter than this one."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    folder = resources.files("callcenter.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration numbering has a gap before {migration.name}")
    return found


async def schema_version(db: aiosqlite.Connection) -> int:
    rows = await db.execute_fetchall("PRAGMA user_version")
    return int(next(iter(rows))[0])


async def migrate(db: aiosqlite.Connection, path: str, target: int | None = None) -> list[str]:
    """Bring the schema up to ``target`` (default: the newest); return the names applied."""
    migrations = known_migrations()
    newest = migrations[-1].version if migrations else 0
    current = await schema_version(db)
    if current > newest:
        raise SchemaTooNewError(
            f"{path}: database schema version {current} is newer than this callcenter "
            f"understands ({newest}); upgrade callcenter or restore a backup"
        )
    target = newest if target is None else target
    applied = []
    for migration in migrations:
        if current < migration.version <= target:
            # executescript would COMMIT first; run statements inside one explicit transaction.
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(migration.sql):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {migration.version}")
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
            applied.append(migration.name)
    return applied


def _statements(sql: str) -> list[str]:
    import sqlite3

    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(
        part.strip().startswith("--") for part in buf.strip().splitlines()
    ):
        raise ValueError("migration ends with an incomplete statement")
    return out

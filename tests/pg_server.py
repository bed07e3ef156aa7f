"""A real PostgreSQL for the test run: Debian's server, started on 127.0.0.1 on a free port in
a temporary folder, a freshly migrated database per test, stopped at the end.

initdb refuses to run as root, so under root the server runs as an unprivileged user
(``postgres`` from the Debian package, else ``callcenter-pg``, created if missing). Durability
is switched off (fsync, synchronous_commit, full_page_writes): a test database is thrown away.
Each test gets ``CREATE DATABASE ... TEMPLATE`` of one database migrated once, which costs a
few milliseconds instead of running every migration again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SUPERUSER = "callcenter"
TEMPLATE = "callcenter_template"


# One round trip empties a test database. DELETE beats TRUNCATE on tables this small; replica
# mode skips the foreign-key triggers, so the order does not matter.
_RESET = """
CREATE FUNCTION callcenter_test_reset() RETURNS void LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR t IN SELECT c.relname FROM pg_class c WHERE c.relkind = 'r'
             AND c.relnamespace = current_schema()::regnamespace
             AND c.relname <> 'schema_version' LOOP
        EXECUTE format('DELETE FROM %I', t.relname);
    END LOOP;
    FOR t IN SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             WHERE a.attname = 'id' AND a.attidentity <> ''
             AND c.relnamespace = current_schema()::regnamespace LOOP
        PERFORM setval(pg_get_serial_sequence(quote_ident(t.relname), 'id'), 1, false);
    END LOOP;
END $$;
"""


def find_bin() -> Path:
    """Debian's versioned folder (/usr/local/bin/pg_ctl may be a wrapper or absent)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: ./scripts/debian-deps.sh postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from sync or async code (a fixture of either kind)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "callcenter-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "callcenter-pg"], check=True)
    return "callcenter-pg"


class PgServer:
    def __init__(self) -> None:
        self.bin = find_bin()
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="callcenter-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._names = itertools.count(1)
        self._free: list[str] = []

    def _cmd(self, *args: str | Path) -> list[str]:
        cmd = [str(a) for a in args]
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def start(self) -> None:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._cmd(self.bin / "initdb", "-D", self.data, "-U", SUPERUSER,
                                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                                 "--no-sync"),
                       check=True, capture_output=True)
        for _attempt in range(5):
            self.port = _free_port()
            options = (f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
                       " -c synchronous_commit=off -c full_page_writes=off"
                       " -c max_connections=300 -c shared_buffers=32MB")
            started = subprocess.run(
                self._cmd(self.bin / "pg_ctl", "-D", self.data, "-o", options,
                          "-l", self.root / "server.log", "-w", "-t", "30", "start"),
                capture_output=True, text=True)
            if started.returncode == 0:
                break
        else:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log}")
        _run_sync(self._make_template())

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    async def _make_template(self) -> None:
        import asyncpg

        from callcenter.store.pg_db import PgDb

        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        db = await PgDb.open(self.url(TEMPLATE), max_size=1)
        await db.close()
        conn = await asyncpg.connect(self.url(TEMPLATE))
        try:
            await conn.execute(_RESET)
        finally:
            await conn.close()

    async def create_database(self) -> str:
        """A database with the whole schema and no rows; returns its URL. One a previous
        test used is emptied and reused: copying the template costs 0.3-1 s on a busy
        machine, emptying a few milliseconds."""
        if self._free:
            return self._free.pop()
        import asyncpg

        name = f"t{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
        finally:
            await conn.close()
        return self.url(name)

    async def create_empty_database(self) -> str:
        import asyncpg

        name = f"e{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.url(name)

    async def release_database(self, url: str) -> None:
        """Empty a database a test is done with (rows deleted, identities back at 1) for the
        next test; dropped instead when something still holds it."""
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            # the test's app or store may have left a connection behind
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            await conn.execute("SET lock_timeout = '2s'; SELECT callcenter_test_reset()")
        except asyncpg.PostgresError:
            await conn.close()
            await self.drop_database(url)
            return
        await conn.close()
        self._free.append(url)

    async def drop_database(self, url: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[-1]} WITH (FORCE)")
        finally:
            await conn.close()

    def create_database_sync(self) -> str:
        return _run_sync(self.create_database())

    def release_database_sync(self, url: str) -> None:
        _run_sync(self.release_database(url))

    def stop(self) -> None:
        if self.port:
            subprocess.run(self._cmd(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate",
                                     "-w", "stop"), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

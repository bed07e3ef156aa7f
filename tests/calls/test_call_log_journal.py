"""The call log never drops a record: it retries a locked database for as long as it takes,
spools what it still holds at stop to the journal, and the next start replays it once."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from callcenter.bus import EventBus
from callcenter.calls.journal import Journal
from callcenter.calls.log import CallLog
from callcenter.calls.registry import CallRegistry
from callcenter.config import PhonesConfig
from callcenter.demo import seed_demo
from callcenter.line_events import Answered, CallEnded, CallStarted, Direction, EndState, MissReason
from callcenter.matching import CallerMatcher
from callcenter.models import TaskKind
from callcenter.store.base import CallFilter
from callcenter.store.sqlite import SqliteStore
from tests.calls.harness import FAKE_HASH

# Far more failed attempts than the old limit of 5 while the database stays locked.
LOCKED_ATTEMPTS = 25
FAST = {"retry_seconds": 0.002, "max_retry_seconds": 0.01}


class Watched:
    """The store, counting the writes that failed on a locked database."""

    def __init__(self, store: SqliteStore, enough: int) -> None:
        self._store = store
        self.failures = 0
        self.locked_long_enough = asyncio.Event()
        self._enough = enough

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await attr(*args, **kwargs)
            except sqlite3.OperationalError:
                self.failures += 1
                if self.failures >= self._enough:
                    self.locked_long_enough.set()
                raise

        return call


def lock_database(path: Path) -> sqlite3.Connection:
    """Another process holding the write lock, as an import of 100,000 rows did for ~43 s."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def feed_calls(registry: CallRegistry, first: int, count: int) -> None:
    for i in range(first, first + count):
        key, at = f"k{i}", 1000.0 + i * 10
        registry.handle(CallStarted("office", key, at, Direction.INBOUND, f"8903555{i:04d}", "",
                                    "74951110000"))
        if i % 3 == 0:
            registry.handle(Answered(key, at + 2, "101"))
            registry.handle(CallEnded(key, at + 5, EndState.ANSWERED))
        else:
            registry.handle(CallEnded(key, at + 5, EndState.MISSED, MissReason.ABANDONED))


async def open_store(path: Path) -> SqliteStore:
    # A short busy timeout: each attempt fails fast, so many retry cycles fit in a short test.
    return await SqliteStore.open(path, busy_timeout_ms=5)


async def assert_each_call_once(store: SqliteStore, count: int) -> None:
    calls = await store.list_calls(CallFilter(limit=10_000))
    assert sorted(c["caller_raw"] for c in calls) == sorted(
        f"8903555{i:04d}" for i in range(count))
    # ended calls stay ended across the restart (an answered one is not taken for a live one)
    assert {c["id"]: c["state"] for c in calls} == {
        c["id"]: "answered" if int(c["id"][1:]) % 3 == 0 else "missed" for c in calls}
    interactions = await store._db.rows("SELECT ref, COUNT(*) FROM interactions"
                                        " WHERE kind = 'call' GROUP BY ref")
    assert sorted(r[0] for r in interactions) == sorted(c["id"] for c in calls)
    assert {r[1] for r in interactions} == {1}
    tasks = [t for t in await store.list_tasks(limit=10_000) if t.kind is TaskKind.CALLBACK]
    missed = sorted(c["id"] for c in calls if c["state"] == "missed")
    assert sorted(t.ref for t in tasks) == missed  # one callback task per missed call


def registry_for(store: Any, call_log: CallLog) -> CallRegistry:
    return CallRegistry(CallerMatcher(store.caller_index, PhonesConfig()), store.caller_index,
                        EventBus(), call_log)


async def test_a_long_lock_delays_the_call_log_but_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    watched = Watched(store, LOCKED_ATTEMPTS)
    call_log = CallLog(watched, journal=tmp_path / "call-log.journal", **FAST)  # type: ignore[arg-type]
    await call_log.start()
    registry = registry_for(store, call_log)
    other = lock_database(path)
    try:
        feed_calls(registry, 0, 20)
        await asyncio.wait_for(watched.locked_long_enough.wait(), 60)
        feed_calls(registry, 20, 10)  # calls keep coming while the database is locked
    finally:
        other.rollback()
        other.close()
    await asyncio.wait_for(call_log.drained(), 60)
    await call_log.stop()
    assert not (tmp_path / "call-log.journal").exists()
    await assert_each_call_once(store, 30)
    await store.close()


async def test_stop_with_work_queued_spools_and_the_next_start_replays_once(
        tmp_path: Path) -> None:
    path, journal = tmp_path / "c.db", tmp_path / "call-log.journal"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    watched = Watched(store, LOCKED_ATTEMPTS)
    call_log = CallLog(watched, journal=journal, drain_seconds=0.01, **FAST)  # type: ignore[arg-type]
    await call_log.start()
    registry = registry_for(store, call_log)
    feed_calls(registry, 0, 5)
    await asyncio.wait_for(call_log.drained(), 30)
    other = lock_database(path)
    feed_calls(registry, 5, 25)
    await asyncio.wait_for(watched.locked_long_enough.wait(), 60)
    await call_log.stop()  # the database is still locked: the rest goes to the journal
    other.rollback()
    other.close()
    await store.close()
    held = Journal(journal).load()
    assert len(held) >= 25 * 2  # at least an upsert and a finish per call not yet written
    shutil.copy(journal, tmp_path / "copy")

    store = await open_store(path)
    again = CallLog(store, journal=journal)
    await again.start()
    await again.stop()
    assert not journal.exists()
    await assert_each_call_once(store, 30)
    # A crash after the replay but before the journal went: replaying it again changes nothing.
    shutil.copy(tmp_path / "copy", journal)
    third = CallLog(store, journal=journal)
    await third.start()
    await third.stop()
    await assert_each_call_once(store, 30)
    await store.close()


_REPLAYER = """
import asyncio, sys
from pathlib import Path
from callcenter.calls.log import CallLog
from callcenter.store.sqlite import SqliteStore

class Announcing:
    def __init__(self, store):
        self._store = store
    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name not in ("upsert_call", "add_interaction", "create_task"):
            return attr
        async def call(*a, **kw):
            result = await attr(*a, **kw)
            print(name, flush=True)
            sys.stdin.readline()  # the test kills us here, after some writes
            return result
        return call

async def main():
    store = await SqliteStore.open(Path(sys.argv[1]))
    await CallLog(Announcing(store), journal=Path(sys.argv[2])).replay_journal()
    print("done", flush=True)

asyncio.run(main())
"""


async def test_killed_during_the_replay_the_next_start_stores_each_call_once(
        tmp_path: Path) -> None:
    path, journal = tmp_path / "c.db", tmp_path / "call-log.journal"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    call_log = CallLog(store, journal=journal, drain_seconds=0, **FAST)
    await call_log.start()
    registry = registry_for(store, call_log)
    other = lock_database(path)
    feed_calls(registry, 0, 6)
    await call_log.stop()
    other.rollback()
    other.close()
    await store.close()
    assert journal.exists()
    spooled = journal.read_bytes()

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for writes_before_kill in (1, 4, 9):
        journal.write_bytes(spooled)
        proc = subprocess.Popen([sys.executable, "-c", _REPLAYER, str(path), str(journal)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                text=True)
        assert proc.stdin is not None and proc.stdout is not None
        for _ in range(writes_before_kill):
            assert proc.stdout.readline().strip() in ("upsert_call", "add_interaction",
                                                      "create_task")
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.stdout.readline()  # the next write is stored; the process waits to be told on
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert journal.exists()  # the journal goes only after a complete replay

    store = await open_store(path)
    final = CallLog(store, journal=journal)
    await final.start()
    await final.stop()
    assert not journal.exists()
    await assert_each_call_once(store, 6)
    await store.close()


async def test_the_app_replays_the_journal_at_start(config) -> None:
    from starlette.testclient import TestClient

    from callcenter.app import create_app

    journal = config.data_dir / "call-log.journal"
    store = await open_store(config.database_path)
    await seed_demo(store, FAKE_HASH)
    call_log = CallLog(store, journal=journal, drain_seconds=0, **FAST)
    await call_log.start()
    other = lock_database(config.database_path)
    feed_calls(registry_for(store, call_log), 0, 4)
    await call_log.stop()
    other.rollback()
    other.close()
    await store.close()
    assert journal.exists()

    def run_app() -> None:
        with TestClient(create_app(config, demo=False)):
            pass  # the lifespan starts (replaying the journal) and stops

    await asyncio.to_thread(run_app)
    assert not journal.exists()
    store = await open_store(config.database_path)
    try:
        await assert_each_call_once(store, 4)
    finally:
        await store.close()


_KILLED_WHILE_LOCKED = """
import asyncio, os, sys, traceback
from pathlib import Path
from callcenter.calls.log import CallLog
from callcenter.store.sqlite import SqliteStore
from tests.calls.test_call_log_journal import FAST, Watched, feed_calls, registry_for

async def main():
    store = await SqliteStore.open(Path(sys.argv[1]), busy_timeout_ms=5)
    watched = Watched(store, 3)
    call_log = CallLog(watched, journal=Path(sys.argv[2]), **FAST)
    await call_log.start()
    registry = registry_for(store, call_log)
    print("started", flush=True)
    sys.stdin.readline()  # the test locks the database
    feed_calls(registry, 0, 8)
    await watched.locked_long_enough.wait()  # writes are failing
    feed_calls(registry, 8, 4)  # and calls keep coming
    print("queued", flush=True)
    sys.stdin.readline()  # the event loop stops here; the test kills the process

try:
    asyncio.run(main())
except BaseException:
    traceback.print_exc()
    os._exit(1)  # the store's threads would keep a failed run alive
"""


async def test_killed_while_the_database_is_locked_the_next_start_stores_each_call_once(
        tmp_path: Path) -> None:
    # SIGKILL gives no chance to spool at stop: the writes must already be in the journal.
    path, journal = tmp_path / "c.db", tmp_path / "call-log.journal"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    await store.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WHILE_LOCKED, str(path),
                             str(journal)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, text=True)
    other = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        other = lock_database(path)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "queued"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if other is not None:
            other.rollback()
            other.close()
    assert len(Journal(journal).load()) >= 12 * 2  # an upsert and a finish per call

    store = await open_store(path)
    again = CallLog(store, journal=journal)
    await again.start()
    await again.stop()
    assert not journal.exists()
    await assert_each_call_once(store, 12)
    await store.close()


async def test_the_journal_goes_once_the_queue_is_written_after_a_lock(
        tmp_path: Path) -> None:
    path, journal = tmp_path / "c.db", tmp_path / "call-log.journal"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    watched = Watched(store, 3)
    call_log = CallLog(watched, journal=journal, **FAST)  # type: ignore[arg-type]
    await call_log.start()
    other = lock_database(path)
    feed_calls(registry_for(store, call_log), 0, 3)
    await asyncio.wait_for(watched.locked_long_enough.wait(), 60)
    assert len(Journal(journal).load()) >= 6  # kept while the database fails
    other.rollback()
    other.close()
    await asyncio.wait_for(call_log.drained(), 60)
    assert not journal.exists()  # all written: nothing left to replay
    await call_log.stop()
    await assert_each_call_once(store, 3)
    await store.close()


class Poisoned:
    """The store, with one call whose row can never be written (a bug, a CHECK constraint)."""

    def __init__(self, store: SqliteStore, call_id: str) -> None:
        self._store = store
        self._call_id = call_id
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def upsert_call(self, row: dict[str, Any]) -> None:
        if row["id"] == self._call_id:
            self.attempts += 1
            raise ValueError("CHECK constraint failed")
        await self._store.upsert_call(row)


async def test_a_write_that_always_fails_goes_to_the_dead_letter_file_and_the_rest_land(
        tmp_path: Path, caplog: Any) -> None:
    path, journal = tmp_path / "c.db", tmp_path / "call-log.journal"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    poisoned = Poisoned(store, "k1")
    call_log = CallLog(poisoned, journal=journal, **FAST)  # type: ignore[arg-type]
    await call_log.start()
    feed_calls(registry_for(store, call_log), 0, 4)
    await asyncio.wait_for(call_log.drained(), 20)  # retried for ever, it never drained
    await call_log.stop()
    dead = Journal(tmp_path / "call-log.dead").load()
    # every write of k1 (its live upsert and its finish) gave up after five attempts each
    assert [(kind, (item["id"] if kind == "upsert" else item.id)) for kind, item in dead] == [
        ("upsert", "k1"), ("finish", "k1")]
    assert poisoned.attempts == 2 * 5
    assert "call-log.dead" in caplog.text
    calls = {c["id"] for c in await store.list_calls(CallFilter(limit=100))}
    assert calls == {"k0", "k2", "k3"}  # the calls behind it were not held up
    assert not journal.exists()
    await store.close()


class Recording(Watched):
    """The store, noting the call ids of the call rows written, in order."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store, 1)
        self.written: list[str] = []

    async def upsert_call(self, row: dict[str, Any]) -> None:
        await self._store.upsert_call(row)
        self.written.append(row["id"])


async def test_a_locked_database_at_start_does_not_hold_up_start_and_replays_first(
        tmp_path: Path) -> None:
    path, journal = tmp_path / "c.db", tmp_path / "call-log.journal"
    store = await open_store(path)
    await seed_demo(store, FAKE_HASH)
    call_log = CallLog(store, journal=journal, drain_seconds=0, **FAST)
    await call_log.start()
    other = lock_database(path)
    feed_calls(registry_for(store, call_log), 0, 6)
    await call_log.stop()
    spooled = {item["id"] if kind == "upsert" else item.id
               for kind, item in Journal(journal).load()}
    assert spooled == {f"k{i}" for i in range(6)}

    # The database is still locked when callcenter starts again: start() returns, the lines
    # connect, and their calls queue behind the journal's.
    recording = Recording(store)
    again = CallLog(recording, journal=journal, start_wait_seconds=0.01, **FAST)  # type: ignore[arg-type]
    await asyncio.wait_for(again.start(), 30)
    feed_calls(registry_for(store, again), 6, 4)
    assert journal.exists()
    other.rollback()
    other.close()
    await asyncio.wait_for(again.drained(), 60)
    await again.stop()
    assert not journal.exists()
    await assert_each_call_once(store, 10)
    first_new = min(recording.written.index(f"k{i}") for i in range(6, 10))
    assert set(recording.written[:first_new]) == spooled
    await store.close()

"""The caller index's in-memory snapshot (caller_snapshot.py, migration 0020): its keys keep
SQLite's text order, it answers every range exactly as the caller_numbers statement does, and
once started it never answers from a number that changed - by this store, by another process
on the same file, with a gap in the change log or more changes than it may hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.config import PhonesConfig
from callcenter.matching import CallerMatcher
from callcenter.models import Role
from callcenter.phones import normalize
from callcenter.store import caller_snapshot_keeper as keeper_module
from callcenter.store.caller_snapshot import LIMIT, WIDTH, CallerSnapshot, pack
from callcenter.store.sqlite import SqliteStore
from callcenter.store.sqlite_caller_index import SqliteCallerIndex
from tests.test_caller_numbers import NUMBERS, _apply, _client, op

digits = st.text("0123456789", min_size=1, max_size=WIDTH)


@given(digits, digits)
def test_packed_keys_sort_as_the_digit_strings(a: str, b: str) -> None:
    assert (pack(a) < pack(b)) == (a < b)
    assert (pack(a) == pack(b)) == (a == b)


@given(digits, digits)
def test_a_prefix_range_of_keys_is_the_strings_starting_with_it(prefix: str, s: str) -> None:
    low = pack(prefix)
    high = low + 11 ** (WIDTH - len(prefix))
    assert (low <= pack(s) < high) == s.startswith(prefix)


def _reference(rows: list[tuple], prefix: str) -> list[tuple]:
    """What ``rev >= prefix AND rev < prefix || ':' LIMIT 50`` returns, in key order."""
    return [r[1:] for r in rows if prefix <= r[0] < prefix + ":"][:LIMIT]


revs = st.one_of(st.text("0123", min_size=1, max_size=22),  # shared prefixes, longer than keys
                 st.sampled_from(["12a", "", "1 2", "٣٤"]))  # written by hand: not digits


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(revs, st.integers(0, 3)), max_size=150),
       st.lists(st.text("0123", min_size=1, max_size=WIDTH + 2), min_size=1, max_size=10),
       st.lists(st.text("0123", min_size=1, max_size=8), max_size=4))
def test_a_snapshot_answers_a_range_as_sqlite_or_not_at_all(
        tmp_path_factory: pytest.TempPathFactory, stored: list[tuple[str, int]],
        prefixes: list[str], changed: list[str]) -> None:
    rows = sorted((rev, n, f"client {n}", n * 10, f"contact {rev}", None, f"raw{i}", None)
                  for i, (rev, n) in enumerate(stored))
    snapshot = CallerSnapshot.build(rows, tmp_path_factory.mktemp("snap"))
    try:
        for rev in changed:
            snapshot.mark(rev)
        for prefix in prefixes:
            got = snapshot.rows(prefix)
            in_range = [r[0] for r in rows if r[0].startswith(prefix)]
            odd = [r for r in in_range if not (r.isascii() and r.isdigit())]
            if len(prefix) > WIDTH or odd or any(c.startswith(prefix) for c in changed):
                assert got is None, prefix
            else:
                assert got == _reference(rows, prefix), prefix
    finally:
        snapshot.close()


def test_an_empty_snapshot_finds_nothing(tmp_path: Path) -> None:
    snapshot = CallerSnapshot.build([], tmp_path)
    try:
        assert snapshot.rows("7654321") == [] and snapshot.rows("x") is None
    finally:
        snapshot.close()


def _queries() -> list[str]:
    return [*NUMBERS, "+79999999999", "79161234567", "991234567", "4567", "9161234567"]


def _same_as_sqlite(store: SqliteStore, plain: SqliteCallerIndex) -> None:
    """The started index answers every query as an index that only reads SQLite."""
    index = store.caller_index
    for raw in _queries():
        number = normalize(raw)
        assert index.match(number, 10) == plain.match(number, 10), raw
        tail = number.tail(10)
        if tail:
            assert index.lookup(number.e164, tail) == plain.lookup(number.e164, tail), raw
    ours, theirs = CallerMatcher(index, PhonesConfig()), CallerMatcher(plain, PhonesConfig())
    for raw in _queries():
        assert ours.match(raw).candidates == theirs.match(raw).candidates, raw


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(op, max_size=12), rebuild_at=st.integers(0, 12))
def test_a_started_index_answers_as_sqlite_after_every_write(
        tmp_path: Path, steps: list[tuple], rebuild_at: int) -> None:
    async def main() -> None:
        path = tmp_path / f"s{abs(hash((tuple(map(repr, steps)), rebuild_at)))}.db"
        store = await SqliteStore.open(path)
        plain = SqliteCallerIndex(path)
        try:
            users = [(await store.create_user(f"m{i}", f"M{i}", Role.MANAGER)).id
                     for i in range(3)]
            await store.create_client(_client("Base", NUMBERS[:4], users[0]))
            keeper = store.caller_index.snapshot
            assert keeper is not None
            store.caller_index.start_snapshot()
            assert keeper.wait()
            for i, step in enumerate(steps):
                if i == rebuild_at:  # a snapshot taken in the middle, then more writes
                    keeper.rebuild()
                    assert keeper.wait()
                await _apply(store, users, step)
                _same_as_sqlite(store, plain)
            assert keeper.installed is not None
        finally:
            plain.close()
            await store.close()
            path.unlink()

    asyncio.run(main())


async def _started(path: Path) -> SqliteStore:
    store = await SqliteStore.open(path)
    store.caller_index.start_snapshot()
    assert store.caller_index.snapshot is not None and store.caller_index.snapshot.wait()
    return store


async def test_another_process_writing_is_seen_at_the_next_poll(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    server = await _started(path)
    cli = await SqliteStore.open(path)  # e.g. `callcenter import` while the server runs
    try:
        number = normalize("+79161234567")
        assert server.caller_index.match(number, 10) == []
        keeper = server.caller_index.snapshot
        assert keeper is not None and keeper.installed is not None
        assert keeper.installed.rows("7654321619") == []  # the snapshot itself says "nobody"
        await cli.create_client(_client("Imported", ["+79161234567"]))
        keeper.poll()  # what the next lookup does within POLL_SECONDS
        assert [m.client_name for m in server.caller_index.match(number, 10)] == ["Imported"]
        assert keeper.installed is not None and keeper.installed.rows("7654321619") is None
        await cli.update_client((await cli._db.rows("SELECT id FROM clients"))[0][0],
                                name="Renamed")
        keeper.poll()
        assert [m.client_name for m in server.caller_index.match(number, 10)] == ["Renamed"]
    finally:
        await cli.close()
        await server.close()


async def test_own_writes_are_seen_by_the_very_next_lookup(tmp_path: Path) -> None:
    store = await _started(tmp_path / "own.db")
    try:
        keeper = store.caller_index.snapshot
        assert keeper is not None
        keeper._poll_at = float("inf")  # no timed poll: only the write may cause one
        client = await store.create_client(_client("New", ["+79161234567"]))
        found = store.caller_index.match(normalize("+79161234567"), 10)
        assert [m.client_id for m in found] == [client.id]
        await store.delete_client(client.id)
        assert store.caller_index.match(normalize("+79161234567"), 10) == []
    finally:
        await store.close()


async def test_a_gap_in_the_change_log_drops_the_snapshot_and_builds_anew(
        tmp_path: Path) -> None:
    path = tmp_path / "gap.db"
    server = await _started(path)
    other = await SqliteStore.open(path)
    try:
        keeper = server.caller_index.snapshot
        assert keeper is not None and keeper.builds == 1
        await other.create_client(_client("Lost", ["+79161234567"]))
        # another server on the same file trimmed the log before this one read it
        await other._db.execute("DELETE FROM caller_changes")
        keeper.poll()
        assert keeper.installed is None  # SQLite answers, and right
        found = server.caller_index.match(normalize("+79161234567"), 10)
        assert [m.client_name for m in found] == ["Lost"]
        keeper._build_at = 0.0  # skip the wait between builds
        keeper.current()
        assert keeper.wait() and keeper.builds == 2
        assert keeper.installed is not None and keeper.installed.rows("7654321619") != []
    finally:
        await other.close()
        await server.close()


async def test_more_changes_than_it_may_hold_drop_the_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keeper_module, "MAX_DIRTY", 3)
    path = tmp_path / "many.db"
    server = await _started(path)
    other = await SqliteStore.open(path)
    try:
        await other.import_clients([_client(f"C{i}", [f"+7916123{i:04d}"]) for i in range(5)])
        keeper = server.caller_index.snapshot
        assert keeper is not None
        keeper.poll()
        assert keeper.installed is None
        found = server.caller_index.match(normalize("+79161230004"), 10)
        assert [m.client_name for m in found] == ["C4"]
    finally:
        await other.close()
        await server.close()


async def test_many_dirty_numbers_start_a_new_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keeper_module, "REBUILD_AT", 2)
    monkeypatch.setattr(keeper_module, "REBUILD_SECONDS", 0.0)
    store = await _started(tmp_path / "dirty.db")
    try:
        keeper = store.caller_index.snapshot
        assert keeper is not None
        await store.import_clients([_client(f"C{i}", [f"+7916123{i:04d}"]) for i in range(3)])
        store.caller_index.match(normalize("+79161230001"), 10)  # the poll sees 3 changes
        assert keeper.wait() and keeper.builds == 2
        snapshot = keeper.installed
        assert snapshot is not None and snapshot.dirty == 0 and len(snapshot) == 3
        _same_as_sqlite(store, SqliteCallerIndex(store.path))
    finally:
        await store.close()


async def test_the_log_is_trimmed_to_what_the_snapshot_holds(tmp_path: Path) -> None:
    store = await _started(tmp_path / "trim.db")
    try:
        await store.import_clients([_client(f"C{i}", [f"+7916123{i:04d}"]) for i in range(4)])
        count = "SELECT COUNT(*) FROM caller_changes"
        assert (await store._db.rows(count))[0][0] == 4
        keeper = store.caller_index.snapshot
        assert keeper is not None
        keeper.rebuild()
        assert keeper.wait()
        await store.create_client(_client("Next", ["+79031234567"]))  # the next write trims
        assert (await store._db.rows(count))[0][0] == 1
        _same_as_sqlite(store, SqliteCallerIndex(store.path))
    finally:
        await store.close()


async def test_a_store_before_the_change_log_reads_sqlite_only(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "old.db", target_version=19)
    try:
        assert store.caller_index.snapshot is None
        store.caller_index.start_snapshot()  # nothing to follow: stays on SQLite
        await store.create_client(_client("Old", ["+79161234567"]))
        assert [m.client_name for m in store.caller_index.match(
            normalize("+79161234567"), 10)] == ["Old"]
    finally:
        await store.close()


def test_the_key_search_finds_every_position(tmp_path: Path) -> None:
    # the two-level search (every 64th key, then a block) against a plain bisect, across
    # block edges and duplicates
    revs = sorted(f"{i // 3:07d}" for i in range(1000))
    snapshot = CallerSnapshot.build(((r, i, "", i, "", None, r, None)
                                     for i, r in enumerate(revs)), tmp_path)
    try:
        for prefix in ("0000000", "0000063", "0000064", "000021", "0000333", "0000334", "1"):
            expected = [r for r in revs if r.startswith(prefix)][:LIMIT]
            got = snapshot.rows(prefix)
            assert got is not None and [r[5] for r in got] == expected, prefix
    finally:
        snapshot.close()


async def test_numbers_only_another_process_writes_are_trimmed_once_seen(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    server = await _started(path)
    cli = await SqliteStore.open(path)  # numbers arrive by `callcenter import` only
    try:
        count = "SELECT COUNT(*) FROM caller_changes"
        await cli.import_clients([_client(f"C{i}", [f"+7916123{i:04d}"]) for i in range(4)])
        await server.trim_caller_changes()  # the server's minute: nothing seen yet, kept
        assert (await server._db.rows(count))[0][0] == 4
        keeper = server.caller_index.snapshot
        assert keeper is not None
        keeper.poll()
        await server.trim_caller_changes()
        assert (await server._db.rows(count))[0][0] == 0
        _same_as_sqlite(server, SqliteCallerIndex(path))
    finally:
        await cli.close()
        await server.close()


async def test_while_a_build_runs_the_log_is_kept_from_where_it_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()
    real = CallerSnapshot.build

    def slow_build(rows, folder):  # type: ignore[no-untyped-def]
        release.wait(30)
        return real(rows, folder)

    path = tmp_path / "slow.db"
    server = await _started(path)
    try:
        keeper = server.caller_index.snapshot
        assert keeper is not None
        await server.import_clients([_client(f"C{i}", [f"+7916123{i:04d}"]) for i in range(3)])
        server.caller_index.match(normalize("+79161230001"), 10)  # sees the 3 changes
        assert keeper.trim_point == 3
        monkeypatch.setattr(CallerSnapshot, "build", staticmethod(slow_build))
        keeper.rebuild()  # the build waits, holding the log position it reads at its start
        await server.create_client(_client("During", ["+79031234567"]))
        keeper.poll()
        assert keeper.trim_point == 3
        release.set()
        assert keeper.wait() and keeper.trim_point >= 4
        _same_as_sqlite(server, SqliteCallerIndex(path))
    finally:
        release.set()
        await server.close()


async def test_a_build_that_keeps_failing_waits_longer_each_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _started(tmp_path / "fail.db")
    try:
        keeper = store.caller_index.snapshot
        assert keeper is not None

        def broken(rows, folder):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

        monkeypatch.setattr(CallerSnapshot, "build", staticmethod(broken))
        waits = []
        for _ in range(3):
            keeper.rebuild()  # due now, whatever the back-off said
            assert not keeper.wait()
            waits.append(keeper._next_allowed)
        assert keeper.installed is None and waits[0] < waits[1] < waits[2]
        await store.create_client(_client("Still", ["+79161234567"]))  # SQLite answers
        assert [m.client_name for m in store.caller_index.match(
            normalize("+79161234567"), 10)] == ["Still"]
    finally:
        await store.close()

"""Review findings on the caller index's snapshot (caller_snapshot.py, caller_snapshot_keeper.py):
a hand-written value that is not text, a write whose commit is cancelled, a build that ends
between the keeper's two looks at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.phones import normalize
from callcenter.store.sqlite import SqliteStore
from callcenter.store.sqlite_caller_index import SqliteCallerIndex
from tests.test_caller_numbers import _client


async def _started(path: Path) -> SqliteStore:
    store = await SqliteStore.open(path)
    store.caller_index.start_snapshot()
    assert store.caller_index.snapshot is not None and store.caller_index.snapshot.wait()
    return store


async def _blob_rev(store: SqliteStore, rev: bytes) -> None:
    """A caller_numbers row whose rev is a BLOB, as a hand-made fix in sqlite3 can leave (TEXT
    affinity keeps a blob a blob); SQL's text range never contains it."""
    phone = (await store._db.rows("SELECT id, contact_id FROM phones"))[0]
    await store._db.execute(
        "INSERT INTO caller_numbers (rev, contact_id, raw, phone_id, e164, client_id,"
        " client_name, contact_name, manager_id) VALUES (?, ?, 'x', ?, NULL, 1, 'x', 'x', NULL)",
        (rev, phone[1], phone[0]))


@pytest.mark.parametrize("when", ["before the build", "after the build"])
async def test_a_rev_that_is_not_text_breaks_no_lookup(tmp_path: Path, when: str) -> None:
    path = tmp_path / "blob.db"
    store = await SqliteStore.open(path)
    plain = SqliteCallerIndex(path)
    try:
        await store.create_client(_client("Base", ["+79161234567", "+79031234567"]))
        if when == "before the build":
            await _blob_rev(store, b"7654321619")
        store.caller_index.start_snapshot()
        keeper = store.caller_index.snapshot
        assert keeper is not None and keeper.wait()
        await store.create_client(_client("Next", ["+74951234567"]))  # a text rev is dirty too
        if when == "after the build":
            await _blob_rev(store, b"7654321619")
        for raw in ("+79161234567", "+79031234567", "+74951234567", "4567"):
            number = normalize(raw)
            assert store.caller_index.match(number, 10) == plain.match(number, 10), raw
        assert keeper.installed is not None  # and the snapshot still answers
    finally:
        plain.close()
        await store.close()


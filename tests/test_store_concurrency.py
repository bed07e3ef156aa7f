"""One database, many coroutines: writes are serialised, reads never wait for them."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from callcenter.models import FieldType, Role, TaskKind
from callcenter.phones import normalize
from callcenter.store.base import CallFilter, ClientInput, Conflict, ContactInput, PhoneInput
from callcenter.store.sqlite import SqliteStore


def _call_row(call_id: str) -> dict:
    return {"id": call_id, "line": "pbx", "direction": "inbound", "caller_raw": "+79161234567",
            "state": "missed", "ringing_at": "2026-01-01T10:00:00.000+00:00"}


async def test_two_concurrent_saves_both_land(store: SqliteStore) -> None:
    # Two console saves at once used to meet on one connection: the second BEGIN IMMEDIATE
    # failed with "cannot start a transaction within a transaction" (an HTTP 500).
    await store.create_custom_field("inn", "INN", FieldType.TEXT)
    a = await store.create_client(ClientInput("A"))
    b = await store.create_client(ClientInput("B"))
    saved = await asyncio.gather(
        store.update_client(a.id, name="A2", custom={"inn": "1"}),
        store.update_client(b.id, name="B2", custom={"inn": "2"}),
    )
    assert [(c.name, c.custom) for c in saved] == [("A2", {"inn": "1"}), ("B2", {"inn": "2"})]


async def test_a_plain_write_is_not_rolled_back_with_another_transaction(
        store: SqliteStore) -> None:
    user = await store.create_user("u", "U", Role.SECRETARY)
    await store.create_custom_field("inn", "INN", FieldType.TEXT)
    failing = ClientInput("Ghost", custom={"inn": "1", "nope": "x"},
                          contacts=[ContactInput("Ghost", phones=[
                              PhoneInput("+79160000000", normalize("+79160000000"))])])
    results = await asyncio.gather(store.create_client(failing), store.end_sessions(user.id),
                                   store.upsert_call(_call_row("c1")), return_exceptions=True)
    assert isinstance(results[0], Conflict)
    assert await store.session_epoch(user.id) == 1
    assert (await store.get_call("c1"))["state"] == "missed"
    assert await store.client_names() == []


async def test_200_concurrent_mixed_writes_all_land_and_the_failed_one_changes_nothing(
        store: SqliteStore) -> None:
    await store.create_custom_field("inn", "INN", FieldType.TEXT)
    users = [await store.create_user(f"u{i}", f"U{i}", Role.MANAGER) for i in range(5)]
    clients = [await store.create_client(ClientInput(f"Client {i}")) for i in range(20)]
    before = await store.list_clients(limit=1000)

    writes: list[tuple[str, object]] = []
    for i in range(199):
        kind = ("edit", "contact", "task", "call", "session")[i % 5]
        target = clients[i % len(clients)]
        if kind == "edit":
            writes.append((kind, store.update_client(
                target.id, notes=f"note {i}", custom={"inn": str(i)})))
        elif kind == "contact":
            writes.append((kind, store.add_contact(target.id, ContactInput(
                f"Contact {i}", phones=[PhoneInput(f"+7916{i:07d}",
                                                   normalize(f"+7916{i:07d}"))]))))
        elif kind == "task":
            writes.append((kind, store.create_task(TaskKind.REMINDER, f"task {i}",
                                                   client_id=target.id)))
        elif kind == "call":
            writes.append((kind, store.upsert_call(_call_row(f"call-{i}"))))
        else:
            writes.append((kind, store.end_sessions(users[i % len(users)].id)))
    # One client edit that fails validation half-way (an unknown custom field, after the name
    # was already updated inside its transaction): it must leave that client as it was.
    victim = clients[0]
    writes.insert(random.Random(7).randrange(len(writes)), ("bad", store.update_client(
        victim.id, name="Half-written", custom={"inn": "x", "no-such-field": "y"})))
    assert len(writes) == 200

    results = await asyncio.gather(*(w for _, w in writes), return_exceptions=True)

    failures = [(kind, r) for (kind, _), r in zip(writes, results, strict=True)
                if isinstance(r, BaseException)]
    assert [k for k, _ in failures] == ["bad"] and isinstance(failures[0][1], Conflict)
    after = {c.id: c for c in await store.list_clients(limit=1000)}
    assert len(after) == len(before)
    assert after[victim.id].name == victim.name
    last_edit: dict[int, int] = {}
    contacts: dict[int, set[str]] = {}
    for i in range(199):
        target = clients[i % len(clients)]
        if i % 5 == 0:
            last_edit[target.id] = max(last_edit.get(target.id, -1), i)
        elif i % 5 == 1:
            contacts.setdefault(target.id, set()).add(f"Contact {i}")
    for client_id, i in last_edit.items():
        # the writes ran one after another, in the order they were started
        assert after[client_id].notes == f"note {i}"
        assert after[client_id].custom == {"inn": str(i)}
    for client_id, names in contacts.items():
        assert {c.name for c in after[client_id].contacts} == names
    tasks = await store.list_tasks(limit=1000)
    assert sorted(t.title for t in tasks) == sorted(f"task {i}" for i in range(2, 199, 5))
    calls = {c["id"] for c in await store.list_calls(CallFilter(limit=1000))}
    assert calls == {f"call-{i}" for i in range(3, 199, 5)}
    epochs = [await store.session_epoch(u.id) for u in users]
    assert sum(epochs) == len(range(4, 199, 5))


async def test_reads_do_not_wait_for_an_open_write_transaction(store: SqliteStore) -> None:
    client = await store.create_client(ClientInput("Before"))
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow_save() -> None:
        async with store._db.transaction():
            await store._db.execute("UPDATE clients SET name = 'After' WHERE id = ?",
                                    (client.id,))
            inside.set()
            await release.wait()

    writer = asyncio.create_task(slow_save())
    await inside.wait()
    assert store._db.lock.locked()
    # The reader sees the last committed state at once; the timeout only bounds a failure.
    seen = await asyncio.wait_for(store.get_client(client.id), 10)
    assert seen.name == "Before"
    release.set()
    await writer
    assert (await store.get_client(client.id)).name == "After"


async def test_a_task_started_inside_a_transaction_does_not_share_it(
        store: SqliteStore) -> None:
    user = await store.create_user("u", "U", Role.SECRETARY)
    child: asyncio.Task[None] | None = None

    async def work() -> None:
        nonlocal child
        # A task created here copies the context; its write must wait for the lock rather
        # than slip into this transaction (and be rolled back with it).
        child = asyncio.create_task(store.end_sessions(user.id))
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store._transaction(work)
    assert child is not None
    await child
    assert await store.session_epoch(user.id) == 1


async def _cancel_a_waiting_begin(store: SqliteStore) -> asyncio.Task[object]:
    """Start a transaction while another connection holds the write lock, and cancel it once
    its BEGIN IMMEDIATE is queued on the write connection (as an HTTP client going away)."""
    task = asyncio.create_task(store.create_task(TaskKind.CALLBACK, "cancelled"))
    # The owner is set right before the BEGIN is queued; the task's next suspension is on it.
    while store._db._owner is None:
        await asyncio.sleep(0)
    task.cancel()
    return task


@pytest.mark.sqlite_only("another process holding the SQLite file's write lock")
@pytest.mark.parametrize("begin_gets_the_lock", [True, False])
async def test_a_cancelled_begin_does_not_leave_a_transaction_open(
        tmp_path: Path, begin_gets_the_lock: bool) -> None:
    # aiosqlite still runs a queued BEGIN after its caller is cancelled: once the other
    # process lets go it succeeds (long busy timeout), or it fails "locked" while the other
    # still holds the file (short one). Either way the store must come out of it outside a
    # transaction, and later writes commit.
    store = await SqliteStore.open(tmp_path / "c.db",
                                   busy_timeout_ms=60_000 if begin_gets_the_lock else 1)
    other = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        task = await _cancel_a_waiting_begin(store)
        if not begin_gets_the_lock:
            # The connection runs its queue in order: once this returns, the BEGIN has run
            # (and failed: the other connection still holds the lock).
            await store._db.writer.execute("SELECT 1")
        other.rollback()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.create_task(TaskKind.CALLBACK, "after")
        user = await store.create_user("u", "U", Role.SECRETARY)
        await store.end_sessions(user.id)  # a plain write
        assert not store._db.writer.in_transaction
        seen = [r[0] for r in other.execute("SELECT title FROM tasks")]
        assert seen == ["after"]
        assert other.execute("SELECT session_epoch FROM users WHERE id = ?",
                             (user.id,)).fetchone() == (1,)
    finally:
        other.close()
        await store.close()

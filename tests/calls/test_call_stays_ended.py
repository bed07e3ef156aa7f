"""An ended call stays ended: a late live sighting (an instance that lost the line writing its
queue after it was fenced, or replaying its journal at its restart) never reopens it, while a
call closed only because its line's process stopped is still re-adopted by the resync."""

from __future__ import annotations

from callcenter.store.sqlite import SqliteStore

_RANG = "2026-01-01T10:00:00.000+00:00"
_ENDED = "2026-01-01T10:02:00.000+00:00"


def _live(call_id: str) -> dict:
    return {"id": call_id, "line": "pbx", "direction": "inbound", "caller_raw": "+79161234567",
            "state": "answered", "ringing_at": _RANG, "answered_at": _RANG}


async def test_a_late_live_write_does_not_reopen_an_ended_call(store: SqliteStore) -> None:
    await store.upsert_call(_live("c1"))
    await store.upsert_call({**_live("c1"), "ended_at": _ENDED, "talk_seconds": 120})
    await store.upsert_call(_live("c1"))  # the old owner's late write, from before the end
    row = await store.get_call("c1")
    assert row["state"] == "answered"
    assert row["ended_at"] is not None
    assert row["talk_seconds"] == 120
    assert await store.close_dangling_calls("restart") == []


async def test_a_call_closed_at_a_restart_is_reopened_by_its_resync(store: SqliteStore) -> None:
    await store.upsert_call(_live("c2"))
    closed = await store.close_dangling_calls("callcenter stopped during the call")
    assert [r["id"] for r in closed] == ["c2"]
    await store.upsert_call(_live("c2"))  # the line still has it: re-adopted
    assert (await store.get_call("c2"))["ended_at"] is None
    # ... and its own end, once logged, is final again
    await store.upsert_call({**_live("c2"), "ended_at": _ENDED})
    await store.upsert_call(_live("c2"))
    assert (await store.get_call("c2"))["ended_at"] is not None

"""A call reopened after a takeover: the old owner of a line, fenced (or restarted with its
journal), writes a live sighting of a call the new owner already followed to its end. The
call stays ended in the log, once."""

from __future__ import annotations

from callcenter.calls.log import CallLog
from callcenter.store.postgres import PostgresStore

_RANG = "2026-01-01T10:00:00.000+00:00"


def _live(call_id: str) -> dict:
    return {"id": call_id, "line": "office", "direction": "inbound",
            "caller_raw": "+79161234567", "state": "answered", "ringing_at": _RANG,
            "answered_at": _RANG}


async def test_the_old_owners_late_write_after_takeover_does_not_reopen(pg_url: str) -> None:
    old, new = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    try:
        await old.upsert_call(_live("c1"))  # A: answered on its line; then A stops answering
        log_b = CallLog(new, close_dangling=False)
        assert await log_b.take_over("office") == 1  # B closes it and keeps it to re-adopt
        await new.upsert_call(_live("c1"))  # B's resync re-adopts it ...
        await new.upsert_call({**_live("c1"), "ended_at": "2026-01-01T10:05:00.000+00:00",
                               "talk_seconds": 300})  # ... and logs its end
        await old.upsert_call(_live("c1"))  # A's queued write, late, after it was fenced
        row = await new.get_call("c1")
        assert row["ended_at"] is not None
        assert row["talk_seconds"] == 300
        # not live in the log either: the next takeover finds nothing open on the line
        assert await new.close_dangling_calls("takeover", line="office") == []
    finally:
        await old.close()
        await new.close()

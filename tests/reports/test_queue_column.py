"""The queue a call waited in is kept in the call log (migration 0013), for the load report's
per-queue table; a later sighting without it keeps it."""

from __future__ import annotations

from datetime import UTC, datetime

from callcenter.calls.log import CallLog
from callcenter.calls.model import LiveCall
from callcenter.line_events import Direction, EndState
from callcenter.matching import CallerMatch
from callcenter.phones import Number, NumberKind
from callcenter.store.sqlite_reports import CallWhere


async def test_the_queue_is_logged_and_kept(store) -> None:
    log = CallLog(store)
    await log.start()
    rang = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
    number = "+79161234567"
    try:
        call = LiveCall(id="office:1", line="office", direction=Direction.INBOUND,
                        caller_raw=number, caller_name="", withheld=False,
                        called="74951110000", started_at=rang,
                        match=CallerMatch(Number(number, NumberKind.EXTERNAL, number)),
                        caller_e164=number, queue="sales", ended_at=rang + 30,
                        end_state=EndState.MISSED, client_phone=number)
        log.call_finished(call)
        await log.drained()
    finally:
        await log.stop()
    where = CallWhere("2026-03-01T00:00:00.000+00:00", "2026-03-03T00:00:00.000+00:00")
    assert await store.report_calls(where, ("queue",)) == [("sales",)]
    # re-seen without a queue (a re-adoption after a restart): the queue stays
    row = await store.get_call("office:1")
    await store.upsert_call({k: v for k, v in row.items() if k != "queue"})
    assert await store.report_calls(where, ("queue",)) == [("sales",)]

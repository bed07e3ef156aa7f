"""Withheld numbers in the call log and the replay window (issue 7, item 6): once a call is
known to be withheld, neither its stored row nor the events a console is replayed show the
number, the name or the client again (a late answer, a re-adoption after a restart)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callcenter.bus import BusEvent, EventBus
from callcenter.calls.log import CallLog
from callcenter.calls.registry import CallRegistry
from callcenter.demo import seed_demo
from callcenter.line_events import (
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    RingingChanged,
)
from callcenter.store.base import CallFilter
from callcenter.store.sqlite import SqliteStore
from tests.calls.harness import FAKE_HASH, call_core

RAW = "+79161234567"  # Ivan Petrov of ООО «Ромашка» in the demo data
CLIENT = "Ромашка"


@dataclass
class Core:
    store: SqliteStore
    bus: EventBus
    registry: CallRegistry
    log: CallLog
    events: list[BusEvent]

    async def row(self, call_id: str) -> dict:
        [row] = [c for c in await self.store.list_calls(CallFilter(limit=100))
                 if c["id"] == call_id]
        return row


async def _core(db: Path) -> tuple[Core, SqliteStore]:
    store = await SqliteStore.open(db)
    parts = await call_core(store)
    return Core(store, parts.bus, parts.registry, parts.log, parts.events), store


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    store = await SqliteStore.open(tmp_path / "w.db")
    await seed_demo(store, FAKE_HASH)
    await store.close()
    c, _ = await _core(tmp_path / "w.db")
    try:
        yield c
    finally:
        await c.log.stop()
        await c.store.close()


def inbound(key: str, at: float = 100.0, *, withheld: bool = False) -> CallStarted:
    return CallStarted("office", key, at, Direction.INBOUND, RAW, "Ivan Petrov", "74951110000",
                       withheld=withheld)


def shows_nothing(text: str) -> bool:
    return RAW not in text and "Ivan" not in text and CLIENT not in text


async def test_a_late_withheld_answer_reaches_the_row_and_the_replay_window(core: Core
                                                                           ) -> None:
    core.registry.handle(inbound("c1"))
    core.registry.handle(RingingChanged("c1", 101, ("101",)))
    await core.log.drained()
    assert (await core.row("c1"))["caller_raw"] == RAW  # shown: no answer in time
    shown = [(e.seq, e.topic) for e in core.bus.since(0) or []]
    assert not all(shows_nothing(e.text) for e in core.bus.since(0) or [])
    core.registry.handle(CallerChanged("c1", 102, withheld=True))
    await core.log.drained()
    row = await core.row("c1")  # while the call is still up (for ever, if killed now)
    assert (row["caller_raw"], row["caller_e164"], row["caller_name"], row["withheld"],
            row["client_id"], row["candidates"]) == ("", None, "", 1, None, [])
    replayed = core.bus.since(0) or []
    assert [(e.seq, e.topic) for e in replayed][:len(shown)] == shown  # same numbers
    for event in replayed:  # a console resuming from before the call gets no number
        assert shows_nothing(event.text) and shows_nothing(json.dumps(event.data,
                                                                      ensure_ascii=False))
        assert event.data["call"]["caller"]["withheld"] is True
        assert event.data["match"]["kind"] == "withheld"
    assert [e.data["extension"] for e in replayed if e.topic == "call.ringing"] == ["101"]


async def test_once_withheld_the_row_stays_withheld(core: Core) -> None:
    base = {"id": "c1", "line": "office", "direction": "inbound", "called": "74951110000",
            "state": "ringing", "ringing_at": "2026-12-01T10:00:00.000+00:00"}
    await core.store.upsert_call({**base, "caller_raw": "", "withheld": 1})
    [romashka] = [c for c in await core.store.list_clients() if CLIENT in c.name]
    await core.store.upsert_call({**base, "caller_raw": RAW, "caller_e164": RAW,
                                  "caller_name": "Ivan Petrov", "withheld": 0,
                                  "client_id": romashka.id,
                                  "candidates": [{"client_id": romashka.id}]})
    row = await core.row("c1")
    assert (row["caller_raw"], row["caller_e164"], row["caller_name"], row["withheld"],
            row["client_id"], row["candidates"]) == ("", None, "", 1, None, [])


async def test_a_withheld_call_re_adopted_after_a_restart_stays_withheld(
        tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "w.db")
    await seed_demo(store, FAKE_HASH)
    await store.upsert_call({"id": "c1", "line": "office", "direction": "inbound",
                             "caller_raw": "", "withheld": 1, "called": "74951110000",
                             "state": "ringing", "ringing_at": "2026-12-01T10:00:00.000+00:00"})
    await store.close()
    # the next run: the line re-adopts the call and did not learn the presentation again
    core, _ = await _core(tmp_path / "w.db")
    try:
        core.registry.handle(inbound("c1", 200.0))
        core.registry.handle(RingingChanged("c1", 201, ("101",)))
        core.registry.handle(CallEnded("c1", 230, EndState.MISSED))
        await core.log.drained()
        assert core.events
        for event in core.events:
            assert shows_nothing(event.text), event.topic
            assert event.data["match"]["kind"] == "withheld"
        row = await core.row("c1")
        assert (row["caller_raw"], row["caller_name"], row["withheld"],
                row["client_id"]) == ("", "", 1, None)
    finally:
        await core.log.stop()
        await core.store.close()

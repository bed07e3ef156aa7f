"""The call registry and the call log fed with line events directly (no AMI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callcenter.bus import BusEvent
from callcenter.calls.log import CallLog
from callcenter.calls.registry import CallRegistry
from callcenter.demo import seed_demo
from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    MissReason,
    RecordingStarted,
    RingingChanged,
    TransferKind,
    Transferred,
)
from callcenter.models import TaskKind
from callcenter.store.base import CallFilter
from callcenter.store.sqlite import SqliteStore
from tests.calls.harness import FAKE_HASH, call_core


@dataclass
class Core:
    store: SqliteStore
    registry: CallRegistry
    log: CallLog
    events: list[BusEvent]

    def feed(self, *events: object) -> None:
        for event in events:
            self.registry.handle(event)  # type: ignore[arg-type]


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    store = await SqliteStore.open(tmp_path / "r.db")
    await seed_demo(store, FAKE_HASH)
    parts = await call_core(store)
    log = parts.log
    try:
        yield Core(store, parts.registry, log, parts.events)
    finally:
        await log.stop()
        await store.close()


def inbound(key: str, number: str, at: float = 100.0) -> CallStarted:
    return CallStarted("office", key, at, Direction.INBOUND, number, "", "74951110000")


async def test_answered_call_closes_the_open_callback_task(core: Core) -> None:
    core.feed(inbound("c1", "89035556677"), RingingChanged("c1", 101, ("101",)),
              CallEnded("c1", 120, EndState.MISSED, MissReason.ABANDONED))
    await core.log.drained()
    [task] = await core.store.list_tasks(done=False)
    assert task.kind is TaskKind.CALLBACK and task.phone == "+79035556677"
    # Olga calls again, in another format, and gets through
    core.feed(inbound("c2", "+7 903 555-66-77", 200), Answered("c2", 205, "101"),
              CallEnded("c2", 260, EndState.ANSWERED))
    await core.log.drained()
    assert await core.store.list_tasks(done=False) == []
    [done] = await core.store.list_tasks(done=True)
    assert done.id == task.id


async def test_outbound_call_that_gets_through_closes_the_task(core: Core) -> None:
    await core.store.create_task(TaskKind.CALLBACK, "Call back", phone="+79031234567")
    core.feed(CallStarted("office", "o1", 10, Direction.OUTBOUND, "102", "", "89031234567",
                          originated=True),
              Answered("o1", 15, None, by_outside=True), CallEnded("o1", 30, EndState.ANSWERED))
    await core.log.drained()
    assert await core.store.list_tasks(done=False) == []


async def test_inactive_manager_hands_the_callback_to_the_secretaries(core: Core) -> None:
    dmitry, _ = await core.store.user_by_login("dmitry")
    await core.store.update_user(dmitry.id, active=0)
    core.feed(inbound("c1", "89035556677"), CallEnded("c1", 120, EndState.MISSED,
                                                      MissReason.ABANDONED))
    await core.log.drained()
    [task] = await core.store.list_tasks(done=False)
    assert task.assignee_id is None and task.assignee_role is not None


async def test_client_deleted_during_the_call_does_not_block_the_log(core: Core) -> None:
    core.feed(inbound("c1", "+79161234567"), Answered("c1", 101, "101"))
    await core.log.drained()
    [client] = [c for c in await core.store.list_clients() if c.name == "ООО «Ромашка»"]
    await core.store.delete_client(client.id)
    core.feed(CallEnded("c1", 150, EndState.ANSWERED),
              inbound("c2", "89162222222", 200), CallEnded("c2", 210, EndState.MISSED,
                                                           MissReason.ABANDONED))
    await core.log.drained()
    rows = {c["id"]: c for c in await core.store.list_calls(CallFilter())}
    assert rows["c1"]["state"] == "answered" and rows["c1"]["client_id"] is None
    assert rows["c2"]["state"] == "missed"  # the next call was not stuck behind it


async def test_transfer_moves_the_call_to_the_target(core: Core) -> None:
    core.feed(inbound("c1", "+79161234567"), Answered("c1", 101, "101"))
    assert core.registry.presence() == {"101": "busy"}
    core.feed(Transferred("c1", 110, TransferKind.BLIND, "101", "102"))
    assert core.registry.presence() == {"102": "busy"}
    live = core.registry.get("c1")
    assert live is not None and live.answered_ext == "101" and live.current_ext == "102"
    maria, _ = await core.store.user_by_login("maria")
    assert maria.id in live.users  # the new holder may see it


async def test_late_caller_id_finds_the_client(core: Core) -> None:
    core.feed(inbound("c1", "0000"))
    assert core.registry.get("c1").match_json["kind"] == "unknown"  # type: ignore[union-attr]
    core.feed(CallerChanged("c1", 101, caller_num="+79161234567"))
    snap = core.registry.snapshot(core.registry.get("c1"))  # type: ignore[arg-type]
    assert snap["match"]["client"]["name"] == "ООО «Ромашка»"


async def test_recording_is_known_at_once_and_fetched_after_the_call(core: Core) -> None:
    core.feed(inbound("c1", "+79161234567"), Answered("c1", 101, "101"),
              RecordingStarted("c1", 102, "/var/spool/asterisk/monitor/x.wav"))
    await core.log.drained()
    [rec] = (await core.store.get_call("c1"))["recordings"]
    assert rec["state"] == "pending"
    assert await core.store.due_recordings() == []  # still being written
    core.feed(CallEnded("c1", 150, EndState.ANSWERED))
    await core.log.drained()
    await core.store._db.execute(
        "UPDATE recordings SET next_try_at = '2000-01-01'")
    assert [r["pbx_path"] for r in await core.store.due_recordings()] == [
        "/var/spool/asterisk/monitor/x.wav"]


async def test_sweep_closes_calls_the_line_went_silent_about(core: Core) -> None:
    core.feed(inbound("ring", "+79161234567", 0.0), RingingChanged("ring", 0.0, ("101",)),
              inbound("talk", "89162222222", 0.0), Answered("talk", 1.0, "101"))
    assert core.registry.sweep(1800.0) == []
    assert core.registry.sweep(4000.0) == ["ring"]  # ringing for over an hour: not real
    assert core.registry.sweep(13 * 3600.0) == ["talk"]
    assert core.registry.live() == []
    assert [e.topic for e in core.events][-2:] == ["call.ended", "call.ended"]


async def test_a_late_withheld_hides_the_caller_and_the_client(core: Core) -> None:
    # The PBX's answer about the presentation came after the line gave up waiting (timeout):
    # the card already showed Olga; from now on nothing of her is shown or logged.
    core.feed(inbound("w1", "89035556677"), RingingChanged("w1", 101, ("101",)))
    assert core.events[-1].data["match"]["client"] is not None
    core.feed(CallerChanged("w1", 102, withheld=True),
              CallEnded("w1", 120, EndState.MISSED, MissReason.ABANDONED))
    await core.log.drained()
    for event in core.events[-2:]:
        assert event.data["call"]["caller"] == {"raw": "", "e164": None, "name": "",
                                                "withheld": True, "display": ""}
        assert event.data["match"]["kind"] == "withheld"
    [row] = await core.store.list_calls(CallFilter())
    assert (row["caller_raw"], row["withheld"], row["client_id"]) == ("", 1, None)
    assert await core.store.list_tasks(done=False) == []  # nobody to call back


async def test_ring_time_counts_only_the_ringing(core: Core) -> None:
    # rings 15 s, then the PBX's voicemail for 25 s: 15 s of ringing, not 40
    core.feed(inbound("r1", "89035556677", 100.0), RingingChanged("r1", 100.5, ("101", "102")),
              RingingChanged("r1", 115.5, ()), CallEnded("r1", 140.5, EndState.MISSED,
                                                          MissReason.NO_ANSWER))
    await core.log.drained()
    [row] = await core.store.list_calls(CallFilter())
    assert row["ring_seconds"] == 15.0



async def test_forget_line_drops_its_calls_unwritten_and_unpublished(core: Core) -> None:
    """A cluster instance that lost a line's lease: the new owner follows its calls."""
    core.feed(inbound("c1", "89035550001"),
              CallStarted("gsm1", "c2", 100.0, Direction.INBOUND, "89035550002", "", "2"))
    await core.log.drained()
    published = len(core.events)
    assert core.registry.forget_line("office") == ["c1"]
    assert [c.id for c in core.registry.live()] == ["c2"]
    assert len(core.events) == published
    await core.log.drained()
    [row] = [r for r in await core.store.list_calls(CallFilter()) if r["id"] == "c1"]
    assert row["ended_at"] is None  # left open for the line's new owner to close or re-adopt

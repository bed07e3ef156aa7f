"""callcenter restarts in the middle of a call: the call is closed sensibly at start, re-adopted
by the line's resync with its first times, and its recording is fetched whole after the end."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from callcenter.bus import BusEvent, EventBus
from callcenter.calls.log import CallLog
from callcenter.calls.registry import CallRegistry
from callcenter.config import PbxLineConfig, PhonesConfig, RecordingsConfig
from callcenter.demo import seed_demo
from callcenter.line_events import (
    Answered,
    CallEnded,
    CallStarted,
    Direction,
    EndState,
    MissReason,
    RingingChanged,
    TransferKind,
    Transferred,
)
from callcenter.matching import CallerMatcher
from callcenter.recordings import RecordingFetcher
from callcenter.store.sqlite import SqliteStore
from pbx.ami.emulator import (
    AmiEmulator,
    Responder,
    Segment,
    action_id_of,
    segments_from_trace,
)
from pbx.ami.message import Message
from pbx.ami.trace import BlockKind, load_trace
from pbx.asterisk_line import AsteriskLine
from tests.calls.harness import FAKE_HASH, call_core
from tests.conftest import FIXTURES

PBX = "/var/spool/asterisk/monitor"
CAUSE = "callcenter stopped during the call"
# 12_ami_reconnect_midcall: the call, its MixMonitor file, and its size once the call is over.
CALL = "office:1795389569.49"
WAV = "q-20261122-231929-1795389569.49.wav"
FINAL_SIZE = 169644


def unix(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def iso(value: float) -> str:
    from callcenter.calls.model import iso as model_iso

    result = model_iso(value)
    assert result is not None
    return result


@dataclass
class Process:
    """One run of callcenter's call path: registry, call log, line, recording fetcher."""

    store: SqliteStore
    registry: CallRegistry
    call_log: CallLog
    line: AsteriskLine
    fetcher: RecordingFetcher
    emulator: AmiEmulator
    events: list[BusEvent]
    changed: asyncio.Event


@contextlib.asynccontextmanager
async def process(db: Path, pbx: Segment, mount: Path, *, settle_seconds: float = 0,
                  responders: dict[str, Responder] | None = None) -> AsyncIterator[Process]:
    """callcenter's call path on the database ``db``, its PBX replaying ``pbx``."""
    emulator = await AmiEmulator([pbx], action_wait=0.3, auth_failure_delay=0,
                                 responders=responders).start()
    store = await SqliteStore.open(db)
    bus = EventBus()
    events: list[BusEvent] = []
    changed = asyncio.Event()

    def seen(event: BusEvent) -> None:
        events.append(event)
        changed.set()

    bus.subscribe(seen)
    call_log = CallLog(store)
    registry = CallRegistry(CallerMatcher(store.caller_index, PhonesConfig()),
                            store.caller_index, bus, call_log)
    fetcher = RecordingFetcher(store, RecordingsConfig(mount_path=str(mount), pbx_path=PBX,
                                                       retry_seconds=0,
                                                       settle_seconds=settle_seconds),
                               db.parent / "storage", poll_seconds=0.05)
    fetcher.storage.mkdir(exist_ok=True)
    await call_log.start()  # the order of call_handling(): the log, then the lines
    line = AsteriskLine(PbxLineConfig(name="office", port=emulator.port, username="crm",
                                      secret="crm-secret", trunk_endpoints=["trunk"]),
                        registry.handle)
    await line.start()
    try:
        yield Process(store, registry, call_log, line, fetcher, emulator, events, changed)
    finally:
        await line.stop()
        await call_log.stop()
        await fetcher.stop()
        await store.close()
        await emulator.close()


async def until(p: Process, condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Until the registry's state, re-checked at each of its bus events, satisfies it."""
    async with asyncio.timeout(timeout):
        while not condition():
            p.changed.clear()
            await p.changed.wait()


async def make_due(store: SqliteStore) -> None:
    await store._db.execute("UPDATE recordings SET next_try_at = NULL")


@dataclass
class MidCall:
    """The database of a run stopped in the middle of CALL, and what the second run needs."""

    db: Path
    mount: Path
    wav: Path
    second: Segment
    resync_end: int  # blocks of the second connection up to its resync's end
    first_ring: float
    first_answer: float


async def stopped_mid_call(tmp_path: Path) -> MidCall:
    first, second = segments_from_trace(load_trace(FIXTURES / "12_ami_reconnect_midcall.log"))
    resync_end = next(i for i, b in enumerate(second.blocks)
                      if b.data.startswith(b"Event: StatusComplete")) + 1
    mount = tmp_path / "mnt"
    mount.mkdir()
    wav = mount / WAV
    db = tmp_path / "cc.db"
    seeded = await SqliteStore.open(db)
    await seed_demo(seeded, FAKE_HASH)
    await seeded.close()

    # -- the first run: the call is answered and recorded, then callcenter stops ------------
    async with process(db, first, mount) as p:
        await until(p, lambda: (c := p.registry.get(CALL)) is not None
                    and c.answered_at is not None and c.recordings)
        await p.call_log.drained()
        wav.write_bytes(b"RIFF" + b"\0" * 40 + b"\1" * 16_000)  # MixMonitor is writing
    store = await SqliteStore.open(db)
    # The call began a minute before the restart (the times must survive, not be re-read).
    row = await store.get_call(CALL)
    assert row["state"] == "answered" and row["ended_at"] is None
    first_ring = unix(row["ringing_at"]) - 60
    first_answer = unix(row["answered_at"]) - 60
    await store._db.execute("UPDATE calls SET ringing_at = ?, answered_at = ? WHERE id = ?",
                            (iso(first_ring), iso(first_answer), CALL))
    await store.close()
    return MidCall(db, mount, wav, second, resync_end, first_ring, first_answer)


def the_end(m: MidCall) -> bytes:
    """The call's end as the PBX sends it after the resync (once the test has looked)."""
    return b"".join(b.data for b in m.second.blocks[m.resync_end:]
                    if b.kind is BlockKind.RECV and not b.data.startswith(b"Response: "))


async def test_restart_mid_call_keeps_first_times_and_fetches_the_whole_recording(
        tmp_path: Path) -> None:
    m = await stopped_mid_call(tmp_path)
    db, mount, wav, second, resync_end = m.db, m.mount, m.wav, m.second, m.resync_end
    first_ring, first_answer, ending = m.first_ring, m.first_answer, the_end(m)

    # -- the second run: the resync re-adopts the call, which is still up ------------------
    async with process(db, Segment(second.blocks[:resync_end]), mount) as p:
        await until(p, lambda: (c := p.registry.get(CALL)) is not None
                    and c.answered_at is not None)
        await p.call_log.drained()
        live = p.registry.get(CALL)
        assert live is not None
        assert (live.started_at, live.answered_at) == (first_ring, first_answer)
        assert live.answered_ext == "101" and live.recordings == [f"{PBX}/{WAV}"]
        row = await p.store.get_call(CALL)
        assert (row["state"], row["ended_at"], row["cause"]) == ("answered", None, "")
        assert (unix(row["ringing_at"]), unix(row["answered_at"])) == (
            first_ring, first_answer)

        # MixMonitor is still writing: however due its time, the file is not fetched.
        await make_due(p.store)
        assert await p.fetcher.fetch_due() == 0
        [rec] = row["recordings"]
        assert rec["state"] == "pending"
        wav.write_bytes(wav.read_bytes() + b"\2" * (FINAL_SIZE - wav.stat().st_size))

        await p.emulator.inject(ending)  # the caller hangs up
        await until(p, lambda: p.registry.get(CALL) is None)
        await p.call_log.drained()
        await make_due(p.store)
        assert await p.fetcher.fetch_due() == 1

        calls = await p.store._db.rows("SELECT id FROM calls")
        assert [c[0] for c in calls] == [CALL]  # one call, not a second one
        row = await p.store.get_call(CALL)
        assert row["state"] == "answered" and row["answered_by_ext"] == "101"
        assert row["cause"] != CAUSE and row["ended_at"] is not None
        assert (unix(row["ringing_at"]), unix(row["answered_at"])) == (
            first_ring, first_answer)
        assert row["talk_seconds"] >= 60  # counted from the first answer
        fetched = await p.store.get_recording(row["recordings"][0]["id"])
        assert fetched["state"] == "fetched" and fetched["size"] == FINAL_SIZE
        assert Path(fetched["local_path"]).read_bytes() == wav.read_bytes()
        interactions = await p.store._db.rows(
            "SELECT data FROM interactions WHERE ref = ?", (CALL,))
        # the recording counted, by the card; not named (a PBX path may hold the number)
        assert len(interactions) == 1 and json.loads(interactions[0][0])["recordings"] == 1
        assert [e.topic for e in p.events].count("call.ended") == 1


async def add_call(store: SqliteStore, call_id: str, state: str, *, answered: bool,
                   ended: bool, cause: str = "") -> None:
    await store.upsert_call({
        "id": call_id, "line": "office", "direction": "inbound", "state": state,
        "caller_raw": "+79161234567", "ringing_at": "2026-11-22T10:00:00.000+00:00",
        "answered_at": "2026-11-22T10:00:04.000+00:00" if answered else None,
        "answered_by_ext": "101" if answered else None,
        "ended_at": "2026-11-22T10:01:00.000+00:00" if ended else None,
        "cause": cause, "rang": ["102", "101"], "users": [3],
    })


async def test_close_dangling_calls_closes_only_the_calls_left_live(store: SqliteStore
                                                                    ) -> None:
    await add_call(store, "ringing", "ringing", answered=False, ended=False)
    await add_call(store, "talking", "answered", answered=True, ended=False)
    await add_call(store, "done", "answered", answered=True, ended=True, cause="16 Normal")
    await add_call(store, "missed", "missed", answered=False, ended=True, cause="127")
    await store.add_recording("talking", f"{PBX}/t.wav")
    before = {c["id"]: c for c in await store._list_calls_where("1 = 1", [], 10, 0)}

    closed = await store.close_dangling_calls(CAUSE)

    assert sorted(c["id"] for c in closed) == ["ringing", "talking"]
    talking = next(c for c in closed if c["id"] == "talking")
    assert talking["answered_at"] == before["talking"]["answered_at"]
    assert talking["rang"] == ["102", "101"] and talking["users"] == [3]
    assert talking["recordings"] == [f"{PBX}/t.wav"]
    after = {c["id"]: c for c in await store._list_calls_where("1 = 1", [], 10, 0)}
    # Ringing when we stopped: we cannot know how it ended.
    assert (after["ringing"]["state"], after["ringing"]["cause"]) == ("failed", CAUSE)
    # Answered when we stopped: still an answered call (with its answer), its end unknown.
    assert (after["talking"]["state"], after["talking"]["cause"]) == ("answered", CAUSE)
    assert after["talking"]["answered_at"] == before["talking"]["answered_at"]
    assert after["talking"]["talk_seconds"] is None
    for call_id in ("ringing", "talking"):
        assert after[call_id]["ended_at"] is not None  # not shown live any more
    # Calls that were over are history: untouched (an ended answered call is "answered" too).
    for call_id in ("done", "missed"):
        assert after[call_id] == before[call_id]
    assert await store.close_dangling_calls(CAUSE) == []  # the next start finds nothing


async def test_recording_of_a_call_whose_end_was_not_seen_waits_until_the_file_stops_growing(
        store: SqliteStore, tmp_path: Path) -> None:
    await add_call(store, "talking", "answered", answered=True, ended=False)
    await store.add_recording("talking", f"{PBX}/t.wav")
    mount = tmp_path / "mnt"
    mount.mkdir()
    wav = mount / "t.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 1000)
    fetcher = RecordingFetcher(store, RecordingsConfig(mount_path=str(mount), pbx_path=PBX,
                                                       settle_seconds=30), tmp_path / "s")
    await store.close_dangling_calls(CAUSE)  # the line never re-adopts it (the PBX is down)

    async def state() -> tuple[str, int | None]:
        [rec] = (await store.get_call("talking"))["recordings"]
        full = await store.get_recording(rec["id"])
        return full["state"], full["size"]

    assert await fetcher.fetch_due() == 0  # first look: the size is noted
    assert await fetcher.fetch_due() == 0  # not due again before settle_seconds
    await make_due(store)
    wav.write_bytes(wav.read_bytes() + b"\1" * 500)  # still growing: the call is still up
    assert await fetcher.fetch_due() == 0
    assert await state() == ("pending", None)
    await make_due(store)
    assert await fetcher.fetch_due() == 1  # the same size twice: MixMonitor is done
    assert await state() == ("fetched", 1504)


async def core(store: SqliteStore) -> tuple[CallRegistry, CallLog, list[BusEvent]]:
    await seed_demo(store, FAKE_HASH)
    parts = await call_core(store)
    return parts.registry, parts.log, parts.events


def inbound(key: str, at: float) -> CallStarted:
    return CallStarted("office", key, at, Direction.INBOUND, "+79161234567", "Ivan",
                       "74951110000")


async def test_call_re_adopted_after_the_start_is_reopened_not_duplicated(
        store: SqliteStore) -> None:
    """Order: dangling calls are closed when the call log starts, before the lines connect;
    the resync that re-adopts one afterwards reopens the same row with its first times."""
    await add_call(store, "office:1.1", "answered", answered=True, ended=False)
    await store.add_recording("office:1.1", f"{PBX}/a.wav")
    registry, call_log, events = await core(store)
    assert (await store.get_call("office:1.1"))["cause"] == CAUSE  # closed at start
    now = datetime.fromisoformat("2026-11-22T10:30:00+00:00").timestamp()
    registry.handle(inbound("office:1.1", now))  # the resync: answered at 102 after a transfer
    registry.handle(Answered("office:1.1", now, "102"))
    await call_log.drained()
    live = await store.get_call("office:1.1")
    assert (live["state"], live["ended_at"], live["cause"]) == ("answered", None, "")
    assert live["ringing_at"] == "2026-11-22T10:00:00.000+00:00"
    assert live["answered_at"] == "2026-11-22T10:00:04.000+00:00"
    call = registry.get("office:1.1")
    assert call is not None and call.answered_ext == "101" and call.current_ext == "102"
    assert call.rang == ["102", "101"] and 3 in call.users
    assert await store.due_recordings() == []  # live again: its file is still being written

    registry.handle(CallEnded("office:1.1", now + 10, EndState.ANSWERED, cause="16"))
    await call_log.drained()
    await call_log.stop()
    [row] = await store._list_calls_where("1 = 1", [], 10, 0)
    assert (row["state"], row["answered_by_ext"], row["cause"]) == ("answered", "101", "16")
    assert row["talk_seconds"] == now + 10 - unix("2026-11-22T10:00:04+00:00")
    assert [r["pbx_path"] for r in row["recordings"]] == [f"{PBX}/a.wav"]
    rows = await store._db.rows("SELECT count(*) FROM interactions WHERE ref = ?",
                                            ("office:1.1",))
    assert next(iter(rows))[0] == 1
    assert [e.topic for e in events] == ["call.updated", "call.answered", "call.ended"]


async def test_ringing_call_re_adopted_and_missed_gets_one_callback_task(
        store: SqliteStore) -> None:
    await add_call(store, "office:2.2", "ringing", answered=False, ended=False)
    registry, call_log, _ = await core(store)
    later = datetime.fromisoformat("2026-11-22T10:00:20+00:00").timestamp()
    registry.handle(inbound("office:2.2", later))
    registry.handle(RingingChanged("office:2.2", later, ("101",)))
    registry.handle(CallEnded("office:2.2", later + 5, EndState.MISSED, MissReason.ABANDONED))
    await call_log.drained()
    await call_log.stop()
    [row] = await store._list_calls_where("1 = 1", [], 10, 0)
    assert (row["state"], row["ringing_at"]) == ("missed", "2026-11-22T10:00:00.000+00:00")
    assert row["ring_seconds"] == 25.0 and row["rang"] == ["102", "101"]
    assert len(await store.list_tasks(done=False)) == 1


async def test_a_new_call_is_not_taken_for_a_re_adopted_one(store: SqliteStore) -> None:
    await add_call(store, "office:3.3", "answered", answered=True, ended=False)
    registry, call_log, _ = await core(store)
    at = datetime.fromisoformat("2026-11-22T11:00:00+00:00").timestamp()
    registry.handle(inbound("office:4.4", at))
    registry.handle(Answered("office:4.4", at + 2, "101"))
    await call_log.drained()
    await call_log.stop()
    row = await store.get_call("office:4.4")
    assert unix(row["ringing_at"]) == at and unix(row["answered_at"]) == at + 2
    assert (await store.get_call("office:3.3"))["cause"] == CAUSE
    assert timedelta(seconds=row["ring_seconds"]) == timedelta(seconds=2)


BLIND_TO_102 = {"kind": "blind", "from": "101", "to": "102",
                "at": "2026-11-22T10:00:30.000+00:00", "result": "success"}


async def test_answered_call_re_adopted_without_a_new_answer_stays_answered(
        store: SqliteStore) -> None:
    """The caller's own leg was up before the restart (a blind transfer to 102 is ringing, or
    the caller waits in a queue): the line re-adopts the call but reports no new answer."""
    await add_call(store, "office:1.1", "answered", answered=True, ended=False)
    await store._db.execute("UPDATE calls SET transfers = ? WHERE id = ?",
                            (json.dumps([BLIND_TO_102]), "office:1.1"))
    registry, call_log, events = await core(store)
    now = datetime.fromisoformat("2026-11-22T10:30:00+00:00").timestamp()
    registry.handle(inbound("office:1.1", now))
    call = registry.get("office:1.1")
    assert call is not None and call.answered_at == unix("2026-11-22T10:00:04+00:00")
    assert call.answered_ext == "101" and call.current_ext == "102"
    assert registry.presence() == {"102": "busy"}
    registry.handle(CallEnded("office:1.1", now + 10, EndState.MISSED, MissReason.ABANDONED))
    await call_log.drained()
    await call_log.stop()

    row = await store.get_call("office:1.1")
    assert (row["state"], row["reason"], row["answered_by_ext"]) == ("answered", None, "101")
    assert row["talk_seconds"] == now + 10 - unix("2026-11-22T10:00:04+00:00")
    assert await store.list_tasks(done=False) == []  # no callback for an answered call
    [(data,)] = await store._db.rows(
        "SELECT data FROM interactions WHERE ref = ?", ("office:1.1",))
    assert json.loads(data)["state"] == "answered"
    assert [e.topic for e in events] == ["call.updated", "call.ended"]
    assert registry._resumed == {}  # nothing kept for a call that is over


async def test_transfers_and_outside_answer_survive_the_re_adoption(store: SqliteStore
                                                                      ) -> None:
    await add_call(store, "office:1.1", "answered", answered=True, ended=False)
    await store._db.execute("UPDATE calls SET transfers = ? WHERE id = ?",
                            (json.dumps([BLIND_TO_102]), "office:1.1"))
    await store.upsert_call({
        "id": "office:6.6", "line": "office", "direction": "outbound", "state": "answered",
        "caller_raw": "101", "called": "+79161234567",
        "ringing_at": "2026-11-22T10:00:00.000+00:00",
        "answered_at": "2026-11-22T10:00:09.000+00:00", "answered_by_outside": 1})
    registry, call_log, _ = await core(store)
    now = datetime.fromisoformat("2026-11-22T10:30:00+00:00").timestamp()
    registry.handle(inbound("office:1.1", now))
    registry.handle(Answered("office:1.1", now, "102"))
    registry.handle(Transferred("office:1.1", now + 5, TransferKind.BLIND, "102", "103",
                                "success"))
    registry.handle(CallStarted("office", "office:6.6", now, Direction.OUTBOUND, "101", "",
                                "+79161234567"))
    await call_log.drained()  # the upserts of the live calls keep the stored transfers
    assert (await store.get_call("office:1.1"))["transfers"][0] == BLIND_TO_102
    registry.handle(CallEnded("office:1.1", now + 10, EndState.ANSWERED, cause="16"))
    registry.handle(CallEnded("office:6.6", now + 10, EndState.ANSWERED, cause="16"))
    await call_log.drained()
    await call_log.stop()

    row = await store.get_call("office:1.1")
    assert [t["to"] for t in row["transfers"]] == ["102", "103"]
    assert row["transfers"][0] == BLIND_TO_102
    outbound = await store.get_call("office:6.6")
    assert outbound["answered_by_outside"] == 1
    [(data,)] = await store._db.rows(
        "SELECT data FROM interactions WHERE ref = ?", ("office:6.6",))
    assert json.loads(data)["answered_by"]["outside"] is True


async def test_re_adopted_call_s_recording_gets_fresh_attempts_at_its_end(
        store: SqliteStore) -> None:
    """While the call was closed (not yet re-adopted) its file was tried and given up on
    (only a header, say); the call's real end makes it due again with its attempts reset."""
    await add_call(store, "office:1.1", "answered", answered=True, ended=False)
    await store.add_recording("office:1.1", f"{PBX}/given-up.wav")
    await store.add_recording("office:1.1", f"{PBX}/tried.wav")
    await store.close_dangling_calls(CAUSE)
    ids = {r["pbx_path"]: r["id"] for r in (await store.get_call("office:1.1"))["recordings"]}
    await store.update_recording(ids[f"{PBX}/given-up.wav"], state="failed", attempts=10)
    await store.update_recording(ids[f"{PBX}/tried.wav"], attempts=4)
    await store.add_recording("office:1.1", f"{PBX}/new.wav")  # started after the re-adoption
    await store._db.execute("UPDATE recordings SET last_error = 'no audio yet'")

    await store.schedule_recordings("office:1.1", delay=0)
    await make_due(store)
    recs = [await store.get_recording(r["id"])
            for r in (await store.get_call("office:1.1"))["recordings"]]
    assert [(r["pbx_path"].rsplit("/", 1)[1], r["state"], r["attempts"]) for r in recs] == [
        ("given-up.wav", "pending", 0), ("tried.wav", "pending", 0), ("new.wav", "pending", 0)]
    due = await store.due_recordings()
    assert len(due) == 3 and not any(r["until_stable"] for r in due)


async def test_fetcher_running_before_a_late_resync_waits_for_the_call_s_end(
        tmp_path: Path) -> None:
    """The fetcher's first rounds come before the line re-adopts the call (a PBX slow to list
    its channels): the recording of the closed call is looked at, not fetched; once the call
    is re-adopted and has ended it is fetched whole, once."""
    m = await stopped_mid_call(tmp_path)
    # The recorded CoreShowChannels answer is given only once the test opens the gate.
    send = next(i for i, b in enumerate(m.second.blocks)
                if b.kind is BlockKind.SEND and b"CoreShowChannels" in b.data)
    complete = next(i for i, b in enumerate(m.second.blocks)
                    if b.data.startswith(b"Event: CoreShowChannelsComplete")) + 1
    listing = b"".join(b.data for b in m.second.blocks[send + 1:complete])
    recorded_id = b"ActionID: " + action_id_of(m.second.blocks[send].data).encode()
    gate = asyncio.Event()

    async def late_listing(action: Message) -> list[bytes]:
        await gate.wait()
        return [listing.replace(recorded_id, f"ActionID: {action.action_id}".encode())]

    async with process(m.db, Segment(m.second.blocks[:send]), m.mount, settle_seconds=3600,
                       responders={"CoreShowChannels": late_listing}) as p:
        rounds = asyncio.Event()
        start_due = p.fetcher.start_due

        async def counted() -> list[asyncio.Task[bool]]:
            started = await start_due()
            await asyncio.gather(*started)
            rounds.set()
            return started

        p.fetcher.start_due = counted  # type: ignore[method-assign]
        await p.fetcher.start()

        async def seen_size() -> int | None:
            rows = await p.store._db.rows("SELECT seen_size FROM recordings")
            return next(iter(rows))[0]

        async with asyncio.timeout(30):  # the fetcher has looked at the file, twice
            for _ in range(2):
                rounds.clear()
                await rounds.wait()
            assert await seen_size() == m.wav.stat().st_size
        assert p.registry.get(CALL) is None  # not re-adopted yet
        [rec] = (await p.store.get_call(CALL))["recordings"]
        assert rec["state"] == "pending"

        gate.set()  # the resync: the call is up again
        await until(p, lambda: p.registry.get(CALL) is not None)
        await p.call_log.drained()
        assert await p.store.due_recordings() == []
        m.wav.write_bytes(m.wav.read_bytes() + b"\2" * (FINAL_SIZE - m.wav.stat().st_size))
        await p.emulator.inject(the_end(m))  # the caller hangs up
        await until(p, lambda: p.registry.get(CALL) is None)
        await p.call_log.drained()
        await make_due(p.store)  # not the 2 s MixMonitor is given to close the file
        async with asyncio.timeout(30):
            while (await p.store.get_recording(rec["id"]))["state"] != "fetched":
                rounds.clear()
                p.fetcher.wake()
                await rounds.wait()
        fetched = await p.store.get_recording(rec["id"])
        assert fetched["size"] == FINAL_SIZE and fetched["attempts"] == 0
        assert Path(fetched["local_path"]).read_bytes() == m.wav.read_bytes()


async def test_call_answered_before_the_restart_is_not_the_pbx_s_alone(store: SqliteStore
                                                                        ) -> None:
    """The line saw no person answer since the restart and calls the end the PBX's (its
    queue's music, say): the person who answered before the restart still did."""
    await add_call(store, "office:1.1", "answered", answered=True, ended=False)
    registry, call_log, _ = await core(store)
    now = datetime.fromisoformat("2026-11-22T10:30:00+00:00").timestamp()
    registry.handle(inbound("office:1.1", now))
    registry.handle(CallEnded("office:1.1", now + 10, EndState.ANSWERED, cause="16",
                              by_pbx=True))
    await call_log.drained()
    await call_log.stop()
    row = await store.get_call("office:1.1")
    assert (row["state"], row["handled_by_pbx"], row["answered_by_ext"]) == (
        "answered", 0, "101")

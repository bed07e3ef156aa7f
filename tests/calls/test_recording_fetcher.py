"""The recording fetcher's own rules: one try per file at a time, slots held until a copy really
ends, a stuck read never holds up a stop, a file still being written is not taken as final."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

import asyncssh

from callcenter import recordings
from callcenter.config import RecordingsConfig
from callcenter.recordings import RecordingFetcher
from callcenter.store.sqlite import SqliteStore

PBX = "/var/spool/asterisk/monitor"
CALL = "office:1.1"


async def ended_call(store: SqliteStore, *names: str) -> dict[str, int]:
    """An ended call with a due recording per name; returns name -> recording id."""
    await store.upsert_call({"id": CALL, "line": "office", "direction": "inbound",
                             "state": "answered", "ringing_at": "2026-11-22T10:00:00+00:00",
                             "answered_at": "2026-11-22T10:00:05+00:00",
                             "ended_at": "2026-11-22T10:01:00+00:00"})
    for name in names:
        await store.add_recording(CALL, f"{PBX}/{name}")
    await store._db.execute("UPDATE recordings SET next_try_at = NULL")
    return {r["pbx_path"].removeprefix(PBX + "/"): r["id"]
            for r in (await store.get_call(CALL))["recordings"]}


def mounted(tmp_path: Path, **changes: Any) -> tuple[Path, RecordingsConfig]:
    mount = tmp_path / "mnt"
    mount.mkdir(exist_ok=True)
    options: dict[str, Any] = {"retry_seconds": 0, **changes}
    return mount, RecordingsConfig(mount_path=str(mount), pbx_path=PBX, **options)


class StuckRead:
    """A copy stuck in a read (a hard-mounted NFS that stopped answering) for the files named;
    the others are copied for real."""

    def __init__(self, fetcher: RecordingFetcher, *stuck: str) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stuck = stuck
        self._copy = fetcher._copy_mounted
        fetcher._copy_mounted = self  # type: ignore[method-assign]

    async def __aenter__(self) -> StuckRead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()  # whatever the test found: no thread is left blocked

    def __call__(self, pbx_path: str, partial: Path) -> tuple[int, int, int]:
        if not pbx_path.endswith(self._stuck):
            return self._copy(pbx_path, partial)
        partial.write_bytes(b"RIFF")  # what came before the read stopped
        self.entered.set()
        self.release.wait()
        self._loop.call_soon_threadsafe(self.returned.set)
        raise OSError("stale file handle")


async def test_two_rounds_at_once_fetch_a_file_once(store: SqliteStore, tmp_path: Path
                                                    ) -> None:
    mount, config = mounted(tmp_path)
    (mount / "a.wav").write_bytes(b"RIFF" * 100)
    await ended_call(store, "a.wav")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    tries: list[int] = []
    fetch = fetcher._fetch

    async def counted(rec: dict[str, Any]) -> tuple[Path, int]:
        tries.append(rec["id"])
        return await fetch(rec)

    fetcher._fetch = counted  # type: ignore[method-assign]
    assert sorted(await asyncio.gather(fetcher.fetch_due(), fetcher.fetch_due())) == [0, 1]
    assert len(tries) == 1


async def test_a_stuck_read_keeps_its_slot_and_does_not_hold_up_the_stop(
        store: SqliteStore, tmp_path: Path) -> None:
    mount, config = mounted(tmp_path, parallel_fetches=1, fetch_timeout=0.2)
    (mount / "b.wav").write_bytes(b"RIFF" * 100)
    ids = await ended_call(store, "a.wav", "b.wav")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    async with StuckRead(fetcher, "a.wav") as stuck:
        assert await fetcher.fetch_due() == 0  # a.wav reached its time limit
        assert stuck.entered.is_set() and not stuck.release.is_set()
        failed = await store.get_recording(ids["a.wav"])
        assert (failed["attempts"], failed["last_error"]) == (1, "not fetched within 0.2 s")
        # Its read has not returned: the slot stays taken, no thread piles up behind it.
        assert await fetcher.start_due() == []

        await asyncio.wait_for(fetcher.stop(), 30)
        # What asyncio.run() does at exit: join the default executor. The stuck read is not
        # in it.
        await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), 30)
        assert not stuck.returned.is_set()  # the read is still blocked

        stuck.release.set()
        await asyncio.wait_for(stuck.returned.wait(), 30)
        await asyncio.wait_for(until_free(fetcher), 30)
        assert list((tmp_path / "s").rglob("*.part")) == []  # its partial file went with it


async def until_free(fetcher: RecordingFetcher) -> None:
    while fetcher._held:  # released by the copy's end, handed to the loop just after it
        await asyncio.sleep(0)


async def test_only_free_slots_start_and_the_lease_begins_with_the_slot(
        store: SqliteStore, tmp_path: Path) -> None:
    mount, config = mounted(tmp_path, parallel_fetches=1)
    (mount / "b.wav").write_bytes(b"RIFF" * 100)
    ids = await ended_call(store, "a.wav", "b.wav", "c.wav")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    async with StuckRead(fetcher, "a.wav") as stuck:
        [task] = await fetcher.start_due()
        await asyncio.to_thread(stuck.entered.wait, 30)
        rows = dict(await store._db.rows("SELECT id, next_try_at FROM recordings"))
        assert rows[ids["a.wav"]] is not None  # the file in its slot is leased
        assert rows[ids["b.wav"]] is None and rows[ids["c.wav"]] is None  # simply due
        assert await fetcher.start_due() == []  # no free slot

        await asyncio.wait_for(fetcher.stop(), 30)
        assert task.cancelled()
        # Cut short by the stop: due at the next start, not after fetch_timeout.
        assert [r["id"] for r in await store.due_recordings()] == list(ids.values())
        stuck.release.set()
        await asyncio.wait_for(stuck.returned.wait(), 30)


async def test_stray_partial_files_are_removed_at_start(store: SqliteStore, tmp_path: Path
                                                        ) -> None:
    _, config = mounted(tmp_path)
    stray = tmp_path / "s" / "0123456789abcdef" / ".1-a.wav.1a2b3c4d.part"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"RIFF")
    kept = stray.with_name("1-a.wav")
    kept.write_bytes(b"RIFF")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    await fetcher.start()
    await fetcher.stop()
    assert not stray.exists() and kept.exists()


async def test_file_growing_during_the_copy_is_not_taken_as_final(
        store: SqliteStore, tmp_path: Path, monkeypatch) -> None:
    mount, config = mounted(tmp_path, max_attempts=1)
    wav = mount / "a.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 1000)
    ids = await ended_call(store, "a.wav")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    copy = shutil.copyfileobj
    growing = [True]

    def copy_while_written(src: Any, dst: Any, length: int = 0) -> None:
        copy(src, dst, length)
        if growing.pop():
            with wav.open("ab") as more:  # MixMonitor flushes another buffer meanwhile
                more.write(b"\1" * 500)

    monkeypatch.setattr(shutil, "copyfileobj", copy_while_written)
    assert await fetcher.fetch_due() == 0
    rec = await store.get_recording(ids["a.wav"])
    # Not a failed attempt (max_attempts=1 would have given it up): simply not ready.
    assert (rec["state"], rec["attempts"]) == ("pending", 0)
    assert rec["last_error"] == "still being written (1504 bytes)"
    assert list((tmp_path / "s").rglob("*.wav*")) == []
    await store._db.execute("UPDATE recordings SET next_try_at = NULL")
    monkeypatch.setattr(shutil, "copyfileobj", copy)
    assert await fetcher.fetch_due() == 1
    rec = await store.get_recording(ids["a.wav"])
    assert rec["size"] == 1504 and Path(rec["local_path"]).read_bytes() == wav.read_bytes()


async def test_recording_of_an_unseen_end_holding_only_a_wav_header_is_not_ready(
        store: SqliteStore, tmp_path: Path) -> None:
    mount, config = mounted(tmp_path, settle_seconds=0)
    (mount / "a.wav").write_bytes(b"RIFF" + b"\0" * 40)  # 44 bytes: a header, no audio
    await store.upsert_call({"id": CALL, "line": "office", "direction": "inbound",
                             "state": "answered", "ringing_at": "2026-11-22T10:00:00+00:00",
                             "answered_at": "2026-11-22T10:00:05+00:00"})
    await store.add_recording(CALL, f"{PBX}/a.wav")
    await store.close_dangling_calls("callcenter stopped during the call")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    for _ in range(3):  # however often its size is the same
        assert await fetcher.fetch_due() == 0
        await store._db.execute("UPDATE recordings SET next_try_at = NULL")
    [rec] = (await store.get_call(CALL))["recordings"]
    rec = await store.get_recording(rec["id"])
    assert rec["state"] == "pending" and rec["attempts"] == 3
    assert "holds no audio yet (44 bytes)" in rec["last_error"]
    assert RecordingsConfig().settle_seconds > 60  # above NFS's attribute cache (acregmax)


async def test_two_recordings_of_a_call_with_one_file_name_are_both_kept(
        store: SqliteStore, tmp_path: Path) -> None:
    mount, config = mounted(tmp_path)
    for folder in ("in", "out"):
        (mount / folder).mkdir()
        (mount / folder / "a.wav").write_bytes(f"RIFF{folder}".encode())
    ids = await ended_call(store, "in/a.wav", "out/a.wav")
    fetcher = RecordingFetcher(store, config, tmp_path / "s")
    assert await fetcher.fetch_due() == 2
    kept = [Path((await store.get_recording(i))["local_path"]).read_bytes()
            for i in ids.values()]
    assert kept == [b"RIFFin", b"RIFFout"]


async def test_ssh_connection_that_does_not_close_is_aborted(
        store: SqliteStore, tmp_path: Path, monkeypatch) -> None:
    class Sftp:
        async def stat(self, path: str) -> asyncssh.SFTPAttrs:
            raise asyncssh.SFTPNoSuchFile("no such file")

        def exit(self) -> None:
            pass

    class Connection:
        aborted = False

        async def start_sftp_client(self) -> Sftp:
            return Sftp()

        def close(self) -> None:
            pass

        async def wait_closed(self) -> None:
            await asyncio.Event().wait()  # the peer never answers the close

        def abort(self) -> None:
            Connection.aborted = True

    async def connect(host: str, port: int, **options: object) -> Connection:
        return Connection()

    monkeypatch.setattr(asyncssh, "connect", connect)
    monkeypatch.setattr(recordings, "SSH_CLOSE_SECONDS", 0.01)
    await ended_call(store, "a.wav")
    fetcher = RecordingFetcher(store, RecordingsConfig(fetch="sftp", sftp_host="pbx",
                                                       pbx_path=PBX), tmp_path / "s")
    assert await fetcher.fetch_due() == 0
    assert Connection.aborted

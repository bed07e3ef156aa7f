"""Recordings: fetched from a mounted folder or over SFTP, retried, marked, never dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest

from callcenter.calls.log import CallLog
from callcenter.config import RecordingsConfig
from callcenter.recordings import RecordingFetcher
from callcenter.store.sqlite import SqliteStore

PBX = "/var/spool/asterisk/monitor"


async def new_call(store: SqliteStore, call_id: str = "office:1.1") -> None:
    await store.upsert_call({"id": call_id, "line": "office", "direction": "inbound",
                             "state": "answered", "ringing_at": "2026-11-22T10:00:00+00:00",
                             "answered_at": "2026-11-22T10:00:05+00:00",
                             "ended_at": "2026-11-22T10:01:00+00:00",
                             "candidates": [], "rang": [], "transfers": []})


async def make_due(store: SqliteStore) -> None:
    await store._db.execute("UPDATE recordings SET next_try_at = NULL")


async def test_mounted_folder_fetch_retry_and_give_up(store: SqliteStore, tmp_path: Path
                                                      ) -> None:
    mount = tmp_path / "mnt"
    (mount / "2026").mkdir(parents=True)
    (mount / "2026" / "a.wav").write_bytes(b"RIFF" + b"\0" * 100)
    config = RecordingsConfig(mount_path=str(mount), pbx_path=PBX, retry_seconds=0,
                              max_attempts=2)
    fetcher = RecordingFetcher(store, config, tmp_path / "storage")
    fetcher.storage.mkdir()
    await new_call(store)
    await store.add_recording("office:1.1", f"{PBX}/2026/a.wav")
    await store.add_recording("office:1.1", f"{PBX}/late.wav")
    await store.add_recording("office:1.1", "/etc/passwd")  # outside the PBX folder
    await make_due(store)
    assert await fetcher.fetch_due() == 1
    call = await store.get_call("office:1.1")
    states = {r["pbx_path"]: r["state"] for r in call["recordings"]}
    assert states == {f"{PBX}/2026/a.wav": "fetched", f"{PBX}/late.wav": "pending",
                      "/etc/passwd": "pending"}
    fetched = await store.get_recording(call["recordings"][0]["id"])
    assert Path(fetched["local_path"]).read_bytes().startswith(b"RIFF")
    assert fetched["size"] == 104

    (mount / "late.wav").write_bytes(b"RIFFlate")  # the PBX finished writing it
    await make_due(store)
    assert await fetcher.fetch_due() == 1
    await make_due(store)
    await fetcher.fetch_due()  # second failure of /etc/passwd: given up, and marked
    call = await store.get_call("office:1.1")
    states = {r["pbx_path"]: r["state"] for r in call["recordings"]}
    assert states[f"{PBX}/late.wav"] == "fetched"
    assert states["/etc/passwd"] == "failed"
    failed = await store.get_recording(call["recordings"][2]["id"])
    assert "outside the PBX recording folder" in failed["last_error"]


async def test_call_log_registers_recordings_for_fetching(store: SqliteStore) -> None:
    from callcenter.calls.model import LiveCall
    from callcenter.line_events import Direction, EndState
    from callcenter.matching import CallerMatch
    from callcenter.phones import normalize

    log = CallLog(store)
    await log.start()
    call = LiveCall("office:9.9", "office", Direction.INBOUND, "+79161234567", "", False,
                    "74951110000", 1.0, CallerMatch(normalize("+79161234567")),
                    answered_at=2.0, ended_at=5.0, end_state=EndState.ANSWERED,
                    recordings=[f"{PBX}/x.wav"])
    log.call_finished(call)
    await log.drained()
    await log.stop()
    row = await store.get_call("office:9.9")
    assert [r["state"] for r in row["recordings"]] == ["pending"]
    assert row["talk_seconds"] == 3.0 and row["ring_seconds"] == 1.0


class _Server(asyncssh.SSHServer):
    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == ("pbx", "sftp-secret")


@pytest.fixture
async def sftp_server(tmp_path: Path):
    root = tmp_path / "pbx-root"
    (root / PBX.lstrip("/")).mkdir(parents=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _Server, "127.0.0.1", 0, server_host_keys=[key],
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)),
    )
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {key.export_public_key().decode()}")
    try:
        yield root, port, known
    finally:
        server.close()
        await server.wait_closed()


async def test_sftp_fetch(store: SqliteStore, tmp_path: Path, sftp_server, caplog) -> None:
    root, port, known = sftp_server
    (root / PBX.lstrip("/") / "b.wav").write_bytes(b"RIFFsftp")
    config = RecordingsConfig(fetch="sftp", sftp_host="127.0.0.1", sftp_port=port,
                              sftp_username="pbx", sftp_password="sftp-secret",
                              sftp_known_hosts=str(known), pbx_path=PBX, retry_seconds=0)
    fetcher = RecordingFetcher(store, config, tmp_path / "storage")
    fetcher.storage.mkdir()
    await new_call(store)
    await store.add_recording("office:1.1", f"{PBX}/b.wav")
    await store.add_recording("office:1.1", f"{PBX}/missing.wav")
    await make_due(store)
    assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 1
    call = await store.get_call("office:1.1")
    ok = await store.get_recording(call["recordings"][0]["id"])
    assert Path(ok["local_path"]).read_bytes() == b"RIFFsftp"
    missing = await store.get_recording(call["recordings"][1]["id"])
    assert missing["state"] == "pending" and "does not exist" in missing["last_error"]

    bad = RecordingFetcher(store, RecordingsConfig(
        fetch="sftp", sftp_host="127.0.0.1", sftp_port=port, sftp_username="pbx",
        sftp_password="wrong-password-xyz", sftp_known_hosts=str(known), pbx_path=PBX,
        retry_seconds=0), tmp_path / "storage")
    await make_due(store)
    assert await asyncio.wait_for(bad.fetch_due(), 30) == 0
    missing = await store.get_recording(call["recordings"][1]["id"])
    assert "sftp 127.0.0.1" in missing["last_error"]
    assert "wrong-password-xyz" not in caplog.text + missing["last_error"]


class _FlakySftp(asyncssh.SFTPServer):
    """The PBX's SFTP server where one file hangs for ever and one cannot be read."""

    hanging: asyncio.Event

    async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if path.endswith(b"hang.wav"):
            self.hanging.set()
            await asyncio.Event().wait()  # a stale NFS under the PBX's spool, say
        if path.endswith(b"broken.wav"):
            raise asyncssh.SFTPPermissionDenied("permission denied")
        return super().open(path, pflags, attrs)


def sftp_config(port: int, known: Path, **changes: object) -> RecordingsConfig:
    options: dict[str, object] = {"retry_seconds": 0, **changes}
    return RecordingsConfig(fetch="sftp", sftp_host="127.0.0.1", sftp_port=port,
                            sftp_username="pbx", sftp_password="sftp-secret",
                            sftp_known_hosts=str(known), pbx_path=PBX,
                            **options)  # type: ignore[arg-type]


@pytest.fixture
async def flaky_sftp(tmp_path: Path):
    """An SFTP server with one.wav, two.wav, hang.wav (never opens) and broken.wav."""
    root = tmp_path / "pbx-root"
    (root / PBX.lstrip("/")).mkdir(parents=True)
    for name in ("one.wav", "two.wav", "hang.wav", "broken.wav"):
        (root / PBX.lstrip("/") / name).write_bytes(b"RIFF" + name.encode())
    hanging = asyncio.Event()

    def flaky(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        server = _FlakySftp(chan, chroot=str(root))
        server.hanging = hanging
        return server

    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(_Server, "127.0.0.1", 0, server_host_keys=[key],
                                          sftp_factory=flaky)
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {key.export_public_key().decode()}")
    try:
        yield port, known, hanging
    finally:
        server.close()
        await server.wait_closed()


async def add_files(store: SqliteStore, *names: str) -> dict[str, int]:
    await new_call(store)
    for name in names:
        await store.add_recording("office:1.1", f"{PBX}/{name}")
    await make_due(store)
    return {r["pbx_path"].rsplit("/", 1)[1]: r["id"]
            for r in (await store.get_call("office:1.1"))["recordings"]}


async def test_sftp_failing_or_hanging_file_does_not_hold_up_the_others(
        store: SqliteStore, tmp_path: Path, flaky_sftp) -> None:
    port, known, hanging = flaky_sftp
    # A time limit far above what the other three files take, even on a loaded machine.
    fetcher = RecordingFetcher(store, sftp_config(port, known, fetch_timeout=10.0,
                                                  retry_seconds=600), tmp_path / "storage")
    recs = await add_files(store, "one.wav", "hang.wav", "broken.wav", "two.wav")

    tasks = {t.get_name(): t for t in await fetcher.start_due()}
    hang = tasks.pop(f"recording-{recs['hang.wav']}")
    await asyncio.wait_for(hanging.wait(), 30)  # the server holds the open of hang.wav
    # The others are done while the hanging file is still being waited for.
    assert await asyncio.wait_for(asyncio.gather(*tasks.values()), 30) == [True, False, True]
    states = {name: await store.get_recording(i) for name, i in recs.items()}
    assert [states[n]["state"] for n in ("one.wav", "two.wav")] == ["fetched", "fetched"]
    assert Path(states["two.wav"]["local_path"]).read_bytes() == b"RIFFtwo.wav"
    assert states["broken.wav"]["state"] == "pending"
    assert "permission denied" in states["broken.wav"]["last_error"]
    assert states["hang.wav"]["state"] == "pending"  # in flight: not started twice
    assert await fetcher.start_due() == []

    # Stopping does not wait for the hanging file; its try counts for nothing and it is due
    # again at the next start (not after its lease).
    await asyncio.wait_for(fetcher.stop(), 30)
    assert hang.cancelled()
    hung = await store.get_recording(recs["hang.wav"])
    assert (hung["state"], hung["attempts"]) == ("pending", 0)
    assert [r["id"] for r in await store.due_recordings()] == [recs["hang.wav"]]


async def test_sftp_hanging_file_fails_at_its_time_limit_each_file_on_its_own_count(
        store: SqliteStore, tmp_path: Path, flaky_sftp) -> None:
    port, known, hanging = flaky_sftp
    fetcher = RecordingFetcher(store, sftp_config(port, known, fetch_timeout=0.5,
                                                  max_attempts=2), tmp_path / "storage")
    recs = await add_files(store, "hang.wav", "broken.wav")
    assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 0
    assert hanging.is_set()
    hung = await store.get_recording(recs["hang.wav"])
    assert hung["attempts"] == 1 and hung["last_error"] == "not fetched within 0.5 s"
    await make_due(store)
    assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 0
    for name in ("hang.wav", "broken.wav"):  # max_attempts, each file on its own count
        assert (await store.get_recording(recs[name]))["state"] == "failed"


async def test_sftp_server_that_never_answers_ssh_times_out(store: SqliteStore,
                                                             tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts TCP, never says a word of SSH
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text("")
    try:
        fetcher = RecordingFetcher(store, sftp_config(port, known, sftp_connect_timeout=0.5),
                                   tmp_path / "storage")
        await new_call(store)
        await store.add_recording("office:1.1", f"{PBX}/b.wav")
        await make_due(store)
        assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 0
        [rec] = (await store.get_call("office:1.1"))["recordings"]
        failed = await store.get_recording(rec["id"])
        assert failed["state"] == "pending" and failed["attempts"] == 1
        assert failed["last_error"] == f"sftp 127.0.0.1:{port}: no SSH login within 0.5 s"
    finally:
        server.close()
        await server.wait_closed()


async def test_sftp_connection_has_keepalives_and_limits(store: SqliteStore, tmp_path: Path,
                                                         monkeypatch) -> None:
    seen: dict[str, object] = {}

    async def connect(host: str, port: int, **options: object) -> None:
        seen.update(options)
        raise OSError("connection refused")

    monkeypatch.setattr(asyncssh, "connect", connect)
    fetcher = RecordingFetcher(store, sftp_config(22, tmp_path / "known", sftp_keepalive_seconds=7,
                                                  sftp_connect_timeout=9), tmp_path / "s")
    await new_call(store)
    await store.add_recording("office:1.1", f"{PBX}/b.wav")
    await make_due(store)
    assert await fetcher.fetch_due() == 0
    assert (seen["keepalive_interval"], seen["keepalive_count_max"]) == (7, 3)
    assert seen["connect_timeout"] == 9


async def test_sftp_recording_whose_call_end_was_not_seen_is_fetched_once_stable(
        store: SqliteStore, tmp_path: Path, sftp_server) -> None:
    root, port, known = sftp_server
    wav = root / PBX.lstrip("/") / "c.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 100)
    await store.upsert_call({"id": "office:5.5", "line": "office", "direction": "inbound",
                             "state": "answered", "ringing_at": "2026-11-22T10:00:00+00:00",
                             "answered_at": "2026-11-22T10:00:05+00:00"})
    await store.add_recording("office:5.5", f"{PBX}/c.wav")
    await store.close_dangling_calls("callcenter stopped during the call")
    fetcher = RecordingFetcher(store, sftp_config(port, known), tmp_path / "storage")
    assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 0  # size noted
    wav.write_bytes(wav.read_bytes() + b"\1" * 50)
    await make_due(store)
    assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 0  # it grew
    await make_due(store)
    assert await asyncio.wait_for(fetcher.fetch_due(), 30) == 1  # the same size twice
    [rec] = (await store.get_call("office:5.5"))["recordings"]
    assert (rec["state"], rec["size"]) == ("fetched", 154)


def test_recordings_limits_are_checked(tmp_path: Path) -> None:
    from callcenter.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text("[recordings]\nparallel_fetches = 0\n")
    with pytest.raises(ConfigError, match="parallel_fetches must be at least 1"):
        load_config(path, env={})
    path.write_text("[recordings]\nfetch_timeout = 0\n")
    with pytest.raises(ConfigError, match="fetch_timeout must be positive"):
        load_config(path, env={})

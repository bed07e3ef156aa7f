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

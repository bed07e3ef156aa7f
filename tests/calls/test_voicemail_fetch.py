"""VoiceMail() messages fetched from the PBX's voicemail spool (``[recordings]
voicemail_pbx_path``), mounted or over SFTP: the extension VM_MESSAGEFILE lacks is found, and
nothing outside the spool is read, neither by ``..`` nor through a symlink."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from callcenter.config import RecordingsConfig
from callcenter.recordings import RecordingFetcher
from callcenter.store.sqlite import SqliteStore
from pbx.ami.trace import Trace
from tests.calls.harness import replay
from tests.calls.synth import RINGGROUP, _find, changed, ringgroup_then_voicemail
from tests.calls.test_recordings import PBX, make_due, new_call, sftp_server  # noqa: F401

VM = "/var/spool/asterisk/voicemail"
INBOX = f"{VM}/default/101/INBOX"
AUDIO = b"RIFF" + b"\0" * 100


def mounted(tmp_path: Path, **changes: object) -> tuple[Path, RecordingsConfig]:
    monitor, spool = tmp_path / "monitor", tmp_path / "voicemail"
    monitor.mkdir()
    (spool / "default" / "101" / "INBOX").mkdir(parents=True)
    options: dict[str, object] = {"retry_seconds": 0, "max_attempts": 1, **changes}
    return spool, RecordingsConfig(mount_path=str(monitor), pbx_path=PBX,
                                   voicemail_mount_path=str(spool), voicemail_pbx_path=VM,
                                   **options)  # type: ignore[arg-type]


async def fetch(store: SqliteStore, config: RecordingsConfig, storage: Path,
                *paths: str) -> dict[str, dict[str, object]]:
    await new_call(store)
    for path in paths:
        await store.add_recording("office:1.1", path, kind="voicemail")
    await make_due(store)
    await asyncio.wait_for(RecordingFetcher(store, config, storage).fetch_due(), 30)
    call = await store.get_call("office:1.1")
    return {r["pbx_path"]: await store.get_recording(r["id"]) for r in call["recordings"]}


async def test_a_message_without_extension_is_found_in_its_formats(
        store: SqliteStore, tmp_path: Path) -> None:
    spool, config = mounted(tmp_path, voicemail_format="gsm")
    inbox = spool / "default" / "101" / "INBOX"
    (inbox / "msg0000.WAV").write_bytes(AUDIO)  # wav49
    (inbox / "msg0001.gsm").write_bytes(b"gsm" * 20)
    (inbox / "msg0001.wav").write_bytes(AUDIO)  # the configured format comes first
    (inbox / "msg0002.wav").write_bytes(AUDIO)  # named with its extension
    rows = await fetch(store, config, tmp_path / "s", f"{INBOX}/msg0000", f"{INBOX}/msg0001",
                       f"{INBOX}/msg0002.wav")
    assert [r["state"] for r in rows.values()] == ["fetched"] * 3
    names = [Path(str(r["local_path"])).name.split("-", 1)[1] for r in rows.values()]
    assert names == ["msg0000.WAV", "msg0001.gsm", "msg0002.wav"]
    assert Path(str(rows[f"{INBOX}/msg0001"]["local_path"])).read_bytes() == b"gsm" * 20


async def test_a_path_out_of_the_voicemail_spool_is_refused(
        store: SqliteStore, tmp_path: Path) -> None:
    spool, config = mounted(tmp_path)
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFFsecret")
    (spool / "default" / "101" / "INBOX" / "msg0003.wav").symlink_to(secret)
    climbing = f"{INBOX}/../../../../../../{secret.relative_to('/')}"
    rows = await fetch(store, config, tmp_path / "s", climbing, f"{INBOX}/msg0003",
                       "/var/spool/asterisk/voicemailx/msg0000.wav")
    assert [r["state"] for r in rows.values()] == ["failed"] * 3
    assert "outside the PBX recording folder" in str(rows[climbing]["last_error"])
    assert "leads out of its folder" in str(rows[f"{INBOX}/msg0003"]["last_error"])
    assert not list((tmp_path / "s").rglob("*secret*"))
    assert b"RIFFsecret" not in b"".join(p.read_bytes() for p in (tmp_path / "s").rglob("*")
                                         if p.is_file())


async def test_a_message_over_sftp_from_the_same_server(
        store: SqliteStore, tmp_path: Path, sftp_server) -> None:  # noqa: F811
    root, port, known = sftp_server
    inbox = root / INBOX.lstrip("/")
    inbox.mkdir(parents=True)
    (inbox / "msg0000.wav").write_bytes(AUDIO)
    (root / "etc").mkdir()
    (root / "etc" / "secret.wav").write_bytes(b"RIFFsecret")
    (inbox / "msg0001.wav").symlink_to(root / "etc" / "secret.wav")
    config = RecordingsConfig(fetch="sftp", sftp_host="127.0.0.1", sftp_port=port,
                              sftp_username="pbx", sftp_password="sftp-secret",
                              sftp_known_hosts=str(known), pbx_path=PBX, voicemail_pbx_path=VM,
                              retry_seconds=0, max_attempts=1)
    rows = await fetch(store, config, tmp_path / "s", f"{INBOX}/msg0000", f"{INBOX}/msg0001",
                       f"{VM}/../../../etc/secret.wav")
    fetched, linked, climbing = rows.values()
    assert fetched["state"] == "fetched"
    assert Path(str(fetched["local_path"])).read_bytes() == AUDIO
    assert str(fetched["local_path"]).endswith("-msg0000.wav")
    assert linked["state"] == "failed" and "leads out" in str(linked["last_error"])
    assert climbing["state"] == "failed" and "outside" in str(climbing["last_error"])


def ringgroup_then_voicemail_app(message: str, *statuses: str) -> Trace:
    """``ringgroup_then_voicemail`` with ``VoiceMail(101@default,u)`` instead of ``Record()``:
    VM_MESSAGEFILE set at the beep, then the VMSTATUS values given (app_voicemail's)."""
    trace = ringgroup_then_voicemail()
    blocks = list(trace.blocks)
    record = _find(blocks, "Newexten", Application="Record")
    named = _find(blocks, "VarSet", Variable="RECORDED_FILE")
    at = blocks.index(named)
    blocks[blocks.index(record)] = changed(record, record.t, Application="VoiceMail",
                                           AppData="101@default,u")
    blocks[at] = changed(named, named.t, Variable="VM_MESSAGEFILE", Value=message)
    for i, status in enumerate(statuses, 1):
        blocks.insert(at + i, changed(named, named.t + 20.0 + i / 1000, Variable="VMSTATUS",
                                      Value=status))
    return replace(trace, blocks=tuple(blocks))


async def test_a_voicemail_app_message_is_claimed_on_success_and_fetched_from_the_spool(
        tmp_path: Path) -> None:
    spool, config = mounted(tmp_path)
    (spool / "default" / "101" / "INBOX" / "msg0000.WAV").write_bytes(AUDIO)  # wav49
    async with replay(tmp_path / "r", RINGGROUP,
                      trace=ringgroup_then_voicemail_app(f"{INBOX}/msg0000", "SUCCESS")) as r:
        await r.finish()
        [call] = await r.calls()
        assert [(x["pbx_path"], x["kind"]) for x in call["recordings"]][-1] == (
            f"{INBOX}/msg0000", "voicemail")
        [task] = await r.store.list_tasks(done=False)
        assert task.voicemail
        await make_due(r.store)
        await RecordingFetcher(r.store, config, tmp_path / "s").fetch_due()
        [message] = [x for x in (await r.store.get_call(call["id"]))["recordings"]
                     if x["kind"] == "voicemail"]
        assert message["state"] == "fetched"
        stored = await r.store.get_recording(message["id"])
        assert Path(stored["local_path"]).read_bytes() == AUDIO


@pytest.mark.parametrize(("message", "statuses"), [
    (f"{INBOX}/msg0000", ("FAILED",)),  # shorter than minsecs: app_voicemail deleted it
    (f"{INBOX}/msg0000", ()),  # named at the beep; no status: nothing known to be left
    (f"{VM}/../../../../etc/passwd", ("SUCCESS",)),  # a climb out of the spool
])
async def test_no_voicemail_claimed_without_a_message(
        tmp_path: Path, message: str, statuses: tuple[str, ...]) -> None:
    async with replay(tmp_path, RINGGROUP,
                      trace=ringgroup_then_voicemail_app(message, *statuses)) as r:
        await r.finish()
        [call] = await r.calls()
        assert [x for x in call["recordings"] if x["kind"] == "voicemail"] == []
        [task] = await r.store.list_tasks(done=False)  # they still waited for a person
        assert not task.voicemail
        [interaction] = [i for i in await r.store.list_interactions(call["client_id"])
                         if i.ref == call["id"]]
        assert "voicemail" not in interaction.summary


async def test_a_message_the_pbx_kept_no_file_of_is_no_message_not_an_error(
        store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, config = mounted(tmp_path)
    with caplog.at_level("INFO", logger="callcenter.recordings"):
        rows = await fetch(store, config, tmp_path / "s", f"{INBOX}/msg0007")
    [gone] = rows.values()
    assert gone["state"] == "failed"
    assert str(gone["last_error"]).startswith("no message: ")
    assert "no message on the PBX" in caplog.text
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]

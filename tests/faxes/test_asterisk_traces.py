"""The Asterisk fax line against the AMI emulator replaying the recorded fax traces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.config import FaxLineConfig
from callcenter.errors import LineUnavailable
from callcenter.faxes.jobs import RetryPolicy
from callcenter.models import ClientKind
from callcenter.phones import normalize
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite_faxes import FaxFilter
from fax.asterisk import AsteriskFaxLine
from fax.asterisk_events import AsteriskFaxTracker
from pbx.ami.emulator import AmiEmulator
from pbx.ami.message import Message
from pbx.ami.trace import load_trace, trace_messages
from tests.conftest import FIXTURES
from tests.faxes.fakes import Core, fax_core

INCOMING = "in-20261122-232725-1795390045.114.tif"


@contextlib.asynccontextmanager
async def asterisk_fax(tmp_path: Path, scenario: str) -> AsyncIterator[tuple[Core, Any, Any]]:
    outgoing = tmp_path / "pbx-outgoing"
    incoming = tmp_path / "pbx-incoming"
    outgoing.mkdir(exist_ok=True)
    incoming.mkdir(exist_ok=True)
    emulator = AmiEmulator(load_trace(FIXTURES / f"{scenario}.log"), action_wait=2.0,
                           auth_failure_delay=0)
    await emulator.start()
    async with fax_core(tmp_path, RetryPolicy(max_attempts=1), start=False) as core:
        acme = ClientInput("ACME LLC", ClientKind.COMPANY, None, contacts=[ContactInput(
            "Fax desk", "", phones=[PhoneInput("+7 495 765-43-21",
                                               normalize("+7 495 765-43-21"))])])
        await core.store.create_client(acme)
        config = FaxLineConfig(
            name="fax", kind="asterisk", port=emulator.port, secret="crm-secret",
            channel="PJSIP/{number}@faxtrunk", caller_id='"CRM Lab" <74951110000>',
            local_station_id="+7 495 111-00-00", poll_seconds=0.01,
            outgoing_pbx_path="/var/spool/asterisk/fax/outgoing",
            outgoing_mount_path=str(outgoing),
            incoming_pbx_path="/var/spool/asterisk/fax/incoming",
            incoming_mount_path=str(incoming))
        line = AsteriskFaxLine(config, core.service.sink("fax"))
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy(max_attempts=1))
        await line.start()
        await emulator.wait_for_client()
        await core.service.start()
        try:
            yield core, line, emulator
        finally:
            await line.stop()
            await emulator.close()


async def test_recorded_send_ends_sent_with_both_pages(tmp_path: Path) -> None:
    async with asterisk_fax(tmp_path, "09_fax_send") as (core, _line, emulator):
        job = await core.send(pages=2, number="+74957654321")
        originate = await emulator.wait_for_action("Originate")
        assert originate.get("Channel") == "PJSIP/+74957654321@faxtrunk"
        assert originate.get("Application") == "SendFAX"
        data = originate.get("Data") or ""
        assert data.startswith("/var/spool/asterisk/fax/outgoing/crm-fax-") and data.endswith(
            ".tif,fs")
        assert "FAXOPT(localstationid)=+7 495 111-00-00" in originate.get_all("Variable")
        assert "FAXOPT(ecm)=yes" in originate.get_all("Variable")
        done = await core.until_state(job["id"], "sent", "failed")
        assert done["state"] == "sent", done
        assert (done["pages_confirmed"], done["pages"]) == (2, 2)
        assert done["remote_station"] == "+7 495 765-43-21"
        # the per-page poll reached the PBX, and the page counter moved through "sending"
        assert emulator.actions_named("FAXSession")
        states = [e.data["fax"]["state"] for e in core.events if e.topic == "fax.status"]
        assert states[:3] == ["queued", "dialing", "sending"] and states[-1] == "sent"
        # the far end's ReceiveFAX (another channel, context fax-remote) is not our inbox
        assert await core.store.list_received_faxes(FaxFilter()) == []
        assert list((tmp_path / "pbx-outgoing").iterdir()) == []  # the copy is removed


async def test_recorded_reception_lands_in_the_inbox_matched_to_the_client(
        tmp_path: Path) -> None:
    (tmp_path / "pbx-incoming").mkdir(parents=True, exist_ok=True)
    tiff = tmp_path / "pbx-incoming" / INCOMING
    tiff.write_bytes(b"II*\x00 two pages")  # what ReceiveFAX left in the shared folder
    async with asterisk_fax(tmp_path, "10_fax_receive") as (core, line, _emulator):

        async def stored() -> list[dict[str, Any]]:
            return await core.store.list_received_faxes(FaxFilter())

        [fax] = await core.service.wait_for(stored)
        assert (fax["pages"], fax["ok"], fax["caller_raw"]) == (2, 1, "+74957654321")
        assert fax["remote_station"] == "+7 495 765-43-21"
        assert fax["client_name"] == "ACME LLC" and fax["matched_by"] == "caller_id"
        assert Path(fax["pdf"]).read_bytes().startswith(b"%PDF")
        async with asyncio.timeout(10):
            while not line.removed:
                line.picked_up.clear()
                await line.picked_up.wait()
        assert line.removed == [INCOMING] and not tiff.exists()
        received = [e for e in core.events if e.topic == "fax.received"]
        assert len(received) == 1 and received[0].data["fax"]["pages"] == 2
        history = await core.store.list_interactions(fax["client_id"])
        assert [i.ref for i in history] == [f"fax-in-{fax['id']}"]
        # the other session's OriginateResponse and the sender's SendFAX made no job
        assert await core.store.fax_jobs_in(("queued", "dialing", "sending", "sent",
                                             "failed")) == []


def test_fax_status_flip_takes_the_last_value() -> None:
    """FAILED/HANGUP a few ms before SUCCESS: the send is a success, with its pages."""
    tracker = AsteriskFaxTracker(["from-trunk"])
    tracker.expect("r1", "crm-fax-5001", 2)
    events = []
    for message in trace_messages(load_trace(FIXTURES / "09_fax_send.log")):
        events += tracker.feed(message.headers, tuple(message.get_all("FileName")))
    [result] = [e for e in events if type(e).__name__ == "FaxResult"]
    assert (result.outcome.value, result.pages_confirmed) == ("sent", 2)
    assert "HANGUP" in result.detail


def test_a_hangup_before_sendfax_is_never_a_success() -> None:
    tracker = AsteriskFaxTracker(["from-trunk"])
    tracker.expect("r1", "u1", 3)
    base = {"Channel": "PJSIP/faxtrunk-1", "Uniqueid": "u1", "Context": "from-trunk"}
    tracker.feed({"Event": "Newchannel", "ChannelState": "6", **base})
    tracker.feed({"Event": "VarSet", "Variable": "FAXSTATUS", "Value": "SUCCESS", **base})
    tracker.feed({"Event": "FAXStatus", "Operation": "send",
                  "Status": "FAX Transmission In Progress", **base})
    [result] = tracker.feed({"Event": "Hangup", "Cause": "16", **base})
    # The fax had started: pages may have reached the far end, so never a line error to retry.
    assert result.outcome.value == "failed" and result.pages_confirmed == 0


def test_a_hangup_mid_fax_keeps_the_pages_the_session_counted() -> None:
    tracker = AsteriskFaxTracker(["from-trunk"])
    tracker.expect("r1", "u1", 4)
    base = {"Channel": "PJSIP/faxtrunk-1", "Uniqueid": "u1", "Context": "from-trunk"}
    tracker.feed({"Event": "Newchannel", "ChannelState": "6", **base})
    tracker.feed({"Event": "FAXStatus", "Operation": "send",
                  "Status": "FAX Transmission In Progress", **base})
    tracker.sessions["7"] = "u1"
    [progress] = tracker.feed({"Event": "FAXSession", "SessionNumber": "7",
                               "Operation": "send", "PagesTransmitted": "2"})
    assert (progress.state, progress.page, progress.pages) == ("sending", 2, 4)
    [result] = tracker.feed({"Event": "Hangup", "Cause": "16", **base})
    assert (result.outcome.value, result.pages_confirmed) == ("failed", 2)


def test_originate_failure_reasons() -> None:
    for reason, outcome in (("5", "busy"), ("3", "no_answer"), ("8", "line_error")):
        tracker = AsteriskFaxTracker([])
        tracker.expect("r", "u", 1)
        assert tracker.bind_action("r", "a1") == []
        [result] = tracker.feed({"Event": "OriginateResponse", "ActionID": "a1",
                                 "Response": "Failure", "Reason": reason,
                                 "Uniqueid": "<unknown>"})
        assert result.outcome.value == outcome


async def test_check_logs_in_and_reads_the_version() -> None:
    from callcenter.faxes.ports import FaxEvent
    from pbx.ami.emulator import response

    def settings(message: Any) -> list[bytes]:
        return [response(message.action_id, ("Response", "Success"),
                         ("AMIversion", "11.0.0"), ("AsteriskVersion", "22.10.1"))]

    emulator = AmiEmulator([], auth_failure_delay=0, responders={"CoreSettings": settings})
    await emulator.start()
    sink: list[FaxEvent] = []
    try:
        good = AsteriskFaxLine(FaxLineConfig(port=emulator.port, secret="crm-secret"),
                               sink.append)
        result = await good.check()
        assert result.ok and result.facts == {"Asterisk": "22.10.1", "AMI": "11.0.0"}
        bad = AsteriskFaxLine(FaxLineConfig(port=emulator.port, secret="wrong"), sink.append)
        refused = await bad.check()
        assert not refused.ok and "secret" in refused.error
    finally:
        await emulator.close()


def test_a_send_whose_end_was_missed_is_failed_not_sent() -> None:
    tracker = AsteriskFaxTracker([])
    tracker.expect("r1", "u1", 3)
    base = {"Channel": "PJSIP/faxtrunk-7", "Uniqueid": "u1", "Context": "from-trunk"}
    tracker.feed({"Event": "Newchannel", "ChannelState": "6", **base})
    tracker.feed({"Event": "FAXStatus", "Operation": "send",
                  "Status": "FAX Transmission In Progress", **base})
    assert tracker.unfinished() == [("r1", "PJSIP/faxtrunk-7")]
    [result] = tracker.lost("r1")
    assert result.outcome.value == "unknown" and "unknown" in result.detail
    assert tracker.lost("r1") == [] and tracker.unfinished() == []


async def test_after_a_reconnect_a_send_that_ended_meanwhile_is_settled(tmp_path: Path
                                                                         ) -> None:
    """The recording up to the send's "FAX Transmission In Progress", then the connection
    drops and the rest (SendFAX, Hangup) is lost. After the new login the line asks Status
    for the channel, hears "No such channel" and ends the job failed, result unknown: never
    "sent", never retried (the far end may have every page), never left "sending"."""
    from pbx.ami.emulator import response
    from pbx.ami.trace import Block, BlockKind, Trace

    full = load_trace(FIXTURES / "09_fax_send.log")
    index = next(i for i, b in enumerate(full.blocks)
                 if b.data.startswith(b"Event: FAXStatus") and b"crm-fax-5001" in b.data
                 and b"In Progress" in b.data)
    cut = Trace(full.scenario, full.description, full.meta,
                [*full.blocks[:index + 1], Block(BlockKind.RECONNECT, full.blocks[index].t)])

    def no_channel(message: Any) -> list[bytes]:
        return [response(message.action_id, ("Response", "Error"),
                         ("Message", "No such channel"))]

    emulator = AmiEmulator(cut, action_wait=0.2, auth_failure_delay=0,
                           responders={"Status": no_channel})
    await emulator.start()
    async with fax_core(tmp_path, RetryPolicy(max_attempts=3), start=False) as core:
        config = FaxLineConfig(name="fax", port=emulator.port, secret="crm-secret",
                               channel="PJSIP/{number}@faxtrunk", poll_seconds=30,
                               outgoing_mount_path=str(tmp_path))
        line = AsteriskFaxLine(config, core.service.sink("fax"))
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy(max_attempts=3))
        await line.start()
        await emulator.wait_for_client()
        await core.service.start()
        try:
            job = await core.send(pages=2)
            await core.until_state(job["id"], "sending")
            await emulator.drop_client()
            done = await core.until_state(job["id"], "sent", "failed", "retry_scheduled")
            assert done["state"] == "failed" and "unknown" in done["detail"], done
            assert done["attempts"] == 1 and emulator.actions_named("Status")
        finally:
            await line.stop()
            await emulator.close()


async def test_cancel_hangs_up_the_fax_channel(tmp_path: Path) -> None:
    emulator = AmiEmulator(load_trace(FIXTURES / "09_fax_send.log"), action_wait=2.0,
                           auth_failure_delay=0)
    await emulator.start()
    async with fax_core(tmp_path, RetryPolicy(max_attempts=1), start=False) as core:
        config = FaxLineConfig(name="fax", port=emulator.port, secret="crm-secret",
                               channel="PJSIP/{number}@faxtrunk", poll_seconds=60,
                               outgoing_mount_path=str(tmp_path))
        line = AsteriskFaxLine(config, core.service.sink("fax"))
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy(max_attempts=1))
        await line.start()
        await emulator.wait_for_client()
        await core.service.start()
        try:
            job = await core.send(pages=2)
            await core.until_state(job["id"], "sending")
            admin = (await core.store.user_by_login("admin"))[0]  # type: ignore[index]
            await core.service.cancel(admin, job["id"])
            hangup = await emulator.wait_for_action("Hangup")
            assert hangup.get("Channel") == "PJSIP/faxtrunk-00000066"
            # The recording goes on to the end: every page got through, so it is sent.
            done = await core.until_state(job["id"], "sent", "failed", "cancelled")
            assert done["state"] == "sent" and done["cancel_requested"] == 1
        finally:
            await line.stop()
            await emulator.close()


class _Conn:
    """Just enough of AmiConnection for submit(): an Originate that fails in a chosen way."""

    connected = True

    def __init__(self, *args: Any, originate_error: Exception | None = None,
                 result_error: Exception | None = None, **kwargs: Any) -> None:
        self.originate_error = originate_error
        self.result_error = result_error

    async def originate(self, headers: Any, result_timeout: float | None = None) -> Any:
        from pbx.ami.connection import OriginateCall

        if self.originate_error is not None:
            raise self.originate_error
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.result_error is not None:
            result.set_exception(self.result_error)
        return OriginateCall("a-1", Message({"Response": "Success"}), result)

    async def close(self) -> None:
        self.connected = False


class _Events(list[Any]):
    def __init__(self) -> None:
        super().__init__()
        self.came = asyncio.Event()

    def __call__(self, event: Any) -> None:
        self.append(event)
        self.came.set()


async def _line_with(tmp_path: Path, conn: _Conn) -> tuple[AsteriskFaxLine, _Events]:
    events = _Events()
    config = FaxLineConfig(name="fax", outgoing_mount_path=str(tmp_path))
    line = AsteriskFaxLine(config, events)
    line._conn = conn  # type: ignore[assignment]
    return line, events


async def test_an_originate_lost_after_it_was_written_is_result_unknown(tmp_path: Path
                                                                         ) -> None:
    from callcenter.faxes.ports import ResultUnknown
    from pbx.ami.errors import AmiActionError, AmiConnectionLost

    doc = _document(tmp_path)
    line, _ = await _line_with(tmp_path, _Conn(originate_error=AmiConnectionLost("gone")))
    with pytest.raises(ResultUnknown):
        await line.submit("+74957654321", doc, job_id=1)
    refused = AmiActionError(Message({"Response": "Error", "Message": "no channel"}))
    line, _ = await _line_with(tmp_path, _Conn(originate_error=refused))
    with pytest.raises(LineUnavailable):
        await line.submit("+74957654321", doc, job_id=2)


async def test_no_originate_response_ends_the_send_result_unknown(tmp_path: Path) -> None:
    from pbx.ami.errors import AmiTimeout

    line, events = await _line_with(tmp_path, _Conn(result_error=AmiTimeout("no answer")))
    ref = await line.submit("+74957654321", _document(tmp_path), job_id=3)
    async with asyncio.timeout(5):
        await events.came.wait()
    [result] = events
    assert (result.job_ref, result.outcome.value, result.pages_confirmed) == (ref, "unknown", 0)
    await line.stop()


def _document(tmp_path: Path) -> Any:
    from callcenter.faxes.ports import FaxDocument, Paper, Resolution

    tiff = tmp_path / "doc.tif"
    tiff.write_bytes(b"II*\x00")
    return FaxDocument(tiff, 2, Resolution.FINE, Paper.A4, tmp_path / "thumb.png")


async def test_faxes_left_in_the_incoming_folder_are_stored_by_the_scan(tmp_path: Path
                                                                         ) -> None:
    """A crash between ReceiveFAX and storing, or a store that failed: the file is still in
    the incoming folder, and the scan (at start, then periodically) stores it once."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "in-1.tif").write_bytes(b"II*\x00first")
    (incoming / "in-2.tif").write_bytes(b"II*\x00second")
    (incoming / "notes.txt").write_text("not a fax")
    async with fax_core(tmp_path) as core:
        sink = core.service.sink("fax")
        failures = [RuntimeError("disk full")]

        def flaky(event: Any) -> object:
            if failures:
                raise failures.pop()
            return sink(event)

        config = FaxLineConfig(name="fax", incoming_mount_path=str(incoming))
        line = AsteriskFaxLine(config, flaky)
        assert await line.scan_incoming(settle=0) == 1  # the first store failed: kept
        assert sorted(p.name for p in incoming.iterdir()) == ["in-1.tif", "notes.txt"]
        assert await line.scan_incoming(settle=0) == 1
        assert sorted(p.name for p in incoming.iterdir()) == ["notes.txt"]
        rows = await core.store.list_received_faxes(FaxFilter())
        assert len(rows) == 2 and {r["ok"] for r in rows} == {0}
        assert all("missed" in r["detail"] for r in rows)
        # A file still being written (changed just now) is left for later.
        (incoming / "in-3.tif").write_bytes(b"II*\x00third")
        assert await line.scan_incoming() == 0 and (incoming / "in-3.tif").exists()


async def test_a_received_fax_whose_file_never_appears_is_in_the_inbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fax.asterisk
    from fax.asterisk_events import Reception

    monkeypatch.setattr(fax.asterisk, "FILE_WAIT", 0.0)
    async with fax_core(tmp_path) as core:
        config = FaxLineConfig(name="fax", incoming_pbx_path="/var/spool/asterisk/fax/in",
                               incoming_mount_path=str(tmp_path / "in"))
        line = AsteriskFaxLine(config, core.service.sink("fax"))
        await line._pick_up(Reception(("/var/spool/asterisk/fax/in/x.tif",), 2,
                                      "+79161234567", "ACME", True, "", 0.0))
        [row] = await core.store.list_received_faxes(FaxFilter())
        assert (row["ok"], row["pages"]) == (0, 2) and "did not appear" in row["detail"]
        assert row["detail"].startswith("file missing")


@pytest.mark.parametrize(("error", "outcome"), [
    ("HANGUP", "line_error"), ("RETRAIN", "line_error"), ("TIMEOUT", "line_error"),
    ("NEGOTIATE", "failed"), ("INCOMPATIBLE", "failed"), ("FILE_ERROR", "failed")])
def test_a_sendfax_with_no_page_is_retried_only_for_line_errors(error: str, outcome: str
                                                               ) -> None:
    tracker = AsteriskFaxTracker([])
    tracker.expect("r1", "u1", 2)
    base = {"Channel": "PJSIP/faxtrunk-1", "Uniqueid": "u1", "Context": "x"}
    tracker.feed({"Event": "Newchannel", "ChannelState": "6", **base})
    tracker.feed({"Event": "VarSet", "Variable": "FAXSTATUS", "Value": "FAILED", **base})
    tracker.feed({"Event": "VarSet", "Variable": "FAXERROR", "Value": error, **base})
    [result] = tracker.feed({"Event": "SendFAX", "PagesTransferred": "0", **base})
    assert (result.outcome.value, result.pages_confirmed) == (outcome, 0)
    assert error in result.detail


def test_the_tracker_forgets_channels_and_sessions() -> None:
    import fax.asterisk_events as events

    tracker = AsteriskFaxTracker([])
    for n in range(events._KEEP_CHANNELS + 50):  # channels whose Hangup never came
        tracker.feed({"Event": "Newchannel", "Uniqueid": f"u{n}", "Channel": f"PJSIP/x-{n}"})
    assert len(tracker._channels) == events._KEEP_CHANNELS
    assert "u0" not in tracker._channels and f"u{events._KEEP_CHANNELS + 49}" in tracker._channels
    tracker.sessions["3"] = "u2049"
    tracker.feed({"Event": "Hangup", "Uniqueid": "u2049", "Channel": "PJSIP/x-2049"})
    assert tracker.sessions == {} and "u2049" not in tracker._channels

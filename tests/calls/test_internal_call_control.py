"""Call control on extension-to-extension calls (no trunk leg), and the MixMonitor ids of
ended calls (issue 7, item 8): through the real AsteriskLine and AmiConnection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.line_events import Answered, CallEnded
from pbx.ami.emulator import response
from pbx.ami.message import Message
from tests.calls.harness import LinePbx as Pbx
from tests.calls.harness import line_pbx, replay

KEY = "office:300.1"
CALLER = {"Channel": "PJSIP/101-00000020", "Uniqueid": "300.1", "Linkedid": "300.1",
          "Context": "from-internal", "Exten": "102", "CallerIDNum": "101",
          "CallerIDName": "Secretary"}
CALLED = {"Channel": "PJSIP/102-00000021", "Uniqueid": "300.2", "Linkedid": "300.1",
          "Context": "from-internal", "Exten": "s", "CallerIDNum": "102",
          "CallerIDName": "Manager Two"}


def event(name: str, headers: dict[str, str], **extra: str) -> bytes:
    return response(None, ("Event", name), *headers.items(), *extra.items())


def dial(name: str, **extra: str) -> bytes:
    return event(name, CALLER, DestChannel=CALLED["Channel"],
                 DestUniqueid=CALLED["Uniqueid"], **extra)


RINGING = [
    event("Newchannel", CALLER, ChannelState="4"),
    event("Newchannel", CALLED, ChannelState="0"),
    dial("DialBegin", DialString="PJSIP/102"),
    event("Newstate", CALLED, ChannelState="5"),
]
ANSWER = [
    event("Newstate", CALLED, ChannelState="6"),
    dial("DialEnd", DialStatus="ANSWER"),
    event("Newstate", CALLER, ChannelState="6"),
]
HANGUP = [event("Hangup", CALLED, Cause="16"), event("Hangup", CALLER, Cause="16")]


def _success(action: Message) -> list[bytes]:
    extra = [("MixMonitorID", "0x7f01")] if action.get("Action") == "MixMonitor" else []
    return [response(action.action_id, ("Response", "Success"), *extra)]


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    names = ("Hangup", "MixMonitor", "StopMixMonitor", "Redirect", "BlindTransfer", "Atxfer")
    async with line_pbx(dict.fromkeys(names, _success)) as state:
        yield state


async def test_hang_up_an_internal_call(pbx: Pbx) -> None:
    await pbx.play(RINGING + ANSWER, Answered)
    await pbx.line.hangup(KEY)
    assert pbx.sent("Hangup")["Channel"] == "PJSIP/101-00000020"


async def test_record_an_internal_call_and_forget_the_id_when_it_ends(pbx: Pbx) -> None:
    await pbx.play(RINGING + ANSWER, Answered)
    path = await pbx.line.start_recording(KEY)
    assert path.startswith("/var/spool/asterisk/monitor/crm-300.1-")
    assert pbx.sent("MixMonitor")["Channel"] == "PJSIP/101-00000020"
    await pbx.line.stop_recording(KEY)
    assert pbx.sent("StopMixMonitor") == {"Channel": "PJSIP/101-00000020", "Exten": None,
                                          "MixMonitorID": "0x7f01"}
    await pbx.line.start_recording(KEY)
    assert KEY in pbx.line._mixmonitor_ids
    await pbx.play(HANGUP, CallEnded)
    assert pbx.line._mixmonitor_ids == {}  # one entry per recorded call was kept for ever


async def test_redirect_a_ringing_internal_call_moves_the_caller(pbx: Pbx) -> None:
    await pbx.emulator.inject(b"".join(RINGING))
    await pbx.until(lambda: pbx.line.correlator.live_calls() == [KEY])
    await pbx.line.redirect(KEY, None, "103")
    assert pbx.sent("Redirect") == {"Channel": "PJSIP/101-00000020", "Exten": "103",
                                    "MixMonitorID": None}


async def test_transfers_of_an_answered_internal_call_use_the_right_leg(pbx: Pbx) -> None:
    await pbx.play(RINGING + ANSWER, Answered)
    await pbx.line.redirect(KEY, "102", "103")  # the party other than 102: the caller
    assert pbx.sent("Redirect")["Channel"] == "PJSIP/101-00000020"
    await pbx.line.blind_transfer(KEY, "102", "104")  # 102 hands its caller on
    assert pbx.sent("BlindTransfer")["Channel"] == "PJSIP/102-00000021"
    await pbx.line.attended_transfer(KEY, "101", "105")
    assert pbx.sent("Atxfer")["Channel"] == "PJSIP/101-00000020"
    # kept for an AttendedTransfer that may come without its target
    assert len(pbx.line.correlator._atxfers) == 1


async def test_recording_ids_of_a_recorded_trace_are_dropped_at_its_end(tmp_path: Path) -> None:
    async with replay(tmp_path, "07_mixmonitor_recording") as r:
        answered = await r.wait_event("call.answered")
        admin = await r.user("admin")
        assert await r.service.recording(admin, answered.data["call"]["id"], True)
        assert len(r.line._mixmonitor_ids) == 1
        await r.finish()  # never stopped by hand: the call ends
        assert r.line._mixmonitor_ids == {}

"""Click-to-call over SIP against kamailio: the line rings the user's own phone first; when it
answers, REFER hands it the client's number (sipp plays the client at the "carrier" kamailio
sends outside numbers to), then the line leaves the call. Each outcome is reported in words:
success, the client busy or not answering, the user's phone busy, and a phone that does not
support transfer (sipp as a static extension answering REFER with 405)."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.line_events import (
    CallEnded,
    CallStarted,
    Direction,
    EndState,
    MissReason,
    RingingChanged,
    Transferred,
)
from tests.sip.baresip import free_port
from tests.sip.kamailio_env import Recorder, kamailio, phone, sip_line
from tests.sip.sipp import run_sipp

CLIENT = "+74951234567"


async def click(line, rec: Recorder, extension: str = "101") -> CallEnded:
    key = await line.originate(extension, "+7 (495) 123-45-67", user_id=1)
    return await rec.wait_for(lambda e: isinstance(e, CallEnded) and e.call_key == key, 30)


async def test_click_to_call_reaches_the_client_after_the_phone_answers(tmp_path) -> None:
    carrier = free_port()
    rec = Recorder()
    async with kamailio(tmp_path, carrier=f"127.0.0.1:{carrier}") as pbx, \
            phone(tmp_path, pbx, "101") as manager, sip_line(pbx, rec) as line:
        client = asyncio.create_task(run_sipp("uas_answer.xml", "", {}, port=carrier,
                                              timeout=30))
        end = await click(line, rec)
        # the phone talks to the client now; the manager hangs up
        await manager.command("hangup")
        result = await client
        assert result.rc == 0, result.output
    start = rec.events[0]
    assert isinstance(start, CallStarted)
    assert (start.direction, start.caller_num, start.called_num, start.originated) == (
        Direction.OUTBOUND, "101", "+7 (495) 123-45-67", True)
    assert rec.events[1] == RingingChanged(start.call_key, start.at, ("101",))
    transfer = next(e for e in rec.events if isinstance(e, Transferred))
    assert (transfer.to, transfer.result) == ("+7 (495) 123-45-67", "success")
    assert end.state is EndState.ANSWERED
    assert "connected" in end.cause


@pytest.mark.parametrize(("scenario", "reason", "text"), [
    ("uas_busy.xml", MissReason.BUSY, "the number is busy"),
    ("uas_ring.xml", MissReason.NO_ANSWER, "the number did not answer"),
])
async def test_the_client_busy_or_not_answering(tmp_path, scenario, reason, text) -> None:
    carrier = free_port()
    rec = Recorder()
    async with kamailio(tmp_path, carrier=f"127.0.0.1:{carrier}") as pbx, \
            phone(tmp_path, pbx, "101") as manager, \
            sip_line(pbx, rec, transfer_timeout=2.0) as line:
        client = asyncio.create_task(run_sipp(scenario, "", {}, port=carrier, timeout=30))
        end = await click(line, rec)
        if scenario == "uas_ring.xml":
            await manager.command("hangup")  # the phone stops calling the client
        result = await client
        assert result.rc == 0, result.output
    assert (end.state, end.reason) == (EndState.MISSED, reason)
    assert text in end.cause
    transfer = next(e for e in rec.events if isinstance(e, Transferred))
    assert transfer.result == ("busy" if reason is MissReason.BUSY else "no_answer")


@pytest.mark.parametrize(("scenario", "state", "reason", "text"), [
    ("uas_busy.xml", EndState.MISSED, MissReason.BUSY, "your phone is busy"),
    ("uas_ring.xml", EndState.MISSED, MissReason.NO_ANSWER, "your phone did not answer"),
    ("uas_no_refer.xml", EndState.FAILED, MissReason.FAILED,
     "this phone does not support transfer"),
])
async def test_the_users_phone(tmp_path, scenario, state, reason, text) -> None:
    desk = free_port()
    rec = Recorder()
    async with kamailio(tmp_path, static={"102": f"127.0.0.1:{desk}"}) as pbx, \
            sip_line(pbx, rec, ring_timeout=1.0) as line:
        phone_task = asyncio.create_task(run_sipp(scenario, "", {}, port=desk, timeout=30))
        end = await click(line, rec, "102")
        result = await phone_task
        assert result.rc == 0, result.output
    assert (end.state, end.reason) == (state, reason)
    assert text in end.cause

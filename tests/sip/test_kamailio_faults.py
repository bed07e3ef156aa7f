"""Faults against the real PBX: kamailio restarted mid-test (the line re-registers and its
dialog subscriptions come back, refreshed in time, rebuilt after 481), and kamailio killed
while a call rings at the observer (the call ends failed, not ringing forever; the line goes
down and comes back)."""

from __future__ import annotations

import asyncio

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallStarted,
    EndState,
    MissReason,
    RingingChanged,
)
from callcenter.lines.lifecycle import LineState
from tests.sip.kamailio_env import Recorder, kamailio, phone, sip_line, wait_until
from tests.sip.sipp import free_udp_port, run_sipp


async def test_kamailio_restarted_and_the_subscriptions_come_back(tmp_path) -> None:
    rec = Recorder()
    async with kamailio(tmp_path) as pbx, \
            sip_line(pbx, rec, watch_extensions=("101",), register_expires=4,
                     subscribe_expires=4) as line:
        assert line.watcher is not None
        async with phone(tmp_path, pbx, "101"):
            await wait_until(lambda: line.presence() == {"101": "free"}, line.presence_changed)
            await asyncio.wait_for(line.watcher.established.wait(), 20)
            first_call_id = line.watcher.subs["101"].call_id
            await pbx.stop()
            await wait_until(lambda: line.status().state is LineState.DOWN, line.state_changed)
            await pbx.start()  # everything forgotten: registrations, subscriptions
        # the phone boots again too, and registers
        async with phone(tmp_path, pbx, "101"):
            await wait_until(lambda: line.status().state is LineState.UP, line.state_changed)
            # (the line rebuilt its subscriptions as it came up: established was cleared)
            await asyncio.wait_for(line.watcher.established.wait(), 20)
            assert line.watcher.subs["101"].call_id != first_call_id
            await wait_until(lambda: line.presence() == {"101": "free"}, line.presence_changed)
            # and a call to 101 pops again, from the new subscription's NOTIFYs
            sipp_port = free_udp_port()
            run = asyncio.create_task(run_sipp(
                "carrier_answered.xml", pbx.address, {"caller": "89161234567",
                                                      "caller_name": "Ivan"},
                port=sipp_port, service="101", extra=("-cid_str", "back%u"), timeout=30))
            ringing = await rec.wait_for(lambda e: isinstance(e, RingingChanged)
                                         and e.extensions == ("101",))
            from tests.sip.sipp import cue

            # the cue is the carrier's hang-up, which its scenario takes only once 101 (on
            # auto-answer) has answered: under load the answer can come after the ringing
            await rec.wait_for(lambda e: isinstance(e, Answered)
                               and e.call_key == ringing.call_key)
            cue(sipp_port, "back1")
            result = await run
            assert result.rc == 0, result.output
    assert ringing.call_key.startswith("sip:office:d:")


async def test_kamailio_killed_while_a_call_rings(tmp_path) -> None:
    rec = Recorder()
    async with kamailio(tmp_path, group="700", group_members=("101", "crm")) as pbx, \
            phone(tmp_path, pbx, "101", answer="manual"), sip_line(pbx, rec) as line:
        run = asyncio.create_task(run_sipp(
            "carrier_cancel_on_cue.xml", pbx.address,
            {"caller": "+79161234567", "caller_name": "R", "called": "700",
             "reason": "Subject: never sent"}, service="700", timeout=30))
        start = await rec.wait_for(lambda e: isinstance(e, CallStarted))
        await pbx.kill()  # no CANCEL will ever come
        end = await rec.wait_for(lambda e: isinstance(e, CallEnded))
        assert line.status().state is LineState.DOWN
        assert "stopped answering" in line.status().detail
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await pbx.start()
        await wait_until(lambda: line.status().state is LineState.UP, line.state_changed, 30)
    assert end.call_key == start.call_key
    assert (end.state, end.reason) == (EndState.MISSED, MissReason.FAILED)
    assert "PBX stopped answering" in end.cause

"""The Asterisk line under failure: a socket killed mid-call, malformed frames, a dead PBX."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from callcenter.config import PbxLineConfig
from callcenter.errors import LineUnavailable
from pbx.asterisk_line import AsteriskLine
from tests.calls.harness import replay

AFTER_BRIDGE = 92  # block index in 01_inbound_answered: the call is up and bridged


async def test_socket_killed_mid_call_resyncs_without_loss_or_duplicates(tmp_path: Path) -> None:
    async with replay(tmp_path, "01_inbound_answered") as r:
        r.emulator.kill_after_block(AFTER_BRIDGE)
        await r.finish()
        assert r.emulator.logins >= 2  # it really reconnected and logged in again
        calls = await r.calls()
        assert [(c["state"], c["answered_by_ext"], c["caller_raw"]) for c in calls] == [
            ("answered", "101", "+79161234567")]
        assert r.topics().count("call.ended") == 1
        assert r.topics().count("call.missed") == 0
        assert r.topics().count("call.answered") == 1


async def test_recorded_reconnect_keeps_one_call(tmp_path: Path) -> None:
    async with replay(tmp_path, "12_ami_reconnect_midcall") as r:
        await r.finish()
        assert len(r.emulator.actions_named("CoreShowChannels")) >= 2  # resync after relogin
        [call] = await r.calls()
        assert call["state"] == "answered" and call["answered_by_ext"] == "101"
        assert r.topics().count("call.ended") == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"this is not AMI at all\r\n\r\n",
        b"Event: Newchannel\r\nChannel: PJSIP/x\r\n",  # a frame missing its blank line...
        b"\r\n\r\n",  # ...closed here
        b"Event: Bogus\r\nValue: \xff\xfe\xc3\x28 invalid utf-8\r\n\r\n",
        b"Event: Huge\r\nData: " + b"x" * (10 * 1024 * 1024) + b"\r\n\r\n",
        b"Event: Hangup\r\nUniqueid: no-such-call\r\n\r\n",
    ],
    ids=["garbage", "no-blank-line", "blank", "invalid-utf8", "10MB-header", "unknown-call"],
)
async def test_malformed_frames_do_not_break_the_call(tmp_path: Path, garbage: bytes,
                                                      caplog) -> None:
    caplog.set_level(logging.WARNING)
    async with replay(tmp_path, "01_inbound_answered") as r:
        await r.wait_event("call.ringing")
        await r.emulator.inject(garbage)
        await r.finish()
        [call] = await r.calls()
        assert (call["state"], call["answered_by_ext"]) == ("answered", "101")
        assert r.line.connected or r.emulator.logins >= 2


async def test_unreachable_pbx_is_reported_and_actions_fail_clearly(unused_tcp_port: int
                                                                    ) -> None:
    events: list[object] = []
    line = AsteriskLine(PbxLineConfig(name="office", port=unused_tcp_port, secret="x"),
                        events.append, connect_retry_max=0.2)
    await line.start()
    try:
        for _ in range(200):
            if "cannot reach" in line.detail:
                break
            await asyncio.sleep(0.01)
        assert f"127.0.0.1:{unused_tcp_port}" in line.detail
        assert not line.connected
        with pytest.raises(LineUnavailable, match="not connected"):
            await line.originate("101", "89031234567", user_id=None)
    finally:
        await line.stop()
    assert events == []


async def test_record_calls_starts_mixmonitor_on_answer(tmp_path: Path) -> None:
    async with replay(tmp_path, "01_inbound_answered") as r:
        r.line.config.record_calls = True
        [action] = [await r.emulator.wait_for_action("MixMonitor", timeout=10)]
        await r.finish()
    assert action.get("Channel") == "PJSIP/trunk-00000000"  # the caller's leg: whole call
    assert action.get("File", "").startswith("/var/spool/asterisk/monitor/crm-")
    assert action.get("Options") == "bi(CRM_MIXMON_ID)"

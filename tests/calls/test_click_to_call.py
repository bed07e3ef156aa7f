"""Click-to-call on real dialplans: the dial format and the ring-first channel of the line, on
the Originate the PBX gets, and one call in the log for a Local-channel originate (trace 05
rebuilt with trace 04's Local pair, see tests/calls/synth.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.calls.harness import replay
from tests.calls.synth import CLICK, local_click_to_call

MON = "/var/spool/asterisk/monitor/"
RECORDING = MON + "out-20261122-230306-crm-c2c-0001.wav"


@pytest.mark.parametrize("channel_id", ["crm-c2c-0001", None])
async def test_local_channel_originate_logs_exactly_one_call(tmp_path: Path,
                                                              channel_id: str | None) -> None:
    """With a ChannelId the Local;1 leg is known by it; without, as the extension's first new
    channel (Local/102@... names extension 102)."""
    line = {"originate_channel": "Local/{ext}@from-internal", "dial_format": "national",
            "dial_prefix": "9"}
    async with replay(tmp_path, CLICK, trace=local_click_to_call(), line=line,
                      channel_ids=lambda: channel_id) as r:
        await r.connected()
        maria = await r.user("maria")
        await asyncio.wait_for(r.service.originate(maria, "+7 903 123-45-67"), 10)
        await r.finish()
        [action] = r.emulator.actions_named("Originate")
        assert [(k, action.get(k)) for k in ("Channel", "Context", "Exten", "CallerID",
                                              "ChannelId", "OtherChannelId")] == [
            ("Channel", "Local/102@from-internal"), ("Context", "from-internal"),
            ("Exten", "989031234567"), ("CallerID", '"+79031234567" <+79031234567>'),
            ("ChannelId", channel_id), ("OtherChannelId", channel_id and f"{channel_id}-b")]
        names = {c.id: c.name for c in await r.store.list_clients(limit=100)}
        # one call: the Local;1/;2 legs and the phone's own leg are all part of it
        [call] = await r.calls()
        assert (call["direction"], call["caller_raw"], call["called"],
                names.get(call["client_id"]), call["rang"], call["answered_by_ext"],
                call["state"], call["user_id"], [x["pbx_path"] for x in call["recordings"]]
                ) == ("outbound", "102", "+79031234567", "Vector Trade", ["102"], None,
                      "answered", maria.id, [RECORDING])
        assert call["talk_seconds"] is not None
        assert r.topics().count("call.answered") == 1 and r.topics()[-1] == "call.ended"


async def test_default_line_rings_pjsip_and_dials_as_entered(tmp_path: Path) -> None:
    async with replay(tmp_path, CLICK, channel_ids=lambda: "crm-c2c-0001") as r:
        await r.connected()
        await r.service.originate(await r.user("maria"), "8 903 123-45-67")
        await r.finish()
        [action] = r.emulator.actions_named("Originate")
        assert (action.get("Channel"), action.get("Exten")) == ("PJSIP/102", "89031234567")
        [call] = await r.calls()
        assert call["called"] == "89031234567" and call["state"] == "answered"


async def test_e164_dial_format(tmp_path: Path) -> None:
    async with replay(tmp_path, CLICK, line={"dial_format": "e164"},
                      channel_ids=lambda: "crm-c2c-0001") as r:
        await r.connected()
        await r.service.originate(await r.user("maria"), "89031234567")
        await r.finish()
        [action] = r.emulator.actions_named("Originate")
        assert action.get("Exten") == "+79031234567"


async def test_the_dial_format_follows_a_region_changed_while_running(tmp_path: Path) -> None:
    region = ["RU"]
    async with replay(tmp_path, CLICK, line={"dial_format": "e164"},
                      channel_ids=lambda: "crm-c2c-0001", region=lambda: region[0]) as r:
        await r.connected()
        region[0] = "DE"  # an admin stored another default region after the line started
        await r.service.originate(await r.user("maria"), "030 1234567")
        await r.finish()
        [action] = r.emulator.actions_named("Originate")
        assert action.get("Exten") == "+49301234567"

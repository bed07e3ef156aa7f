"""Calls the PBX answers itself, voicemail after a ring group, ring time and end cause: replayed
through the real line, registry, call log and store (traces built in tests/calls/synth.py from
the recorded shapes of trace 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callcenter.models import TaskKind
from tests.calls.harness import Replay, replay
from tests.calls.synth import RINGGROUP, VOICEMAIL_PATH, ivr_only, ringgroup_then_voicemail

MON = "/var/spool/asterisk/monitor/"
RG_RECORDING = MON + "rg-20261122-232001-1795389601.51.wav"


async def record(r: Replay) -> dict[str, Any]:
    [call] = await r.calls()
    return call


def shape(call: dict[str, Any]) -> tuple[Any, ...]:
    return (call["direction"], call["caller_raw"], call["called"], call["rang"],
            call["answered_by_ext"], call["answered_by_user"], call["state"], call["reason"],
            call["cause"], bool(call["handled_by_pbx"]), call["ring_seconds"],
            call["ivr_seconds"], call["talk_seconds"],
            [(x["pbx_path"], x["kind"]) for x in call["recordings"]])


async def test_voicemail_after_the_ring_group_is_a_missed_call_with_its_message(
        tmp_path: Path) -> None:
    async with replay(tmp_path, RINGGROUP, trace=ringgroup_then_voicemail()) as r:
        await r.finish()
        call = await record(r)
        # 30 s of ringing (DialBegin t=0.7265 -> DialEnd NOANSWER t=30.7535), 25 s of voicemail:
        # ring time is the ringing only; the message is a recording of kind voicemail
        assert shape(call) == (
            "inbound", "+79165554433", "74951110001", ["102", "103"], None, None, "missed",
            "no_answer", "16 Normal Clearing", False, 30.027, 24.998, None,
            [(RG_RECORDING, "call"), (VOICEMAIL_PATH + ".wav", "voicemail")])
        [task] = await r.store.list_tasks(done=False)
        assert task.kind is TaskKind.CALLBACK and task.voicemail
        assert task.phone == "+79165554433"
        [interaction] = [i for i in await r.store.list_interactions(call["client_id"])
                         if i.ref == call["id"]]
        assert interaction.summary.endswith("missed (no_answer), left a voicemail")
        assert interaction.data["voicemail"] is True
        missed = await r.wait_event("call.missed")
        assert missed.data["call"]["voicemail"] is True
        assert missed.data["call"]["ring_seconds"] == 30.027


async def test_a_call_the_pbx_answered_alone_is_answered_by_the_pbx_without_a_task(
        tmp_path: Path) -> None:
    async with replay(tmp_path, RINGGROUP, trace=ivr_only()) as r:
        await r.finish()
        call = await record(r)
        assert shape(call) == (
            "inbound", "+79165554433", "74951110005", [], None, None, "answered", None,
            "16 Normal Clearing", True, 0.0, 7.5, None, [])
        assert await r.store.list_tasks(done=False) == []
        ended = await r.wait_event("call.ended")
        assert ended.data["call"]["handled_by_pbx"] is True
        assert ended.data["call"]["answered_by"] is None
        assert "call.missed" not in r.topics()
        [interaction] = [i for i in await r.store.list_interactions(call["client_id"])
                         if i.ref == call["id"]]
        assert "answered by the PBX (8 s)" in interaction.summary


@pytest.mark.parametrize(("policy", "ivr_task", "voicemail_task"), [
    ("waited_or_voicemail", False, True),
    ("always", True, True),
    ("voicemail", False, True),
    ("never", False, False),
])
async def test_callback_policy_per_line(tmp_path: Path, policy: str, ivr_task: bool,
                                        voicemail_task: bool) -> None:
    line = {"callback_on": policy}
    async with replay(tmp_path / "ivr", RINGGROUP, trace=ivr_only(), line=line) as r:
        await r.finish()
        assert len(await r.store.list_tasks(done=False)) == int(ivr_task)
    async with replay(tmp_path / "vm", RINGGROUP, trace=ringgroup_then_voicemail(),
                      line=line) as r:
        await r.finish()
        assert len(await r.store.list_tasks(done=False)) == int(voicemail_task)


async def test_a_missed_ring_group_without_voicemail_still_gets_its_task_by_default(
        tmp_path: Path) -> None:
    async with replay(tmp_path, RINGGROUP, line={"callback_on": "waited_or_voicemail"}) as r:
        await r.finish()
        [task] = await r.store.list_tasks(done=False)
        assert not task.voicemail
        call = await record(r)
        assert call["state"] == "missed" and not call["handled_by_pbx"]


async def test_the_end_cause_is_the_real_one_not_0_unknown(tmp_path: Path) -> None:
    # The caller's leg torn down by the dialplan: Hangup says "0 Unknown" (as the recorded
    # phone legs of trace 15 do), its SoftHangupRequest said 16.
    async with replay(tmp_path, RINGGROUP, trace=ivr_only(hangup_cause=("0", "Unknown"))) as r:
        await r.finish()
        assert (await record(r))["cause"] == "16 Normal Clearing"

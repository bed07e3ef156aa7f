"""Withheld numbers without dialplan changes: the line asks the PBX for CALLERID(pres) of each
new inbound call (AMI Getvar, answered by the emulator) and holds the screen-pop until it knows.
Replayed through the real line, registry, call log and store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from pbx.ami.emulator import response
from pbx.ami.message import Message
from pbx.ami.trace import BlockKind, load_trace
from tests.calls.harness import Replay, replay
from tests.calls.synth import changed, timestamped
from tests.conftest import FIXTURES

SCENARIO = "01_inbound_answered"  # +79161234567 Ivan Petrov of ООО «Ромашка»
RAW = "+79161234567"
TRUNK = "PJSIP/trunk-00000000"
ROMASHKA = "ООО «Ромашка»"


def pres(value: str) -> dict[str, Any]:
    return {"variables": {(None, "CALLERID(pres)"): value}}


def call_events(r: Replay) -> list[dict[str, Any]]:
    return [e.data for e in r.events if e.topic.startswith("call.")]


async def test_a_caller_who_withheld_the_number_is_never_shown(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pbx.asterisk_line"):
        async with replay(tmp_path, SCENARIO,
                          emulator_options=pres("prohib_passed_screen")) as r:
            await r.finish()
            [getvar] = r.emulator.actions_named("Getvar")
            assert (getvar.get("Channel"), getvar.get("Variable")) == (TRUNK, "CALLERID(pres)")
            events = call_events(r)
            assert [e for e in r.events if e.topic == "call.ringing"]
            for data in events:  # from the very first event: nothing to hide afterwards
                assert data["call"]["caller"] == {"raw": "", "e164": None, "name": "",
                                                  "withheld": True, "display": ""}
                assert data["match"]["kind"] == "withheld"
                assert data["match"]["client"] is None and data["match"]["candidates"] == []
                assert RAW not in repr(data) and "Ivan" not in repr(data)
            [call] = await r.calls()
            assert (call["caller_raw"], call["caller_e164"], call["caller_name"],
                    call["withheld"], call["client_id"]) == ("", None, "", 1, None)
            assert call["state"] == "answered"  # the call itself is logged as usual
            romashka = next(c for c in await r.store.list_clients() if c.name == ROMASHKA)
            assert [i for i in await r.store.list_interactions(romashka.id)
                    if i.ref == call["id"]] == []
    # the raw number is kept only in the log, for the PBX admin, marked withheld
    [line] = [rec.getMessage() for rec in caplog.records if RAW in rec.getMessage()]
    assert "withheld" in line and "prohib_passed_screen" in line


async def test_an_allowed_presentation_shows_the_client(tmp_path: Path) -> None:
    async with replay(tmp_path, SCENARIO, emulator_options=pres("allowed_not_screened")) as r:
        await r.finish()
        assert len(r.emulator.actions_named("Getvar")) == 1
        ringing = await r.wait_event("call.ringing")
        assert ringing.data["call"]["caller"]["raw"] == RAW
        assert ringing.data["match"]["client"]["name"] == ROMASHKA
        [call] = await r.calls()
        assert (call["caller_raw"], call["withheld"]) == (RAW, 0)


async def test_the_emulator_default_presentation_is_allowed(tmp_path: Path) -> None:
    async with replay(tmp_path, SCENARIO) as r:  # no value set: Asterisk's default
        await r.finish()
        assert len(r.emulator.actions_named("Getvar")) == 1
        [call] = await r.calls()
        assert call["caller_raw"] == RAW and not call["withheld"]


async def test_a_getvar_error_falls_back_to_showing_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def refused(msg: Message) -> list[bytes]:
        return [response(msg.action_id, ("Response", "Error"), ("Message", "Permission denied"))]

    with caplog.at_level(logging.WARNING, logger="pbx.asterisk_line"):
        async with replay(tmp_path, SCENARIO,
                          emulator_options={"responders": {"Getvar": refused}}) as r:
            await r.finish()
            [call] = await r.calls()
            assert call["caller_raw"] == RAW and call["client_id"] is not None
    assert any("Getvar CALLERID(pres) failed" in rec.getMessage()
               and "showing the number" in rec.getMessage() for rec in caplog.records)


async def test_a_caller_whose_channel_is_gone_is_withheld(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """"No such channel": the caller hung up before the PBX answered Getvar. Unsure, privacy
    first: no number, no client card, no "Call back <name>" task."""
    def no_channel(msg: Message) -> list[bytes]:
        return [response(msg.action_id, ("Response", "Error"), ("Message", "No such channel"))]

    with caplog.at_level(logging.INFO, logger="pbx.asterisk_line"):
        async with replay(tmp_path, SCENARIO,
                          emulator_options={"responders": {"Getvar": no_channel}}) as r:
            await r.finish()
            [call] = await r.calls()
            assert (call["caller_raw"], call["withheld"], call["client_id"]) == ("", 1, None)
            for data in call_events(r):
                assert RAW not in repr(data) and data["match"]["kind"] == "withheld"
            assert all(ROMASHKA not in t.title for t in await r.store.list_tasks(done=False))
    assert any("withheld to be safe" in rec.getMessage() and RAW in rec.getMessage()
               for rec in caplog.records)


async def test_a_caller_who_hung_up_while_held_is_withheld(tmp_path: Path) -> None:
    """Trace 02 (missed, Olga of ООО «Вектор» hangs up): Getvar is answered only after the
    whole call, its end among the held events; on the timeout the call is withheld."""
    async with replay(tmp_path, "02_inbound_missed", line={"withheld_timeout": 0.5},
                      emulator_options={"held_answers": ["Getvar"],
                                        **pres("allowed_not_screened")}) as r:
        await r.finish()  # (it waits for the held call's release too)
        r.emulator.release_answers("Getvar")
        [call] = await r.calls()
        assert (call["caller_raw"], call["withheld"], call["client_id"]) == ("", 1, None)
        assert all("89035556677" not in repr(d) for d in call_events(r))
        assert all("Olga" not in t.title for t in await r.store.list_tasks(done=False))


async def test_a_getvar_timeout_falls_back_to_showing_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Trace 03 waits for the recorded BlindTransfer with the call up: the channel is alive
    # when the timeout comes, so the call is shown (and the log says so).
    with caplog.at_level(logging.WARNING, logger="pbx.asterisk_line"):
        async with replay(tmp_path, "03_blind_transfer", action_wait=1.0,
                          line={"withheld_timeout": 0.05},
                          emulator_options={"held_answers": ["Getvar"],
                                            **pres("allowed_not_screened")}) as r:
            answered = await r.wait_event("call.answered")
            assert answered.data["call"]["caller"]["raw"] == RAW
            assert answered.data["match"]["client"]["name"] == ROMASHKA
            r.emulator.release_answers("Getvar")
            await r.finish()
            [call] = await r.calls()
            assert call["caller_raw"] == RAW and call["client_id"] is not None
    assert any("no answer to Getvar CALLERID(pres) within" in rec.getMessage()
               for rec in caplog.records)


async def test_the_dialplan_variable_saves_the_round_trip(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Trace 01 with ``Set(CRM_WITHHELD=${CALLERID(pres)})`` at the first priority: a VarSet
    block of the trunk channel (the recorded SIPDOMAIN one) with another name and value."""
    trace = load_trace(FIXTURES / f"{SCENARIO}.log")
    blocks = list(trace.blocks)
    first = next(i for i, b in enumerate(blocks) if b.kind is BlockKind.RECV
                 and b.data.startswith(b"Event: VarSet") and TRUNK.encode() in b.data)
    blocks.insert(first + 1, changed(blocks[first], blocks[first].t, Variable="CRM_WITHHELD",
                                     Value="prohib_passed_screen"))
    with caplog.at_level(logging.INFO, logger="pbx.asterisk_line"):
        async with replay(tmp_path, SCENARIO, trace=timestamped(trace, blocks),
                          emulator_options=pres("allowed_not_screened")) as r:
            await r.finish()
            assert r.emulator.actions_named("Getvar") == []
            [call] = await r.calls()
            assert (call["caller_raw"], call["withheld"]) == ("", 1)
    assert any(RAW in rec.getMessage() and "withheld" in rec.getMessage()
               for rec in caplog.records)


async def test_the_question_can_be_switched_off(tmp_path: Path) -> None:
    async with replay(tmp_path, SCENARIO, line={"withheld_getvar": False},
                      emulator_options=pres("prohib_passed_screen")) as r:
        await r.finish()
        assert r.emulator.actions_named("Getvar") == []
        [call] = await r.calls()
        assert call["caller_raw"] == RAW


async def test_a_late_withheld_answer_still_hides_the_caller(tmp_path: Path) -> None:
    # Trace 03's stream waits for the recorded BlindTransfer (never sent here) with the call
    # answered: the PBX's answer about the presentation comes only then, after the timeout.
    async with replay(tmp_path, "03_blind_transfer", action_wait=1.0,
                      line={"withheld_timeout": 0.05},
                      emulator_options={"held_answers": ["Getvar"],
                                        **pres("prohib_passed_screen")}) as r:
        answered = await r.wait_event("call.answered")
        assert answered.data["call"]["caller"]["raw"] == RAW  # shown: no answer in time
        r.emulator.release_answers("Getvar")

        async def hidden() -> dict[str, Any]:
            while True:
                for e in r.events:
                    if e.data["call"]["caller"]["withheld"]:
                        return e.data
                await asyncio.sleep(0.01)

        data = await asyncio.wait_for(hidden(), 10)
        assert data["call"]["caller"]["raw"] == "" and data["match"]["kind"] == "withheld"
        await r.finish()
        [call] = await r.calls()
        assert (call["caller_raw"], call["withheld"], call["client_id"]) == ("", 1, None)


async def test_the_withheld_number_is_kept_in_the_call_log_row_only(tmp_path: Path) -> None:
    """For admins (who may need it for a complaint or the police): in the call-log row,
    never in an event (what the websocket sends), an interaction or a task."""
    async with replay(tmp_path, SCENARIO, emulator_options=pres("prohib_passed_screen")) as r:
        await r.finish()
        [call] = await r.calls()
        assert (call["caller_raw"], call["withheld"], call["withheld_raw"]) == ("", 1, RAW)
        assert all(RAW not in repr(e.data) for e in r.events)
        for client in await r.store.list_clients():
            assert RAW not in repr(await r.store.list_interactions(client.id))
        assert RAW not in repr(await r.store.list_tasks())


async def test_a_shown_number_has_no_withheld_copy(tmp_path: Path) -> None:
    async with replay(tmp_path, SCENARIO, emulator_options=pres("allowed_not_screened")) as r:
        await r.finish()
        [call] = await r.calls()
        assert (call["caller_raw"], call["withheld_raw"]) == (RAW, "")

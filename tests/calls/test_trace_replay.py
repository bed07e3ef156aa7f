"""Every recorded Asterisk 22 trace, replayed over TCP through the emulator into the real AMI
connection, correlator, call registry, call log and store: the exact call records."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callcenter.models import InteractionKind, Role, TaskKind
from callcenter.store.sqlite import SqliteStore
from pbx.ami.emulator import response
from pbx.ami.trace import load_trace
from tests.calls.harness import Replay, replay
from tests.conftest import FIXTURES

MON = "/var/spool/asterisk/monitor/"
ROMASHKA = "ООО «Ромашка»"

# scenario -> the calls it must log, oldest first:
# (direction, caller raw, caller name, withheld, called, client, rang, answered by extension,
#  transfers [(kind, from, to)], state, reason, recordings)
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "00_basics": [],
    "00_basics_badlogin": [],
    "01_inbound_answered": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110000", ROMASHKA, ["101"],
         "101", [], "answered", None, [MON + "q-20261122-230057-1795388457.1.wav"])],
    "02_inbound_missed": [
        ("inbound", "89035556677", "Olga", False, "74951110000", "Olga Sokolova", ["101"],
         None, [], "missed", "abandoned", [])],
    "03_blind_transfer": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110000", ROMASHKA,
         ["101", "102"], "101", [("blind", "101", "102")], "answered", None,
         [MON + "q-20261122-230139-1795388499.6.wav"])],
    "04_attended_transfer": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110000", ROMASHKA,
         ["101", "103"], "101", [("attended", "101", "103")], "answered", None,
         [MON + "q-20261122-230231-1795388551.12.wav"])],
    # 04 with the AttendedTransfer's TransferTarget* fields removed (Asterisk 22.10.1 live)
    "04b_attended_transfer_no_target": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110000", ROMASHKA,
         ["101", "103"], "101", [("attended", "101", "103")], "answered", None,
         [MON + "q-20261122-230231-1795388551.12.wav"])],
    # 04b with the target joining the caller's bridge after the AttendedTransfer (our Atxfer)
    "04c_attended_transfer_target_left": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110000", ROMASHKA,
         ["101", "103"], "101", [("attended", "101", "103")], "answered", None,
         [MON + "q-20261122-230231-1795388551.12.wav"])],
    "05_click_to_call": [
        ("outbound", "102", "Manager Two", False, "89031234567", "Vector Trade", ["102"], None,
         [], "answered", None, [MON + "out-20261122-230306-crm-c2c-0001.wav"])],
    "05c_click_to_call_no_answer": [
        ("outbound", "103", "Manager Three", False, "89031234567", "Vector Trade", ["103"], None,
         [], "failed", "no_answer", [])],
    "06_overlapping_inbound": [
        ("inbound", "+79161111111", "Anna Smirnova", False, "74951110000",
         "Smirnova & Partners", ["101"], "101", [], "answered", None,
         [MON + "q-20261122-230354-1795388634.24.wav"]),
        ("inbound", "89162222222", "Boris", False, "74951110000", "Boris Kozlov", ["101"],
         "101", [], "answered", None, [MON + "q-20261122-230357-1795388637.26.wav"])],
    "07_mixmonitor_recording": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110001", ROMASHKA,
         ["102", "103"], "102", [], "answered", None,
         [MON + "rg-20261122-230423-1795388663.28.wav", MON + "ami-1795388663.28.wav"])],
    "08a_callerid_cyrillic": [
        ("inbound", "89161234567", 'Иван Петров (ООО "Ромашка") №5', False, "74951110000",
         ROMASHKA, ["101"], "101", [], "answered", None,
         [MON + "q-20261122-230444-1795388684.31.wav"])],
    "08b_callerid_anonymous": [
        ("inbound", "", "", True, "74951110000", None, ["101"], "101", [], "answered", None,
         [MON + "q-20261122-230456-1795388696.33.wav"])],
    # The fax traces: the CRM's own SendFAX originate loops back into the same PBX and is
    # not an office call; the inbound fax is answered by the PBX's fax application.
    "09_fax_send": [],
    "10_fax_receive": [
        ("inbound", "+74957654321", "ACME LLC", False, "74951110009", None, [], None, [],
         "answered", None, [])],
    "11_queue_two_agents_ringall": [
        ("inbound", "+79167778899", "Sergey Kuznetsov", False, "74951110000",
         "Kuznetsov Logistics", ["101", "102"], "102", [], "answered", None,
         [MON + "q-20261122-231906-1795389546.46.wav"])],
    "12_ami_reconnect_midcall": [
        ("inbound", "+79161234567", "Ivan Petrov", False, "74951110000", ROMASHKA, ["101"],
         "101", [], "answered", None, [MON + "q-20261122-231929-1795389569.49.wav"])],
    "14_pjsip_trunk_admin": [],
    "15_ringgroup_noanswer_then_voicemail_like": [
        ("inbound", "+79165554433", "Pavel Sidorov", False, "74951110001", "Sidorov Build",
         ["102", "103"], None, [], "missed", "no_answer",
         [MON + "rg-20261122-232001-1795389601.51.wav"])],
    "16_outbound_from_phone": [
        ("outbound", "101", "Secretary", False, "89031234567", "Vector Trade", [], None, [],
         "answered", None, [MON + "out-20261122-231844-1795389524.44.wav"])],
}


# The click-to-call recordings: 05 set ChannelId crm-c2c-0001, 05c set none.
RECORDED_CHANNEL_IDS = {
    "05_click_to_call": lambda: "crm-c2c-0001",
    "05c_click_to_call_no_answer": lambda: None,
}


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.log")} == set(EXPECTED)


async def drive(r: Replay, scenario: str) -> None:
    """Do what the CRM did in the recording, at the moment it did it."""
    if scenario == "00_basics_badlogin":
        # a wrong secret: a clear error on the line, and no retry storm
        while "login refused" not in r.line.detail:
            await asyncio.sleep(0.01)
        assert not r.line.connected
        return
    await r.connected()
    if scenario == "05_click_to_call":
        await r.service.originate(await r.user("maria"), "89031234567")
    elif scenario == "05c_click_to_call_no_answer":
        await r.service.originate(await r.user("dmitry"), "89031234567")
    elif scenario in ("03_blind_transfer", "04_attended_transfer",
                      "04b_attended_transfer_no_target", "04c_attended_transfer_target_left"):
        answered = await r.wait_event("call.answered")
        kind, to = ("blind", "102") if scenario.startswith("03") else ("attended", "103")
        await r.service.transfer(await r.user("secretary"), answered.data["call"]["id"], to,
                                 kind)
    elif scenario == "07_mixmonitor_recording":
        answered = await r.wait_event("call.answered")
        admin = await r.user("admin")
        call_id = answered.data["call"]["id"]
        assert await r.service.recording(admin, call_id, True)
        await r.service.recording(admin, call_id, False)


async def client_names(r: Replay) -> dict[int, str]:
    return {c.id: c.name for c in await r.store.list_clients(limit=100)}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
async def test_trace_gives_the_exact_call_records(tmp_path: Path, scenario: str) -> None:
    async with replay(tmp_path, scenario, channel_ids=RECORDED_CHANNEL_IDS.get(scenario)) as r:
        await asyncio.wait_for(drive(r, scenario), 15)
        await r.finish()
        names = await client_names(r)
        got = [
            (c["direction"], c["caller_raw"], c["caller_name"], bool(c["withheld"]), c["called"],
             names.get(c["client_id"]), c["rang"], c["answered_by_ext"],
             [(t["kind"], t["from"], t["to"]) for t in c["transfers"]], c["state"], c["reason"],
             [x["pbx_path"] for x in c["recordings"]])
            for c in await r.calls()
        ]
        assert got == EXPECTED[scenario]
        assert r.registry.live() == []  # nothing left ringing
        for call in await r.calls():
            # every call is on the client card (or logged as unmatched), exactly once
            interactions = [i for i in await r.store.list_interactions(call["client_id"])
                            if i.ref == call["id"]] if call["client_id"] else []
            assert len(interactions) == (1 if call["client_id"] else 0)
            if call["state"] == "answered" and call["answered_at"]:
                assert call["talk_seconds"] is not None and call["ring_seconds"] is not None


async def test_screen_pop_carries_client_manager_and_history(tmp_path: Path) -> None:
    async def history(store: SqliteStore) -> None:
        client = next(c for c in await store.list_clients() if c.name == ROMASHKA)
        await store.add_interaction(InteractionKind.NOTE, datetime(2026, 11, 1, tzinfo=UTC),
                                    "asked for a discount", client_id=client.id)
        await store.create_task(TaskKind.REMINDER, "send the contract", client_id=client.id)

    async with replay(tmp_path, "01_inbound_answered", prepare=history) as r:
        maria = await r.user("maria")
        ringing = await r.wait_event("call.ringing")
        await r.finish()
    data = ringing.data
    assert data["extension"] == "101"
    assert data["user"]["name"] == "Svetlana Orlova"
    assert data["call"]["caller"]["display"] == "8 (916) 123-45-67"
    assert data["call"]["state"] == "ringing"
    match = data["match"]
    assert match["kind"] == "client"
    assert match["client"]["name"] == ROMASHKA
    assert match["contact"]["name"] == "Ivan Petrov"
    assert match["manager"] == {"id": maria.id, "name": "Maria Ivanova", "extension": "102",
                                "busy": False}
    assert [i["summary"] for i in match["last_interactions"]] == ["asked for a discount"]
    assert [t["title"] for t in match["open_tasks"]] == ["send the contract"]
    # the card follows the call to its end
    # started, 101 rings, 101 answers, ringing cleared, recording known, hang-up
    assert r.topics() == ["call.updated", "call.ringing", "call.answered", "call.updated",
                          "call.updated", "call.ended"]


async def test_card_events_for_missed_and_anonymous(tmp_path: Path) -> None:
    async with replay(tmp_path, "08b_callerid_anonymous") as r:
        ringing = await r.wait_event("call.ringing")
        await r.finish()
    assert ringing.data["match"]["kind"] == "withheld"
    assert ringing.data["call"]["caller"] == {"raw": "", "e164": None, "name": "",
                                              "withheld": True, "display": ""}
    async with replay(tmp_path, "02_inbound_missed") as r:
        await r.finish()
        missed = await r.wait_event("call.missed")
        # the queue retry rang 101 twice: one call, two ringing events, one missed
        assert r.topics().count("call.ringing") == 2
    assert missed.data["call"]["state"] == "missed"
    assert missed.data["call"]["reason"] == "abandoned"
    assert missed.data["match"]["client"]["name"] == "Olga Sokolova"


async def test_missed_calls_create_one_callback_task(tmp_path: Path) -> None:
    async with replay(tmp_path, "02_inbound_missed") as r:
        await r.finish()
        dmitry = await r.user("dmitry")
        [task] = await r.store.list_tasks(done=False)
        assert task.kind is TaskKind.CALLBACK
        assert task.assignee_id == dmitry.id  # Olga's responsible manager
        assert task.phone == "+79035556677"
        assert "Olga" in task.title

    async def open_task(store: SqliteStore) -> None:
        await store.create_task(TaskKind.CALLBACK, "Call back Olga", phone="+79035556677")

    # the same number missing again while a task is open adds no second task
    async with replay(tmp_path / "again", "02_inbound_missed", prepare=open_task) as r2:
        await r2.finish()
        assert [c["state"] for c in await r2.calls()] == ["missed"]
        assert len(await r2.store.list_tasks(done=False)) == 1


async def test_unknown_missed_caller_goes_to_the_secretaries(tmp_path: Path) -> None:
    async def forget_client(store: SqliteStore) -> None:
        for client in await store.list_clients():
            if client.name == "Sidorov Build":
                await store.delete_client(client.id)

    async with replay(tmp_path, "15_ringgroup_noanswer_then_voicemail_like",
                      prepare=forget_client) as r:
        await r.finish()
        [task] = await r.store.list_tasks(done=False)
        assert task.assignee_id is None
        assert task.assignee_role is Role.SECRETARY
        assert task.phone == "+79165554433"


async def test_transfer_and_originate_send_the_recorded_actions(tmp_path: Path) -> None:
    async with replay(tmp_path, "03_blind_transfer") as r:
        await drive(r, "03_blind_transfer")
        await r.finish()
        [action] = r.emulator.actions_named("BlindTransfer")
        assert (action.get("Channel"), action.get("Exten"), action.get("Context")) == (
            "PJSIP/101-00000006", "102", "from-internal")
    async with replay(tmp_path / "b", "05c_click_to_call_no_answer",
                      channel_ids=RECORDED_CHANNEL_IDS["05c_click_to_call_no_answer"]) as r:
        await drive(r, "05c_click_to_call_no_answer")
        await r.finish()
        [action] = r.emulator.actions_named("Originate")
        assert action.get("Channel") == "PJSIP/103"
        assert action.get("Exten") == "89031234567"
        assert action.get("Context") == "from-internal"
        assert action.get("Async") == "true"
        [call] = await r.calls()
        assert call["user_id"] == (await r.user("dmitry")).id


@pytest.mark.parametrize(("scenario", "rule"), [
    ("04b_attended_transfer_no_target", "bridge"),  # 103's Local leg is in the caller's bridge
    ("04c_attended_transfer_target_left", "atxfer"),  # not yet: the product's own Atxfer
])
async def test_attended_transfer_without_target_fields_moves_the_call_to_the_target(
        tmp_path: Path, scenario: str, rule: str, caplog: pytest.LogCaptureFixture) -> None:
    """Asterisk 22.10.1 often reports the Atxfer without TransferTarget*: the call still moves
    to 103 (presence, the next transfer), as the PBX did."""
    caplog.set_level(logging.DEBUG, logger="pbx.ami.correlator")
    blocks = load_trace(FIXTURES / f"{scenario}.log").blocks
    reported = next(i for i, b in enumerate(blocks)
                    if b.data.startswith(b"Event: AttendedTransfer\r\n"))
    async with replay(tmp_path, scenario) as r:
        r.emulator.pause_after_block(reported)  # the caller and 103 talk; 101 still up
        r.emulator.responders["blindtransfer"] = lambda action: [
            response(action.action_id, ("Response", "Success"),
                     ("Message", "Transfer succeeded"))]
        await asyncio.wait_for(drive(r, scenario), 15)
        transferred = await r.wait_event("call.transferred")
        await asyncio.wait_for(r.emulator.paused.wait(), 10)
        call_id = transferred.data["call"]["id"]
        assert transferred.data["transfer"]["to"] == "103"
        [found] = [r for r in caplog.records if "without its target" in r.getMessage()]
        assert isinstance(found.args, tuple) and found.args[-1] == rule
        [live] = r.registry.live()
        assert live.current_ext == "103"
        assert r.registry.presence() == {"103": "busy"}  # not the secretary who handed it on
        # the next transfer of the call goes from 103's own phone
        await r.service.transfer(await r.user("dmitry"), call_id, "102", "blind")
        [action] = r.emulator.actions_named("BlindTransfer")
        assert (action.get("Channel"), action.get("Exten")) == ("PJSIP/103-0000000d", "102")
        r.emulator.resume()
        await r.finish()
        [call] = await r.calls()
        assert (call["state"], call["answered_by_ext"]) == ("answered", "101")

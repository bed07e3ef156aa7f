"""Calls that ended while callcenter was down (left open by the previous run, not re-adopted by
any line) get the finish step they missed once the lines have listed what is still up."""

from __future__ import annotations

import asyncio
import json

from callcenter.app import finish_left_open
from callcenter.config import PbxLineConfig
from callcenter.store.sqlite import SqliteStore
from pbx.ami.emulator import AmiEmulator, response
from pbx.ami.message import Message
from pbx.asterisk_line import AsteriskLine
from tests.calls.test_restart import CAUSE, add_call, core, inbound, unix


def _empty_list(action: Message) -> list[bytes]:
    action_id = action.action_id or ""
    return [response(action_id, ("Response", "Success"), ("EventList", "start"),
                     ("Message", "Channels will follow"))
            + response(action_id, ("Event", "CoreShowChannelsComplete"),
                       ("EventList", "Complete"), ("ListItems", "0"))]


async def test_calls_that_ended_while_callcenter_was_down_get_their_finish_step(
        store: SqliteStore) -> None:
    await add_call(store, "office:2.2", "ringing", answered=False, ended=False)
    await add_call(store, "office:3.3", "answered", answered=True, ended=False)
    await add_call(store, "office:4.4", "ringing", answered=False, ended=False)
    # Another caller (an answered call of the same number would close the callback task).
    await store._db.execute("UPDATE calls SET caller_raw = '+79035550000' WHERE id = ?",
                            ("office:3.3",))
    registry, call_log, _ = await core(store)
    [found] = store.caller_index.by_e164("+79161234567")  # 2.2 was from a client of the base
    candidate = {"client_id": found.client_id, "client_name": found.client_name,
                 "contact_id": found.contact_id, "contact_name": found.contact_name,
                 "manager_id": found.manager_id, "matched_by": "e164"}
    await store._db.execute(
        "UPDATE calls SET client_id = ?, contact_id = ?, candidates = ? WHERE id = ?",
        (found.client_id, found.contact_id, json.dumps([candidate]), "office:2.2"))
    registry.handle(inbound("office:4.4", unix("2026-11-22T10:00:30+00:00") or 0.0))
    emulator = await AmiEmulator([], auth_failure_delay=0,
                                 responders={"CoreShowChannels": _empty_list}).start()
    line = AsteriskLine(PbxLineConfig(name="office", port=emulator.port, username="crm",
                                      secret="crm-secret"), registry.handle)
    try:
        await line.start()
        # The PBX's resync lists neither 2.2 nor 3.3: they ended while callcenter was down.
        assert await asyncio.wait_for(finish_left_open(call_log, [line]), 30) == 2
        assert line.synced.is_set()
        await call_log.drained()
    finally:
        await line.stop()
        await emulator.close()
    assert call_log.finish_left_open() == 0  # once

    rows = {c["id"]: c for c in await store._list_calls_where("1 = 1", [], 10, 0)}
    # Nobody was seen answering the caller: missed (when is unknown), with a callback task.
    missed = rows["office:2.2"]
    assert (missed["state"], missed["cause"], missed["ring_seconds"]) == ("missed", CAUSE, None)
    assert (rows["office:3.3"]["state"], rows["office:3.3"]["cause"]) == ("answered", CAUSE)
    assert rows["office:4.4"]["ended_at"] is None  # re-adopted: live, its end is logged later
    logged = {ref: json.loads(data) for ref, data in await store._db.rows(
        "SELECT ref, data FROM interactions")}
    assert {ref: d["state"] for ref, d in logged.items()} == {
        "office:2.2": "missed", "office:3.3": "answered"}
    assert logged["office:3.3"]["answered_by"]["extension"] == "101"
    [task] = await store.list_tasks(done=False)
    assert (task.ref, task.phone) == ("office:2.2", "+79161234567")
    assert (task.client_id, task.assignee_id) == (found.client_id, found.manager_id)
    assert missed["client_id"] == found.client_id and missed["candidates"] == [candidate]
    [(client_ref,)] = await store._db.rows(
        "SELECT client_id FROM interactions WHERE ref = ?", ("office:2.2",))
    assert client_ref == found.client_id
    await call_log.stop()


async def test_left_open_calls_are_finished_after_a_grace_when_a_line_never_syncs(
        store: SqliteStore) -> None:
    await add_call(store, "office:2.2", "ringing", answered=False, ended=False)
    _, call_log, _ = await core(store)

    class Down:  # a PBX that does not answer: its first resync never comes
        synced = asyncio.Event()

    assert await finish_left_open(call_log, [Down()], grace=0.05) == 1
    await call_log.drained()
    await call_log.stop()
    assert (await store.get_call("office:2.2"))["state"] == "missed"
    assert len(await store.list_tasks(done=False)) == 1


async def test_left_open_call_with_a_voicemail_gets_a_voicemail_callback(store: SqliteStore
                                                                          ) -> None:
    await add_call(store, "office:2.2", "ringing", answered=False, ended=False)
    await store.add_recording("office:2.2", "/var/spool/asterisk/voicemail/msg0000.wav",
                              "voicemail")
    _, call_log, _ = await core(store)
    assert await finish_left_open(call_log, []) == 1
    await call_log.drained()
    await call_log.stop()
    [task] = await store.list_tasks(done=False)
    assert task.voicemail and task.ref == "office:2.2"
    [(data,)] = await store._db.rows("SELECT data FROM interactions WHERE ref = ?",
                                     ("office:2.2",))
    assert json.loads(data)["voicemail"] is True

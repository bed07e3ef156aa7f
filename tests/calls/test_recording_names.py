"""PBX recording file names often hold the caller's number (FreePBX ``in-<exten>-<callerid>-...``,
``Record(vm-${CALLERID(num)})``): they never reach the bus (every console) nor the client card's
interaction data; the call log gives recordings by id and url (issue 7, item 6)."""

from __future__ import annotations

import json

from callcenter.line_events import Answered, CallEnded, EndState, RecordingKind, RecordingStarted
from tests.calls.test_withheld_log import RAW, Core, core, inbound

__all__ = ["core"]  # the fixture

FREEPBX = f"/var/spool/asterisk/monitor/2026/12/01/in-101-{RAW}-20261201-100000-1.1.wav"
VOICEMAIL = f"/var/spool/asterisk/monitor/vm-{RAW}.wav"


async def test_no_pbx_path_in_bus_events_nor_interaction_data(core: Core) -> None:
    core.registry.handle(inbound("c1", withheld=True))  # the number itself hidden...
    core.registry.handle(Answered("c1", 101, "101"))
    core.registry.handle(RecordingStarted("c1", 102, FREEPBX))
    core.registry.handle(RecordingStarted("c1", 103, VOICEMAIL, RecordingKind.VOICEMAIL))
    core.registry.handle(CallEnded("c1", 150, EndState.ANSWERED))
    await core.log.drained()
    assert [e.data["call"]["recordings"] for e in core.events][-1] == 2
    for event in core.events:  # ...and not given away by the file names
        assert "/var/spool" not in event.text and RAW not in event.text, event.topic
    rows = await core.store._db.rows("SELECT data FROM interactions")
    assert rows
    for (data,) in rows:
        assert json.loads(data)["recordings"] == 2
        assert "/var/spool" not in data and RAW not in data
    row = await core.store.get_call("c1")  # the call log keeps them, for the fetcher
    assert sorted(r["pbx_path"] for r in row["recordings"]) == sorted([FREEPBX, VOICEMAIL])

"""The resync snapshot applied at its place in the byte stream (issue 7, item 1).

A small AMI server (the emulator with responders) answers CoreShowChannels (or Status) with the
recorded list and writes more recorded events in the same TCP write as the list's ``...Complete``
or inside the list, as a busy Asterisk does. The real AmiConnection and AsteriskLine read them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from callcenter.config import PbxLineConfig
from callcenter.line_events import (
    Answered,
    CallEnded,
    CallStarted,
    RingingChanged,
)
from pbx.ami.codec import parse_message
from pbx.ami.emulator import action_id_of, response, rewrite_action_id
from pbx.ami.errors import AmiActionError, AmiConnectionLost, AmiError, AmiTimeout
from pbx.ami.message import Message
from pbx.ami.trace import BlockKind
from pbx.asterisk_line import AsteriskLine
from tests.calls.harness import LinePbx as Pbx
from tests.calls.harness import line_pbx
from tests.pbx.conftest import load

CALL_A = "office:1795388457.1"  # 01_inbound_answered: answered by 101, up in the snapshot
CALL_B = "office:1795388472.3"  # 02_inbound_missed: starts ringing 101 right after the list
CALL_S = "office:1795389569.49"  # 12_ami_reconnect_midcall: up in the Status list


def _recv(name: str, first: int, last: int) -> list[bytes]:
    blocks = load(name).blocks[first : last + 1]
    return [
        b.data
        for b in blocks
        if b.kind is BlockKind.RECV and not b.data.startswith(b"Asterisk Call Manager/")
    ]


def _as_answer(blocks: list[bytes], action_id: str) -> list[bytes]:
    """Recorded list blocks, re-addressed to the client's ActionID."""
    return [rewrite_action_id(b, action_id_of(b) or "", action_id) for b in blocks]


CORE_SHOW_A = _recv("01_inbound_answered", 102, 105)  # response, 2 entries, Complete
STATUS_S = _recv("12_ami_reconnect_midcall", 114, 117)
CALL_B_STARTS = [  # Newchannel of the trunk .. AgentCalled + DialBegin of 101
    b for b in _recv("02_inbound_missed", 3, 27) if parse_message(b).event != "FullyBooted"
]
HANGUPS_A = [b for b in _recv("01_inbound_answered", 106, 171)
             if parse_message(b).event == "Hangup"]
UP_A = _recv("01_inbound_answered", 3, 100)  # call A until it is bridged (before the list)


def _empty_list(action_id: str, complete: str) -> list[bytes]:
    return [
        response(action_id, ("Response", "Success"), ("EventList", "start"),
                 ("Message", "Channels will follow")),
        response(action_id, ("Event", complete), ("EventList", "Complete"), ("ListItems", "0")),
    ]


@pytest.fixture
def answers() -> dict[str, list[Callable[[str], list[bytes]]]]:
    """action name -> the answers to give, one per request (a missing one: Permission denied)"""
    return {}


def _responders(answers: dict[str, list[Callable[[str], list[bytes]]]]
               ) -> dict[str, Callable[[Message], list[bytes]]]:
    def responder(name: str) -> Callable[[Message], list[bytes]]:
        def answer(action: Message) -> list[bytes]:
            action_id = action.action_id or ""
            if not answers.get(name):
                return [response(action_id, ("Response", "Error"),
                                 ("Message", "Permission denied"))]
            # one chunk: whatever follows the list arrives in the same TCP read as its end
            return [b"".join(answers[name].pop(0)(action_id))]
        return answer

    return {n: responder(n) for n in ("CoreShowChannels", "Status")}


@pytest.fixture
async def pbx(answers: dict[str, list[Callable[[str], list[bytes]]]]) -> AsyncIterator[Pbx]:
    async with line_pbx(_responders(answers), trunk_endpoints=("trunk", "faxtrunk")) as state:
        yield state


async def test_call_starting_right_after_the_list_stays_live_and_ringing(
        pbx: Pbx, answers: dict) -> None:
    answers["CoreShowChannels"] = [lambda aid: [*_as_answer(CORE_SHOW_A, aid), *CALL_B_STARTS]]
    await pbx.until(lambda: pbx.resyncs == 1)
    # B is a new inbound call: its events wait for the Getvar of CALLERID(pres) (item 6)
    await pbx.until(lambda: bool(pbx.of(RingingChanged, CALL_B)))
    assert [type(e) for e in pbx.of(CallStarted, CALL_B)] == [CallStarted]
    assert pbx.of(RingingChanged, CALL_B)[-1].extensions == ("101",)
    assert pbx.of(CallEnded, CALL_B) == []  # not missed/abandoned: no callback task
    assert pbx.of(CallEnded, CALL_A) == []
    assert sorted(pbx.line.correlator.live_calls()) == [CALL_A, CALL_B]


async def test_hangup_right_after_the_list_ends_the_call_after_a_reconnect(
        pbx: Pbx, answers: dict) -> None:
    answers["CoreShowChannels"] = [
        lambda aid: _empty_list(aid, "CoreShowChannelsComplete"),
        lambda aid: [*_as_answer(CORE_SHOW_A, aid), *HANGUPS_A],
    ]
    await pbx.until(lambda: pbx.resyncs == 1)
    for block in UP_A:
        await pbx.emulator.inject(block)
    await pbx.until(lambda: bool(pbx.of(Answered, CALL_A)))
    await pbx.emulator.drop_client()  # the socket dies mid-call; the line logs in again
    await pbx.until(lambda: pbx.resyncs == 2)
    assert len(pbx.of(CallStarted, CALL_A)) == 1  # not re-adopted as a new live call
    [ended] = pbx.of(CallEnded, CALL_A)
    assert ended.state.value == "answered"
    assert pbx.line.correlator.live_calls() == []
    assert pbx.line.correlator.stats() == {"calls": 0, "legs": 0, "originates": 0}


async def test_hangup_inside_the_list_is_not_re_adopted(pbx: Pbx, answers: dict) -> None:
    def hung_up_inside(aid: str) -> list[bytes]:
        start, trunk, phone, complete = _as_answer(CORE_SHOW_A, aid)
        # each channel hangs up after the list showed it, before the list ends
        return [start, trunk, HANGUPS_A[0], phone, HANGUPS_A[1], complete]

    answers["CoreShowChannels"] = [hung_up_inside]
    await pbx.until(lambda: pbx.resyncs == 1)
    # the adopted inbound call waits for its Getvar of CALLERID(pres) (item 6), its end too
    await pbx.until(lambda: bool(pbx.of(CallEnded, CALL_A)))
    kinds = [type(e) for e in pbx.events if e.call_key == CALL_A]
    assert kinds[0] is CallStarted and kinds[-1] is CallEnded
    assert pbx.line.correlator.live_calls() == []
    assert pbx.line.correlator.stats() == {"calls": 0, "legs": 0, "originates": 0}


async def test_status_fallback_is_applied_in_stream_order_too(pbx: Pbx, answers: dict) -> None:
    # no CoreShowChannels answer: Permission denied, the line falls back to Status
    answers["Status"] = [lambda aid: [*_as_answer(STATUS_S, aid), *CALL_B_STARTS]]
    await pbx.until(lambda: pbx.resyncs == 1)
    await pbx.until(lambda: bool(pbx.of(RingingChanged, CALL_B)))  # after its Getvar
    assert len(pbx.emulator.actions_named("CoreShowChannels")) == 1
    assert pbx.of(CallEnded, CALL_B) == []
    assert pbx.of(RingingChanged, CALL_B)[-1].extensions == ("101",)
    assert sorted(pbx.line.correlator.live_calls()) == [CALL_B, CALL_S]


async def test_a_resync_list_that_times_out_is_not_retried_as_status(
        answers: dict, caplog: pytest.LogCaptureFixture) -> None:
    """A list that did not complete in time would not as the heavier Status either: the line
    logs it and leaves ended calls to the sweep. The events held meanwhile are not lost."""
    never_ends = [lambda aid: [*_as_answer(CORE_SHOW_A, aid)[:2], *CALL_B_STARTS]]
    answers["CoreShowChannels"] = never_ends
    async with line_pbx(_responders(answers), action_timeout=0.3) as pbx:
        await pbx.until(lambda: pbx.resyncs == 1)
        await pbx.until(lambda: bool(pbx.of(RingingChanged, CALL_B)))  # after its Getvar
        assert pbx.emulator.actions_named("Status") == []
        assert pbx.of(RingingChanged, CALL_B)[-1].extensions == ("101",)
    assert "no resync, CoreShowChannels failed" in caplog.text


class _Conn:
    """Answers each list action with the next outcome: an exception or a (response, events)."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.asked: list[str] = []

    async def list_action(self, name: str, **_: object) -> tuple[Message, list[Message]]:
        self.asked.append(name)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return Message({"Response": "Success"}), []


REFUSED = AmiActionError(Message({"Response": "Error", "Message": "Permission denied"}))


@pytest.mark.parametrize(("outcome", "asked"), [
    (REFUSED, ["CoreShowChannels", "Status"]),  # no rights for it: Status may work
    (AmiError("AMI list cc-1 abandoned: 20000 events arrived"), ["CoreShowChannels"]),
    (AmiTimeout("no answer to AMI CoreShowChannels"), ["CoreShowChannels"]),
    (AmiConnectionLost("down"), ["CoreShowChannels"]),
    (None, ["CoreShowChannels"]),
])
async def test_status_is_the_fallback_only_when_core_show_channels_is_refused(
        outcome: Exception | None, asked: list[str]) -> None:
    line = AsteriskLine(PbxLineConfig(name="office"), lambda _: None)
    conn = _Conn(outcome, REFUSED)
    await line._resync(conn)  # type: ignore[arg-type]
    assert conn.asked == asked

"""Withheld numbers around a resync (issue 7, item 6): calls the snapshot adopts are asked about
their presentation too, and a call still waiting for the answer keeps its events in order.
The real AmiConnection and AsteriskLine against the emulator answering chosen actions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from callcenter.line_events import CallEnded, CallStarted, LineEvent
from pbx.ami.emulator import response
from pbx.ami.message import Message
from tests.calls.harness import LinePbx, line_pbx
from tests.calls.test_resync_order import (
    CALL_A,
    CALL_B,
    CALL_B_STARTS,
    CORE_SHOW_A,
    _as_answer,
    _empty_list,
)

TRUNK_A = "PJSIP/trunk-00000000"


def listing(*answers: Callable[[str], list[bytes]]) -> Callable[[Message], list[bytes]]:
    queue = list(answers)

    def answer(action: Message) -> list[bytes]:
        return [b"".join(queue.pop(0)(action.action_id or ""))]

    return answer


def presentation(value: str | None) -> Callable[[Message], list[bytes]]:
    """Getvar answered with ``value``; None: never answered."""
    def answer(action: Message) -> list[bytes]:
        if value is None:
            return []
        return [response(action.action_id, ("Response", "Success"),
                         ("Variable", "CALLERID(pres)"), ("Value", value))]

    return answer


def of_call(pbx: LinePbx, key: str) -> list[LineEvent]:
    return [e for e in pbx.events if e.call_key == key]


async def test_a_call_adopted_by_the_snapshot_is_asked_and_stays_hidden() -> None:
    responders = {"CoreShowChannels": listing(lambda aid: _as_answer(CORE_SHOW_A, aid)),
                  "Getvar": presentation("prohib_passed_screen")}
    async with line_pbx(responders, withheld_timeout=5.0) as pbx:
        await pbx.until(lambda: bool(pbx.of(CallStarted, CALL_A)))
        [getvar] = pbx.emulator.actions_named("Getvar")
        assert (getvar.get("Channel"), getvar.get("Variable")) == (TRUNK_A, "CALLERID(pres)")
        [start] = pbx.of(CallStarted, CALL_A)
        assert start.withheld
        assert isinstance(of_call(pbx, CALL_A)[0], CallStarted)  # nothing of it before


async def test_a_snapshot_without_a_held_call_ends_it_after_its_start() -> None:
    """B waits for its Getvar (never answered) when a snapshot no longer lists it (it hung up,
    the Hangups lost). Its end must not overtake its start (a ghost live call), and a caller
    gone before the PBX said anything is withheld, privacy first."""
    responders = {"CoreShowChannels": listing(
                      lambda aid: _empty_list(aid, "CoreShowChannelsComplete")),
                  "Getvar": presentation(None)}
    async with line_pbx(responders, trunk_endpoints=("trunk", "faxtrunk"),
                        withheld_timeout=0.2) as pbx:
        await pbx.until(lambda: pbx.resyncs == 1)
        await pbx.emulator.inject(b"".join(CALL_B_STARTS))
        await pbx.emulator.wait_for_action("Getvar")
        assert pbx.line.holding == 1 and of_call(pbx, CALL_B) == []
        pbx.line._apply_snapshot(None, [])  # type: ignore[arg-type]  # as a resync does
        await pbx.until(lambda: bool(pbx.of(CallEnded, CALL_B)))
        events = of_call(pbx, CALL_B)
        assert isinstance(events[0], CallStarted) and events[0].withheld
        assert isinstance(events[-1], CallEnded)
        assert [type(e) for e in events].count(CallEnded) == 1
        assert pbx.line.holding == 0 and pbx.line.correlator.live_calls() == []


async def test_a_getvar_lost_with_the_connection_shows_a_call_still_up(
        caplog: pytest.LogCaptureFixture) -> None:
    responders = {"CoreShowChannels": listing(
                      lambda aid: _empty_list(aid, "CoreShowChannelsComplete"),
                      lambda aid: _empty_list(aid, "CoreShowChannelsComplete")),
                  "Getvar": presentation(None)}
    async with line_pbx(responders, trunk_endpoints=("trunk", "faxtrunk"),
                        withheld_timeout=5.0) as pbx:
        await pbx.until(lambda: pbx.resyncs == 1)
        await pbx.emulator.inject(b"".join(CALL_B_STARTS))
        await pbx.emulator.wait_for_action("Getvar")
        await pbx.emulator.drop_client()
        await pbx.until(lambda: bool(pbx.of(CallEnded, CALL_B)))
        events = of_call(pbx, CALL_B)
        assert isinstance(events[0], CallStarted) and not events[0].withheld
        assert isinstance(events[-1], CallEnded)
    assert "Getvar CALLERID(pres) failed" in caplog.text and "showing the number" in caplog.text


def _followme() -> tuple[list[bytes], bytes]:
    """A caller (trunk-00000001) the dialplan follows to a mobile (trunk-00000002, ringing):
    the call's blocks, and the caller's own Hangup."""
    from tests.pbx.test_correlator import TRUNK, dial, ev, leg

    mobile = leg("100.2", "PJSIP/trunk-00000002", context="from-internal")
    msgs = [ev("Newchannel", **TRUNK), ev("Newchannel", **mobile), dial(TRUNK, mobile),
            ev("Newstate", **{**mobile, "ChannelState": "5"})]
    hangup = ev("Hangup", **TRUNK, Cause="16")
    return ([response(None, *m.headers.items()) for m in msgs],
            response(None, *hangup.headers.items()))


async def test_on_a_timeout_a_caller_still_up_is_shown_and_one_who_hung_up_is_not(
        caplog: pytest.LogCaptureFixture) -> None:
    blocks, hangup = _followme()
    for caller_hangs_up in (False, True):
        responders = {"CoreShowChannels": listing(
                          lambda aid: _empty_list(aid, "CoreShowChannelsComplete")),
                      "Getvar": presentation(None)}
        async with line_pbx(responders, withheld_timeout=0.3) as pbx:
            await pbx.until(lambda: pbx.resyncs == 1)
            await pbx.emulator.inject(b"".join(blocks))
            getvar = await pbx.emulator.wait_for_action("Getvar")
            assert getvar.get("Channel") == "PJSIP/trunk-00000001"
            if caller_hangs_up:
                await pbx.emulator.inject(hangup)
            await pbx.until(lambda: bool(pbx.of(CallStarted, "office:100.1")))
            [start] = pbx.of(CallStarted, "office:100.1")
            assert start.withheld is caller_hangs_up
    assert caplog.text.count("no answer to Getvar CALLERID(pres) within") == 1

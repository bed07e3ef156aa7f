"""AMI call correlator: every recorded trace replayed into exact call records, plus the edge cases
the traces do not show (resync gaps, busy, withheld, malformed input)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    HoldChanged,
    LineEvent,
    MissReason,
    PbxAnswered,
    RecordingStarted,
    RingingChanged,
    TransferKind,
    Transferred,
)
from pbx.ami.channels import dial_number, is_extension, parse_channel
from pbx.ami.codec import parse_message
from pbx.ami.correlator import AmiCallCorrelator, CorrelatorConfig
from pbx.ami.escape import display_name, unescape_c, unescape_sip_quoted
from pbx.ami.message import Message
from pbx.ami.trace import BlockKind, Trace, load_trace, trace_messages
from pbx.ami.transfers import AtxferNotes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
if not FIXTURES.is_dir():  # fail loudly: a missing fixture folder must not look like a pass
    raise RuntimeError(f"AMI trace fixtures not found at {FIXTURES}")
TRACES = sorted(FIXTURES.glob("*.log"))
MON = "/var/spool/asterisk/monitor/"


# ------------------------------------------------------------------ replay and fold


def replay(
    trace: Trace, correlator: AmiCallCorrelator | None = None, *, expect: bool = True
) -> tuple[list[LineEvent], AmiCallCorrelator]:
    """Feed every received message, with the clock at the block's time. Our own click-to-call
    Originates (SEND blocks without an Application) are announced with expect_originate, as the
    adapter would do before sending them, and our Atxfers noted once the PBX accepted them."""
    now = [0.0]
    c = correlator or AmiCallCorrelator(clock=lambda: now[0])
    events: list[LineEvent] = []
    atxfers: dict[str | None, Message] = {}
    for block in trace.blocks:
        if block.kind is BlockKind.SEND:
            action = parse_message(block.data)
            if expect and action.get("Action") == "Originate" and not action.get("Application"):
                c.expect_originate(
                    action.get("ChannelId"),
                    parse_channel(action["Channel"]).endpoint,
                    action["Exten"],
                    action.get("ActionID"),
                )
            elif action.get("Action") == "Atxfer":
                atxfers[action.action_id] = action
        elif block.kind is BlockKind.RECV and not block.data.startswith(b"Asterisk Call Manager/"):
            now[0] = block.t
            msg = parse_message(block.data)
            action = atxfers.pop(msg.action_id, None) if msg.response else None
            if action is not None and msg.response == "Success":
                ext = parse_channel(action["Channel"]).endpoint
                [key] = [k for k in c.live_calls() if c.channel_for(k, ext) == action["Channel"]]
                c.note_atxfer(key, ext, action["Exten"])
            events += c.feed(msg)
    return events, c


def fold(events: Iterable[LineEvent]) -> list[dict[str, Any]]:
    """One record per call, in start order; checks the event grammar on the way."""
    calls: dict[str, dict[str, Any]] = {}
    ended: set[str] = set()
    pbx_answered: set[str] = set()
    for ev in events:
        key = ev.call_key
        assert key not in ended, f"event after CallEnded: {ev}"
        if isinstance(ev, CallStarted):
            assert key not in calls, f"CallStarted twice: {ev}"
            calls[key] = {
                "key": key,
                "direction": ev.direction.value,
                "caller": ev.caller_num,
                "name": ev.caller_name,
                "withheld": ev.withheld,
                "called": ev.called_num,
                "originated": ev.originated,
                "rang": [],
                "ringing": [],
                "queue": None,
                "answered_by": None,
                "transfers": [],
                "holds": [],
                "recordings": [],
                "end": None,
                "cause": None,
            }
            continue
        assert key in calls, f"event before CallStarted: {ev}"
        rec = calls[key]
        if isinstance(ev, RingingChanged):
            assert not rec["ringing"] or rec["ringing"][-1] != ev.extensions, f"no change: {ev}"
            rec["ringing"].append(ev.extensions)
            rec["rang"] += [x for x in ev.extensions if x not in rec["rang"]]
            rec["queue"] = ev.queue or rec["queue"]
        elif isinstance(ev, Answered):
            assert rec["answered_by"] is None, f"answered twice: {ev}"
            rec["answered_by"] = ev.extension or ("outside" if ev.by_outside else "pbx")
        elif isinstance(ev, PbxAnswered):
            assert rec["answered_by"] is None, f"the PBX answered after a person: {ev}"
            assert key not in pbx_answered, f"the PBX answered twice: {ev}"
            pbx_answered.add(key)
        elif isinstance(ev, Transferred):
            rec["transfers"].append((ev.kind.value, ev.from_ext, ev.to, ev.result))
        elif isinstance(ev, HoldChanged):
            rec["holds"].append((ev.extension, ev.on_hold))
        elif isinstance(ev, RecordingStarted):
            assert ev.path not in rec["recordings"], f"recording twice: {ev}"
            rec["recordings"].append(ev.path)
        elif isinstance(ev, CallerChanged):
            rec["caller"] = ev.caller_num if ev.caller_num is not None else rec["caller"]
            rec["name"] = ev.caller_name if ev.caller_name is not None else rec["name"]
        elif isinstance(ev, CallEnded):
            rec["end"] = (ev.state.value, ev.reason.value if ev.reason else None)
            rec["cause"] = ev.cause
            ended.add(key)
        else:  # pragma: no cover - a new event type must be folded here first
            raise AssertionError(f"unexpected event {ev!r}")
    for rec in calls.values():
        assert rec["end"] is not None, f"call never ended: {rec['key']}"
    return list(calls.values())


def call(
    key: str,
    direction: str,
    caller: str,
    name: str,
    called: str,
    *,
    withheld: bool = False,
    originated: bool = False,
    ringing: tuple[tuple[str, ...], ...] = (),
    queue: str | None = None,
    answered_by: str | None = None,
    transfers: tuple[tuple[str, str | None, str, str], ...] = (),
    holds: tuple[tuple[str | None, bool], ...] = (),
    recordings: tuple[str, ...] = (),
    end: tuple[str, str | None] = ("answered", None),
    cause: str = "16 Normal Clearing",
) -> dict[str, Any]:
    rang: list[str] = []
    for exts in ringing:
        rang += [x for x in exts if x not in rang]
    return {
        "key": "asterisk:" + key,
        "direction": direction,
        "caller": caller,
        "name": name,
        "withheld": withheld,
        "called": called,
        "originated": originated,
        "rang": rang,
        "ringing": list(ringing),
        "queue": queue,
        "answered_by": answered_by,
        "transfers": list(transfers),
        "holds": list(holds),
        "recordings": [MON + r for r in recordings],
        "end": end,
        "cause": cause,
    }


# Verified by reading each trace (see the README's key event sequences).
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "00_basics": [],
    "00_basics_badlogin": [],
    "01_inbound_answered": [
        call(
            "1795388457.1",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110000",
            ringing=(("101",), ()),
            queue="support",
            answered_by="101",
            recordings=("q-20261122-230057-1795388457.1.wav",),
        ),
    ],
    # queue rings 101, AgentRingNoAnswer, retry on a new channel (same call), caller abandons
    "02_inbound_missed": [
        call(
            "1795388472.3",
            "inbound",
            "89035556677",
            "Olga",
            "74951110000",
            ringing=(("101",), (), ("101",), ()),
            queue="support",
            end=("missed", "abandoned"),
            cause="127 Interworking, unspecified",
        ),
    ],
    "03_blind_transfer": [
        call(
            "1795388499.6",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110000",
            ringing=(("101",), (), ("102",), ()),
            queue="support",
            answered_by="101",
            transfers=(("blind", "101", "102", "success"),),
            recordings=("q-20261122-230139-1795388499.6.wav",),
        ),
    ],
    # Atxfer: Hold on 101, 103 rings through Local/103@from-internal (resolved to 103)
    "04_attended_transfer": [
        call(
            "1795388551.12",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110000",
            ringing=(("101",), (), ("103",), ()),
            queue="support",
            answered_by="101",
            transfers=(("attended", "101", "103", "success"),),
            holds=(("101", True), ("101", False)),
            recordings=("q-20261122-230231-1795388551.12.wav",),
        ),
    ],
    # 04 with an AttendedTransfer without TransferTarget* (Asterisk 22.10.1, 8 of 15 live runs):
    # the target is the leg that joined the caller's bridge, Local/103@from-internal;1
    # (test_fieldless_traces_are_resolved_by_different_rules)
    "04b_attended_transfer_no_target": [
        call(
            "1795388551.12",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110000",
            ringing=(("101",), (), ("103",), ()),
            queue="support",
            answered_by="101",
            transfers=(("attended", "101", "103", "success"),),
            holds=(("101", True), ("101", False)),
            recordings=("q-20261122-230231-1795388551.12.wav",),
        ),
    ],
    # 04b with the target joining the caller's bridge only after the AttendedTransfer: no leg
    # in that bridge yet, our own Atxfer request names 103
    "04c_attended_transfer_target_left": [
        call(
            "1795388551.12",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110000",
            ringing=(("101",), (), ("103",), ()),
            queue="support",
            answered_by="101",
            transfers=(("attended", "101", "103", "success"),),
            holds=(("101", True), ("101", False)),
            recordings=("q-20261122-230231-1795388551.12.wav",),
        ),
    ],
    # click-to-call: 102's own phone rings first, the carrier answers
    "05_click_to_call": [
        call(
            "crm-c2c-0001",
            "outbound",
            "102",
            "Manager Two",
            "89031234567",
            originated=True,
            ringing=(("102",), ()),
            answered_by="outside",
            recordings=("out-20261122-230306-crm-c2c-0001.wav",),
        ),
    ],
    # OriginateResponse Failure names "PJSIP/103" / Uniqueid <unknown>; the call still ends
    "05c_click_to_call_no_answer": [
        call(
            "1795388620.23",
            "outbound",
            "103",
            "Manager Three",
            "89031234567",
            originated=True,
            ringing=(("103",), ()),
            end=("failed", "no_answer"),
            cause="19 User alerting, no answer",
        ),
    ],
    "06_overlapping_inbound": [
        call(
            "1795388634.24",
            "inbound",
            "+79161111111",
            "Anna Smirnova",
            "74951110000",
            ringing=(("101",), ()),
            queue="support",
            answered_by="101",
            recordings=("q-20261122-230354-1795388634.24.wav",),
        ),
        call(
            "1795388637.26",
            "inbound",
            "89162222222",
            "Boris",
            "74951110000",
            ringing=(("101",), ()),
            queue="support",
            answered_by="101",
            recordings=("q-20261122-230357-1795388637.26.wav",),
        ),
    ],
    # ring group 102&103, 102 answers; the dialplan recording and the CRM's own MixMonitor
    "07_mixmonitor_recording": [
        call(
            "1795388663.28",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110001",
            ringing=(("102",), ("102", "103"), ()),
            answered_by="102",
            recordings=("rg-20261122-230423-1795388663.28.wav", "ami-1795388663.28.wav"),
        ),
    ],
    "08a_callerid_cyrillic": [
        call(
            "1795388684.31",
            "inbound",
            "89161234567",
            'Иван Петров (ООО "Ромашка") №5',
            "74951110000",
            ringing=(("101",), ()),
            queue="support",
            answered_by="101",
            recordings=("q-20261122-230444-1795388684.31.wav",),
        ),
    ],
    "08b_callerid_anonymous": [
        call(
            "1795388696.33",
            "inbound",
            "anonymous",
            "Anonymous",
            "74951110000",
            withheld=True,
            ringing=(("101",), ()),
            queue="support",
            answered_by="101",
            recordings=("q-20261122-230456-1795388696.33.wav",),
        ),
    ],
    # an AMI SendFAX originate towards the fax trunk and its loop-back peer: not office calls
    "09_fax_send": [],
    # inbound fax: answered by the PBX (fax detected), no extension rings
    "10_fax_receive": [
        call(
            "1795390045.114",
            "inbound",
            "+74957654321",
            "ACME LLC",
            "74951110009",
            answered_by="pbx",
        ),
    ],
    "11_queue_two_agents_ringall": [
        call(
            "1795389546.46",
            "inbound",
            "+79167778899",
            "Sergey Kuznetsov",
            "74951110000",
            ringing=(("101",), ("101", "102"), ()),
            queue="support",
            answered_by="102",
            recordings=("q-20261122-231906-1795389546.46.wav",),
        ),
    ],
    "12_ami_reconnect_midcall": [
        call(
            "1795389569.49",
            "inbound",
            "+79161234567",
            "Ivan Petrov",
            "74951110000",
            ringing=(("101",), ()),
            queue="support",
            answered_by="101",
            recordings=("q-20261122-231929-1795389569.49.wav",),
        ),
    ],
    "14_pjsip_trunk_admin": [],
    "15_ringgroup_noanswer_then_voicemail_like": [
        call(
            "1795389601.51",
            "inbound",
            "+79165554433",
            "Pavel Sidorov",
            "74951110001",
            ringing=(("102",), ("102", "103"), ("103",), ()),
            end=("missed", "no_answer"),
            recordings=("rg-20261122-232001-1795389601.51.wav",),
        ),
    ],
    # the number only in the DialString 89031234567@trunk; the trunk leg shows the company CID
    "16_outbound_from_phone": [
        call(
            "1795389524.44",
            "outbound",
            "101",
            "Secretary",
            "89031234567",
            answered_by="outside",
            recordings=("out-20261122-231844-1795389524.44.wav",),
        ),
    ],
}


def test_every_trace_has_an_expectation() -> None:
    assert sorted(p.stem for p in TRACES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_call_records(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trace = load_trace(path)
    with caplog.at_level(logging.ERROR, logger="pbx.ami.correlator"):
        events, c = replay(trace)
    assert fold(events) == EXPECTED[path.stem]
    assert not caplog.records, "the correlator swallowed an exception"
    assert c.live_calls() == []
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


@pytest.mark.parametrize(
    ("scenario", "rule"),
    [
        ("04_attended_transfer", []),  # TransferTarget* present: no rule needed
        ("04b_attended_transfer_no_target", ["bridge"]),
        ("04c_attended_transfer_target_left", ["atxfer"]),
    ],
)
def test_fieldless_traces_are_resolved_by_different_rules(
    scenario: str, rule: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The derived traces tell the target rules apart: 04b's target is in the caller's bridge
    when the event comes, 04c's joins it only afterwards, so our Atxfer request names it."""
    with caplog.at_level(logging.DEBUG, logger="pbx.ami.correlator"):
        events, _ = replay(load_trace(FIXTURES / f"{scenario}.log"))
    assert _rules(caplog) == rule
    assert [(e.from_ext, e.to) for e in events if isinstance(e, Transferred)] == [("101", "103")]


def test_without_our_atxfer_note_04c_falls_back_to_the_local_leg(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace = load_trace(FIXTURES / "04c_attended_transfer_target_left.log")
    trace.blocks = [b for b in trace.blocks if b"Action: Atxfer" not in b.data]
    with caplog.at_level(logging.DEBUG, logger="pbx.ami.correlator"):
        events, _ = replay(trace)
    assert _rules(caplog) == ["local"]
    assert [e.to for e in events if isinstance(e, Transferred)] == ["103"]


def test_trace_messages_and_replay_agree() -> None:
    """The replay helper feeds exactly the decoded messages trace_messages gives."""
    trace = load_trace(FIXTURES / "01_inbound_answered.log")
    c = AmiCallCorrelator(clock=lambda: 0.0)
    events = [ev for m in trace_messages(trace) for ev in c.feed(m)]
    assert fold(events) == EXPECTED["01_inbound_answered"]


def test_times_come_from_the_clock() -> None:
    events, _ = replay(load_trace(FIXTURES / "01_inbound_answered.log"))
    started = next(e for e in events if isinstance(e, CallStarted))
    answered = next(e for e in events if isinstance(e, Answered))
    ended = next(e for e in events if isinstance(e, CallEnded))
    assert answered.at - started.at == pytest.approx(4.0, abs=0.05)  # "101 rings 4 s"
    assert ended.at - answered.at == pytest.approx(5.0, abs=0.05)  # "talk 5 s"


def test_event_timestamp_header_wins_over_the_clock() -> None:
    c = AmiCallCorrelator(clock=lambda: 1.0)
    c.feed(ev("Newchannel", **TRUNK, Timestamp="1795388457.250000"))
    out = c.feed(ev("QueueCallerJoin", **TRUNK, Queue="support", Timestamp="1795388457.5"))
    assert isinstance(out[0], CallStarted)
    assert out[0].at == 1795388457.5


def test_all_traces_through_one_correlator_leave_no_state() -> None:
    c = AmiCallCorrelator(clock=lambda: 0.0)
    total = 0
    for path in TRACES:
        events, _ = replay(load_trace(path), c)
        total += len(fold(events))
    assert total == sum(len(v) for v in EXPECTED.values())
    assert c.live_calls() == []
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


# ------------------------------------------------------------------ reconnect / resync


def _session_messages(blocks: Iterable[Any]) -> list[Message]:
    return [
        parse_message(b.data)
        for b in blocks
        if b.kind is BlockKind.RECV and not b.data.startswith(b"Asterisk Call Manager/")
    ]


def test_reconnect_12_resync_keeps_the_call() -> None:
    trace = load_trace(FIXTURES / "12_ami_reconnect_midcall.log")
    first, second = trace.sessions()
    c = AmiCallCorrelator(clock=lambda: 0.0)
    events = [e for m in _session_messages(first) for e in c.feed(m)]
    assert len(c.live_calls()) == 1
    msgs = _session_messages(second)
    snapshot = [m for m in msgs if m.event == "CoreShowChannel"]
    assert len(snapshot) == 2
    assert c.resync(snapshot) == []  # both legs still up, already answered: nothing new
    events += [e for m in msgs for e in c.feed(m)]
    assert fold(events) == EXPECTED["12_ami_reconnect_midcall"]
    assert sum(isinstance(e, CallEnded) for e in events) == 1
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


def _split_01() -> tuple[list[Message], list[Message], list[Message]]:
    """01 as (before its mid-call CoreShowChannels, the CoreShowChannel events, after)."""
    msgs = trace_messages(load_trace(FIXTURES / "01_inbound_answered.log"))
    snap = [i for i, m in enumerate(msgs) if m.event == "CoreShowChannel"]
    return msgs[: snap[0] - 1], [msgs[i] for i in snap], msgs[snap[-1] + 2 :]


def test_resync_ends_a_call_that_ended_during_the_gap_exactly_once() -> None:
    before, _, after = _split_01()
    c = AmiCallCorrelator(clock=lambda: 42.0)
    for m in before:
        c.feed(m)
    key = "asterisk:1795388457.1"
    assert c.live_calls() == [key]
    assert c.resync([]) == [CallEnded(key, 42.0, EndState.ANSWERED, None, "")]
    assert c.resync([]) == []
    assert [e for m in after for e in c.feed(m)] == []  # the stray Hangups are unknown now
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


def test_resync_ends_an_unanswered_call_as_missed() -> None:
    msgs = trace_messages(load_trace(FIXTURES / "02_inbound_missed.log"))
    cut = next(i for i, m in enumerate(msgs) if m.event == "AgentRingNoAnswer")
    c = AmiCallCorrelator(clock=lambda: 7.0)
    for m in msgs[:cut]:
        c.feed(m)
    key = "asterisk:1795388472.3"
    assert c.resync([]) == [
        RingingChanged(key, 7.0, (), "support"),
        CallEnded(key, 7.0, EndState.MISSED, MissReason.ABANDONED, ""),
    ]


def test_resync_catches_an_answer_missed_during_the_gap() -> None:
    before, snapshot, after = _split_01()
    up = next(i for i, m in enumerate(before) if m.event == "Newstate" and m["ChannelState"] == "6")
    c = AmiCallCorrelator(clock=lambda: 5.0)
    for m in before[:up]:
        c.feed(m)
    key = "asterisk:1795388457.1"
    assert c.resync(snapshot) == [
        Answered(key, 5.0, "101"),
        RingingChanged(key, 5.0, (), "support"),
    ]
    rest = [e for m in after for e in c.feed(m)]
    assert rest == [CallEnded(key, 5.0, EndState.ANSWERED, None, "16 Normal Clearing")]


def test_resync_adopts_a_call_that_started_during_the_gap() -> None:
    _, snapshot, after = _split_01()
    c = AmiCallCorrelator(clock=lambda: 3.0)
    key = "asterisk:1795388457.1"
    assert c.resync(snapshot) == [
        CallStarted(
            "asterisk", key, 3.0, Direction.INBOUND, "+79161234567", "Ivan Petrov", "74951110000"
        ),
        Answered(key, 3.0, "101"),
    ]
    assert [e for m in after for e in c.feed(m)] == [
        CallEnded(key, 3.0, EndState.ANSWERED, None, "16 Normal Clearing")
    ]


def test_queue_ring_no_answer_alone_stops_the_ringing() -> None:
    msgs = trace_messages(load_trace(FIXTURES / "02_inbound_missed.log"))
    rna = next(i for i, m in enumerate(msgs) if m.event == "AgentRingNoAnswer")
    c = new_correlator()
    for m in msgs[:rna]:
        c.feed(m)
    key = "asterisk:1795388472.3"
    assert c.feed(msgs[rna]) == [RingingChanged(key, 0.0, (), "support")]


def test_abandon_after_a_ring_timeout_is_abandoned_not_no_answer() -> None:
    """The agent did not answer (NOANSWER), then the caller gave up before the retry."""
    msgs = trace_messages(load_trace(FIXTURES / "02_inbound_missed.log"))
    first_hangup = next(i for i, m in enumerate(msgs) if m.event == "Hangup")
    newchannel = next(m for m in msgs if m.event == "Newchannel")
    trunk = {k: v for k, v in newchannel.headers.items() if k != "Event"}
    c = new_correlator()
    events = [e for m in msgs[: first_hangup + 1] for e in c.feed(m)]
    events += run(
        c, ev("QueueCallerAbandon", **trunk, Queue="support"), ev("Hangup", **trunk, Cause="127")
    )
    assert fold(events)[0]["end"] == ("missed", "abandoned")


# ------------------------------------------------------------------ click-to-call


def test_click_to_call_without_expectation_is_a_plain_outbound_call() -> None:
    events, _ = replay(load_trace(FIXTURES / "05_click_to_call.log"), expect=False)
    [rec] = fold(events)
    assert (rec["direction"], rec["caller"], rec["called"], rec["originated"]) == (
        "outbound",
        "102",
        "89031234567",
        False,
    )
    assert rec["answered_by"] == "outside"


def test_someone_elses_unanswered_originate_is_not_a_call() -> None:
    events, _ = replay(load_trace(FIXTURES / "05c_click_to_call_no_answer.log"), expect=False)
    assert events == []


def test_originate_failing_before_any_channel_still_ends() -> None:
    c = AmiCallCorrelator(clock=lambda: 9.0)
    c.expect_originate("crm-c2c-7", "104", "89031234567", action_id="x-1")
    other = ev(
        "OriginateResponse",
        Response="Failure",
        ActionID="harness-1",
        Channel="PJSIP/105",
        Uniqueid="<unknown>",
        Reason="0",
    )
    assert c.feed(other) == []  # another session's originate (quirk 8)
    failure = ev(
        "OriginateResponse",
        Response="Failure",
        ActionID="x-1",
        Channel="PJSIP/104",
        Uniqueid="<unknown>",
        Reason="5",
    )
    key = "asterisk:crm-c2c-7"
    assert c.feed(failure) == [
        CallStarted(
            "asterisk", key, 9.0, Direction.OUTBOUND, "104", "", "89031234567", originated=True
        ),
        CallEnded(key, 9.0, EndState.FAILED, MissReason.BUSY, ""),
    ]
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


def test_unmatched_expectations_expire() -> None:
    now = [0.0]
    c = AmiCallCorrelator(CorrelatorConfig(originate_ttl=60), clock=lambda: now[0])
    c.expect_originate("a", "101", "1")
    now[0] = 61.0
    c.expect_originate("b", "102", "2")
    assert c.stats()["originates"] == 1


# ------------------------------------------------------------------ synthetic scenarios

TRUNK = {
    "Channel": "PJSIP/trunk-00000001",
    "Uniqueid": "100.1",
    "Linkedid": "100.1",
    "ChannelState": "4",
    "CallerIDNum": "+79165550000",
    "CallerIDName": "Caller",
    "Exten": "74951110000",
    "Context": "from-trunk",
}
KEY = "asterisk:100.1"


def ev(event: str, **headers: str) -> Message:
    return Message({"Event": event, **headers})


def leg(
    uid: str,
    channel: str,
    linkedid: str = "100.1",
    state: str = "0",
    context: str = "from-internal",
    exten: str = "s",
) -> dict[str, str]:
    return {
        "Channel": channel,
        "Uniqueid": uid,
        "Linkedid": linkedid,
        "ChannelState": state,
        "Context": context,
        "Exten": exten,
        "CallerIDNum": channel[6:9],
        "CallerIDName": "",
    }


def dial(
    src: dict[str, str] | None, dest: dict[str, str], event: str = "DialBegin", **extra: str
) -> Message:
    headers = dict(src or {})
    headers.update({"DestChannel": dest["Channel"], "DestUniqueid": dest["Uniqueid"], **extra})
    return ev(event, **headers)


def run(c: AmiCallCorrelator, *msgs: Message) -> list[LineEvent]:
    return [e for m in msgs for e in c.feed(m)]


def new_correlator() -> AmiCallCorrelator:
    return AmiCallCorrelator(clock=lambda: 0.0)


@pytest.mark.parametrize(
    ("value", "withheld"),
    [("prohib_not_screened", True), ("1", True), ("yes", True), ("allowed", False), ("", False)],
)
def test_withheld_variable_from_the_dialplan(value: str, withheld: bool) -> None:
    c = new_correlator()
    out = run(
        c,
        ev("Newchannel", **TRUNK),
        ev("VarSet", **TRUNK, Variable="CRM_WITHHELD", Value=value),
        ev("QueueCallerJoin", **TRUNK, Queue="support"),
    )
    assert isinstance(out[0], CallStarted)
    assert out[0].withheld is withheld
    assert out[0].caller_num == "+79165550000"  # kept as received; hiding is the core's job


@pytest.mark.parametrize("num", ["", "<unknown>", "anonymous", "Anonymous"])
def test_withheld_caller_numbers(num: str) -> None:
    c = new_correlator()
    out = run(c, ev("Newchannel", **{**TRUNK, "CallerIDNum": num}), ev("Hangup", **TRUNK))
    assert isinstance(out[0], CallStarted) and out[0].withheld


def test_inbound_busy_extension_is_missed_busy() -> None:
    c = new_correlator()
    a = leg("100.2", "PJSIP/101-00000002")
    out = run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **a),
        dial(TRUNK, a, DialString="101"),
        dial(TRUNK, a, "DialEnd", DialStatus="BUSY"),
        ev("Hangup", **a, Cause="17", **{"Cause-txt": "User busy"}),
        ev("Hangup", **TRUNK, Cause="16", **{"Cause-txt": "Normal Clearing"}),
    )
    assert fold(out)[0]["end"] == ("missed", "busy")
    assert fold(out)[0]["ringing"] == [("101",), ()]


def test_caller_hanging_up_during_a_second_ring_attempt_is_abandoned() -> None:
    """101 does not answer (NOANSWER), the dialplan then rings 102 and the caller gives up:
    the outcome of the earlier attempt must not decide the reason."""
    a = leg("100.2", "PJSIP/101-00000002")
    b = leg("100.3", "PJSIP/102-00000003")
    out = run(
        new_correlator(),
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **a),
        dial(TRUNK, a),
        dial(TRUNK, a, "DialEnd", DialStatus="NOANSWER"),
        ev("Hangup", **a, Cause="0"),
        ev("Newchannel", **b),
        dial(TRUNK, b),
        ev("Hangup", **TRUNK, Cause="127"),
        dial(TRUNK, b, "DialEnd", DialStatus="CANCEL"),
        ev("Hangup", **b, Cause="0"),
    )
    [rec] = fold(out)
    assert rec["ringing"] == [("101",), (), ("102",), ()]
    assert rec["end"] == ("missed", "abandoned")
    assert rec["cause"] == "127"


def test_inbound_hangup_before_anything_is_abandoned() -> None:
    out = run(
        new_correlator(),
        ev("Newchannel", **TRUNK),
        ev("Hangup", **TRUNK, Cause="16", **{"Cause-txt": "Normal Clearing"}),
    )
    assert [type(e) for e in out] == [CallStarted, CallEnded]
    assert fold(out)[0]["end"] == ("missed", "abandoned")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("BUSY", "busy"),
        ("NOANSWER", "no_answer"),
        ("CONGESTION", "failed"),
        ("CANCEL", "abandoned"),
    ],
)
def test_outbound_not_answered_is_failed(status: str, reason: str) -> None:
    phone = leg("200.1", "PJSIP/101-00000010", "200.1", state="4", exten="89031234567")
    out_leg = leg("200.2", "PJSIP/trunk-00000011", "200.1", context="from-trunk")
    out = run(
        new_correlator(),
        ev("Newchannel", **phone),
        ev("Newchannel", **out_leg),
        dial(phone, out_leg, DialString="89031234567@trunk"),
        ev("Newstate", **{**out_leg, "ChannelState": "5"}),
        dial(phone, out_leg, "DialEnd", DialStatus=status),
        ev("Hangup", **out_leg),
        ev("Hangup", **phone, Cause="16"),
    )
    [rec] = fold(out)
    assert (rec["direction"], rec["called"], rec["rang"]) == ("outbound", "89031234567", [])
    assert rec["end"] == ("failed", reason)


def test_phone_dialling_a_number_with_no_trunk_channel_fails() -> None:
    phone = leg("200.1", "PJSIP/101-00000010", "200.1", state="4", exten="89031234567")
    out = run(new_correlator(), ev("Newchannel", **phone), ev("Hangup", **phone, Cause="34"))
    [rec] = fold(out)
    assert (rec["direction"], rec["caller"], rec["called"]) == ("outbound", "101", "89031234567")
    assert rec["end"] == ("failed", "failed")


def test_phone_calls_that_never_dial_are_not_calls() -> None:
    phone = leg("200.1", "PJSIP/101-00000010", "200.1", state="4", exten="*97")
    assert (
        run(
            new_correlator(),
            ev("Newchannel", **phone),
            ev("Newstate", **{**phone, "ChannelState": "6"}),
            ev("Hangup", **phone),
        )
        == []
    )


def test_internal_call() -> None:
    a = leg("300.1", "PJSIP/101-00000020", "300.1", state="4", exten="102")
    b = leg("300.2", "PJSIP/102-00000021", "300.1")
    out = run(
        new_correlator(),
        ev("Newchannel", **a),
        ev("Newchannel", **b),
        dial(a, b, DialString="PJSIP/102"),
        ev("Newstate", **{**b, "ChannelState": "5"}),
        ev("Newstate", **{**b, "ChannelState": "6"}),
        dial(a, b, "DialEnd", DialStatus="ANSWER"),
        ev("Newstate", **{**a, "ChannelState": "6"}),
        ev("Hangup", **b, Cause="16"),
        ev("Hangup", **a, Cause="16", **{"Cause-txt": "x"}),
    )
    [rec] = fold(out)
    assert (rec["direction"], rec["caller"], rec["called"], rec["answered_by"]) == (
        "internal",
        "101",
        "102",
        "102",
    )
    assert rec["ringing"] == [("102",), ()]
    assert rec["end"] == ("answered", None) and rec["cause"] == "16 x"


def test_caller_id_change_after_start() -> None:
    c = new_correlator()
    run(c, ev("Newchannel", **TRUNK), ev("QueueCallerJoin", **TRUNK, Queue="q"))
    out = c.feed(ev("NewCallerid", **{**TRUNK, "CallerIDName": 'Ivan \\\\\\"X\\\\\\"'}))
    assert out == [CallerChanged(KEY, 0.0, None, 'Ivan "X"')]
    assert c.feed(ev("NewCallerid", **{**TRUNK, "CallerIDName": 'Ivan \\\\\\"X\\\\\\"'})) == []


def test_hold_and_unhold() -> None:
    c = new_correlator()
    a = leg("100.2", "PJSIP/101-00000002")
    run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **a),
        dial(TRUNK, a),
        ev("Newstate", **{**a, "ChannelState": "6"}),
    )
    assert c.feed(ev("Unhold", **a)) == []  # not on hold (03 has such a stray Unhold)
    assert c.feed(ev("Hold", **a)) == [HoldChanged(KEY, 0.0, "101", True)]
    assert c.feed(ev("Hold", **a)) == []
    assert c.feed(ev("Unhold", **a)) == [HoldChanged(KEY, 0.0, "101", False)]
    c.feed(ev("Hold", **a))
    assert c.feed(ev("Hangup", **a)) == [HoldChanged(KEY, 0.0, "101", False)]


def test_redirect_is_reported_by_the_adapter() -> None:
    c = new_correlator()
    a = leg("100.2", "PJSIP/101-00000002")
    run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **a),
        dial(TRUNK, a),
        ev("Newstate", **{**a, "ChannelState": "6"}),
    )
    assert c.note_redirect(KEY, "101", "102") == [
        Transferred(KEY, 0.0, TransferKind.REDIRECT, "101", "102")
    ]
    assert c.note_redirect("asterisk:nope", "101", "102") == []


def test_phone_attended_transfer_joins_the_consultation_leg() -> None:
    """A phone's own attended transfer: the consultation is a separate call (own Linkedid);
    the target leg moves into the customer's call, the consultation ends on its own."""
    c = new_correlator()
    agent = leg("100.2", "PJSIP/101-00000002")
    consult = leg("400.1", "PJSIP/101-00000003", "400.1", state="4", exten="103")
    target = leg("400.2", "PJSIP/103-00000004", "400.1")
    out = run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **agent),
        dial(TRUNK, agent),
        ev("Newstate", **{**agent, "ChannelState": "6"}),
        ev("Hold", **agent),
        ev("Newchannel", **consult),
        ev("Newchannel", **target),
        dial(consult, target),
        ev("Newstate", **{**target, "ChannelState": "6"}),
        ev(
            "AttendedTransfer",
            Result="Success",
            OrigTransfererChannel=agent["Channel"],
            OrigTransfererUniqueid="100.2",
            SecondTransfererChannel=consult["Channel"],
            SecondTransfererUniqueid="400.1",
            TransfereeChannel=TRUNK["Channel"],
            TransfereeUniqueid="100.1",
            TransferTargetChannel=target["Channel"],
            TransferTargetUniqueid="400.2",
        ),
        ev("MusicOnHoldStop", **TRUNK),
    )
    assert c.channel_for(KEY, "103") == "PJSIP/103-00000004"
    out += run(
        c,
        ev("Hangup", **agent),
        ev("Hangup", **consult),
        ev("Hangup", **target),
        ev("Hangup", **TRUNK),
    )
    customer, consultation = fold(out)
    assert customer["transfers"] == [("attended", "101", "103", "success")]
    assert customer["holds"] == [("101", True), ("101", False)]
    assert customer["answered_by"] == "101" and customer["end"] == ("answered", None)
    assert (consultation["direction"], consultation["called"], consultation["answered_by"]) == (
        "internal",
        "103",
        "103",
    )
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


def _atxfer_setup(
    c: AmiCallCorrelator, *, existing: bool = False
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The caller bridged to 101, 101 Atxfers to 103 through Local/103@from-internal;1/;2
    (``existing``: the caller and 101 are already up)."""
    agent = leg("100.2", "PJSIP/101-00000002")
    local1 = leg("100.3", "Local/103@from-internal-00000000;1")
    local2 = leg("100.4", "Local/103@from-internal-00000000;2", context="from-internal")
    phone = leg("100.5", "PJSIP/103-00000005")
    start = [] if existing else [
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **agent),
        dial(TRUNK, agent),
        ev("Newstate", **{**agent, "ChannelState": "6"}),
    ]
    run(
        c,
        *start,
        ev("BridgeEnter", **agent, BridgeUniqueid="orig"),
        ev("BridgeEnter", **TRUNK, BridgeUniqueid="orig"),
        ev("Newchannel", **local1),
        ev("Newchannel", **local2),
        ev("Newchannel", **phone),
        dial(local2, phone),
        ev("Newstate", **{**phone, "ChannelState": "6"}),
        ev("BridgeEnter", **phone, BridgeUniqueid="consult-b"),
    )
    return agent, local1, phone


def _fieldless_transfer(agent: dict[str, str], **extra: str) -> Message:
    return ev(
        "AttendedTransfer",
        Result="Success",
        OrigTransfererChannel=agent["Channel"],
        OrigTransfererUniqueid=agent["Uniqueid"],
        SecondTransfererChannel=agent["Channel"],
        SecondTransfererUniqueid=agent["Uniqueid"],
        TransfereeChannel=TRUNK["Channel"],
        TransfereeUniqueid=TRUNK["Uniqueid"],
        **extra,
    )


def _transfers(out: list[LineEvent]) -> list[tuple[str | None, str]]:
    return [(e.from_ext, e.to) for e in out if isinstance(e, Transferred)]


def test_attended_transfer_without_target_fields_finds_the_leg_in_the_callers_bridge() -> None:
    c = new_correlator()
    agent, local1, _ = _atxfer_setup(c)
    c.note_atxfer(KEY, "101", "104")  # what we asked for; the PBX's bridge is the fact
    out = run(
        c,
        ev("BridgeLeave", **agent, BridgeUniqueid="orig"),
        ev("BridgeEnter", **local1, BridgeUniqueid="orig"),
        _fieldless_transfer(agent, DestType="Bridge", DestBridgeUniqueid="orig"),
    )
    assert _transfers(out) == [("101", "103")]
    assert c.channel_for(KEY, "103") == "PJSIP/103-00000005"


def test_attended_transfer_without_target_fields_takes_our_atxfer_request() -> None:
    c = new_correlator()
    agent, _, _ = _atxfer_setup(c)
    c.note_atxfer(KEY, "101", "104")  # (104, not the Local leg's 103: to tell them apart)
    out = run(c, _fieldless_transfer(agent))  # no bridge that anyone joined
    assert _transfers(out) == [("101", "104")]
    # the note is used once: a later field-less transfer falls back to the Local leg
    assert _transfers(run(c, _fieldless_transfer(agent))) == [("101", "103")]


def test_attended_transfer_without_anything_falls_back_to_the_local_leg() -> None:
    c = new_correlator()
    agent, _, _ = _atxfer_setup(c)
    assert _transfers(run(c, _fieldless_transfer(agent))) == [("101", "103")]


def test_atxfer_notes_expire_and_are_bounded() -> None:
    notes = AtxferNotes()
    notes.note("asterisk:gone", "101", "103", 0.0)
    notes.note(KEY, "101", "105", 301.0)  # 5 minutes: a consultation nobody completed
    assert len(notes) == 1
    assert notes.take(KEY, "101", 301.0 + notes.ttl + 1) is None
    assert len(notes) == 0
    for i in range(2000):
        notes.note(f"asterisk:{i}", "101", "103", 400.0)
    assert len(notes) == notes.limit
    assert notes.take("asterisk:0", "101", 400.0) is None  # the oldest went first


def _rules(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The rule each target-less AttendedTransfer was resolved by (the correlator's debug log)."""
    return [
        str(r.args[-1])
        for r in caplog.records
        if r.name == "pbx.ami.correlator" and "without its target" in r.getMessage()
        and isinstance(r.args, tuple)
    ]


def test_an_atxfer_note_is_used_within_minutes_only() -> None:
    now = [0.0]
    c = AmiCallCorrelator(clock=lambda: now[0])
    agent, _, _ = _atxfer_setup(c)
    c.note_atxfer(KEY, "101", "104")
    now[0] = 301.0  # a note from an hour ago would be a stale guess
    assert _transfers(run(c, _fieldless_transfer(agent))) == [("101", "103")]  # the Local leg


def test_an_atxfer_note_is_used_only_for_its_transferer(
        caplog: pytest.LogCaptureFixture) -> None:
    """Our Atxfer of the call was asked for 102; the transfer Asterisk reports is 101's own
    (from its phone): 102's target is not 101's."""
    c = new_correlator()
    agent, _, _ = _atxfer_setup(c)
    c.note_atxfer(KEY, "102", "104")
    with caplog.at_level(logging.DEBUG, logger="pbx.ami.correlator"):
        assert _transfers(run(c, _fieldless_transfer(agent))) == [("101", "103")]
    assert _rules(caplog) == ["local"]
    assert len(c._atxfers) == 1  # still 102's, should 102 complete its own


def test_a_cancelled_consultation_forgets_the_atxfer_note(
        caplog: pytest.LogCaptureFixture) -> None:
    """101's Atxfer to 104 is cancelled (104's Local halves and phone hang up); later 101's
    phone transfers the call to 103 itself: 103, not the stale 104."""
    c = new_correlator()
    agent = leg("100.2", "PJSIP/101-00000002")
    to104 = [
        leg("100.6", "Local/104@from-internal-00000001;1"),
        leg("100.7", "Local/104@from-internal-00000001;2", context="from-internal"),
        leg("100.8", "PJSIP/104-00000008"),
    ]
    run(c, ev("Newchannel", **TRUNK), ev("Newchannel", **agent), dial(TRUNK, agent),
        ev("Newstate", **{**agent, "ChannelState": "6"}))
    c.note_atxfer(KEY, "101", "104")
    run(c, *(ev("Newchannel", **x) for x in to104), dial(to104[1], to104[2]))
    run(c, *(ev("Hangup", **x) for x in to104))
    assert len(c._atxfers) == 0
    _atxfer_setup(c, existing=True)
    with caplog.at_level(logging.DEBUG, logger="pbx.ami.correlator"):
        assert _transfers(run(c, _fieldless_transfer(agent))) == [("101", "103")]
    assert _rules(caplog) == ["local"]


def test_local_halves_optimised_away_keep_the_atxfer_note(
        caplog: pytest.LogCaptureFixture) -> None:
    """Asterisk may optimise the Local pair away while 101 and 103 still talk: the consultation
    is not over, our note still names the target."""
    c = new_correlator()
    agent, local1, phone = _atxfer_setup(c)
    c.note_atxfer(KEY, "101", "103")
    local2 = leg("100.4", "Local/103@from-internal-00000000;2", context="from-internal")
    run(c, ev("Hangup", **local1), ev("Hangup", **local2))
    assert len(c._atxfers) == 1
    with caplog.at_level(logging.DEBUG, logger="pbx.ami.correlator"):
        assert _transfers(run(c, _fieldless_transfer(agent))) == [("101", "103")]
    assert _rules(caplog) == ["atxfer"]
    assert c.channel_for(KEY, "103") == phone["Channel"]


def test_atxfer_notes_go_with_the_call() -> None:
    c = new_correlator()
    agent, local1, phone = _atxfer_setup(c)
    c.note_atxfer(KEY, "101", "105")  # no leg towards 105 ever comes
    c.note_atxfer("asterisk:999.1", "101", "103")  # a call that is already over: not noted
    assert len(c._atxfers) == 1
    local2 = leg("100.4", "Local/103@from-internal-00000000;2", context="from-internal")
    run(c, *(ev("Hangup", **x) for x in (agent, local1, local2, phone, TRUNK)))
    assert c.live_calls() == []
    assert len(c._atxfers) == 0


def test_resync_refreshes_the_bridges_of_kept_and_adopted_legs(
        caplog: pytest.LogCaptureFixture) -> None:
    """During the gap 101 went to the consultation and the Local half joined the caller's
    bridge; the BridgeEnter/Leave events are lost, the snapshot says where each leg is."""
    c = new_correlator()
    agent, local1, phone = _atxfer_setup(c)
    local2 = leg("100.4", "Local/103@from-internal-00000000;2", context="from-internal")
    other = leg("100.9", "PJSIP/104-00000009")  # started during the gap
    snapshot = [
        ev("CoreShowChannel", **{**TRUNK, "ChannelState": "6"}, BridgeId="orig"),
        ev("CoreShowChannel", **agent, BridgeId="consult"),
        ev("CoreShowChannel", **local1, BridgeId="orig"),
        ev("CoreShowChannel", **local2, BridgeId="consult-b"),
        ev("CoreShowChannel", **phone, BridgeId=""),
        ev("Status", **other, BridgeID="consult"),  # Status spells it BridgeID
    ]
    c.resync(snapshot)
    bridges = {uid: c._legs[uid].bridge for uid in ("100.1", "100.2", "100.3", "100.5", "100.9")}
    assert bridges == {"100.1": "orig", "100.2": "consult", "100.3": "orig", "100.5": None,
                       "100.9": "consult"}
    with caplog.at_level(logging.DEBUG, logger="pbx.ami.correlator"):
        out = run(c, _fieldless_transfer(agent, DestType="Bridge", DestBridgeUniqueid="orig"))
    assert _transfers(out) == [("101", "103")]
    assert _rules(caplog) == ["bridge"]  # the PBX's fact, not the Local-leg guess


def test_channel_for_an_internal_call_without_trunk_legs() -> None:
    """Hang-up and recording take any leg; a redirect the other party's than from_ext."""
    c = new_correlator()
    a = leg("300.1", "PJSIP/101-00000020", "300.1", state="4", exten="102")
    b = leg("300.2", "PJSIP/102-00000021", "300.1")
    run(c, ev("Newchannel", **a), ev("Newchannel", **b), dial(a, b, DialString="PJSIP/102"))
    key = "asterisk:300.1"
    assert c.channel_for(key) == "PJSIP/101-00000020"  # ringing: the caller's leg
    assert c.channel_for(key, None, other_than="101") == "PJSIP/102-00000021"
    run(c, ev("Newstate", **{**b, "ChannelState": "6"}))
    assert c.channel_for(key, None, other_than="102") == "PJSIP/101-00000020"
    assert c.channel_for(key, "102") == "PJSIP/102-00000021"
    run(c, ev("Hangup", **a))
    assert c.channel_for(key) == "PJSIP/102-00000021"  # whoever is left
    assert c.channel_for(key, None, other_than="102") is None


def test_channel_for_and_live_calls_mid_call() -> None:
    msgs = trace_messages(load_trace(FIXTURES / "04_attended_transfer.log"))
    cut = next(i for i, m in enumerate(msgs) if m.event == "AttendedTransfer")
    c = new_correlator()
    for m in msgs[: cut + 1]:
        c.feed(m)
    key = "asterisk:1795388551.12"
    assert c.live_calls() == [key]
    assert c.channel_for(key, "101") == "PJSIP/101-0000000c"
    assert c.channel_for(key, "103") == "PJSIP/103-0000000d"  # the real phone, not the Local
    assert c.channel_for(key) == "PJSIP/trunk-0000000b"
    assert c.channel_for(key, "999") is None
    assert c.channel_for("asterisk:unknown") is None


def test_rename_updates_the_channel_name() -> None:
    c = new_correlator()
    run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Rename", Channel=TRUNK["Channel"], Uniqueid="100.1", Newname="PJSIP/trunk-00000009"),
    )
    assert c.channel_for(KEY) == "PJSIP/trunk-00000009"


def test_local_channels_never_create_calls() -> None:
    """Someone else's Local-based originate: Local;1 is the first channel, ;2 dials the phone."""
    one = leg("500.1", "Local/103@from-internal-00000001;1", "500.1")
    two = leg("500.2", "Local/103@from-internal-00000001;2", "500.1", state="4")
    phone = leg("500.3", "PJSIP/103-00000005", "500.1")
    c = new_correlator()
    assert (
        run(
            c,
            ev("Newchannel", **one),
            ev("Newchannel", **two),
            ev("Newchannel", **phone),
            dial(two, phone, DialString="PJSIP/103"),
            ev("Newstate", **{**phone, "ChannelState": "5"}),
            ev("Newstate", **{**one, "ChannelState": "5"}),
            ev("Hangup", **phone),
            ev("Hangup", **one),
            ev("Hangup", **two),
        )
        == []
    )
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}


def test_local_channel_to_a_ring_group_number_is_not_a_ringing_extension() -> None:
    """Dial(Local/600@from-internal) where 600 is a ring group of 102 and 103: the phones ring,
    "600" is not an office phone and never shows up as ringing."""
    c = new_correlator()
    one = leg("100.2", "Local/600@from-internal-00000001;1")
    two = leg("100.3", "Local/600@from-internal-00000001;2", state="4")
    p102 = leg("100.4", "PJSIP/102-00000005")
    p103 = leg("100.5", "PJSIP/103-00000006")
    out = run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Newchannel", **one),
        ev("Newchannel", **two),
        dial(TRUNK, one, DialString="Local/600@from-internal"),
        ev("Newchannel", **p102),
        ev("Newchannel", **p103),
        dial(two, p102),
        dial(two, p103),
        ev("Newstate", **{**p102, "ChannelState": "5"}),
        ev("Newstate", **{**p103, "ChannelState": "5"}),
        ev("Newstate", **{**one, "ChannelState": "5"}),
        ev("Newstate", **{**p103, "ChannelState": "6"}),
        ev("Hangup", **p102, Cause="26"),
        ev("Newstate", **{**one, "ChannelState": "6"}),
        ev("Hangup", **p103),
        ev("Hangup", **two),
        ev("Hangup", **one),
        ev("Hangup", **TRUNK),
    )
    [rec] = fold(out)
    assert rec["ringing"] == [("102",), ("102", "103"), ()]
    assert rec["answered_by"] == "103"


def test_malformed_and_unknown_input_is_ignored() -> None:
    c = new_correlator()
    junk = [
        Message({}),
        ev("Hangup"),
        ev("Hangup", Uniqueid="nope", Cause="16"),
        ev("Newchannel", Uniqueid="1.1"),
        ev("Newchannel", Channel="PJSIP/101-00000001"),
        ev("Newstate", Uniqueid="1.1", ChannelState="6"),
        ev("DialBegin", DestUniqueid="9.9"),
        ev("DialEnd", DestUniqueid="9.9", DialStatus="ANSWER"),
        ev("AgentCalled"),
        ev("AgentConnect", DestUniqueid="x"),
        ev("BlindTransfer", Result="Success"),
        ev("AttendedTransfer"),
        ev("VarSet", Variable="MIXMONITOR_FILENAME", Value="/x.wav"),
        ev("VarSet"),
        ev("FAXStatus"),
        ev("OriginateResponse", Response="Failure"),
        ev("SomethingNew", Uniqueid="1.1"),
        Message({"Response": "Success", "ActionID": "1"}),
    ]
    assert run(c, *junk) == []
    assert c.stats() == {"calls": 0, "legs": 0, "originates": 0}
    run(
        c,
        ev("Newchannel", **TRUNK),
        ev("Newstate", **{**TRUNK, "ChannelState": "x"}),
        ev("Newchannel", **TRUNK, Timestamp="not-a-number"),
    )
    assert c.stats()["legs"] == 1


def test_feed_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    c = new_correlator()

    def broken(h: dict[str, str]) -> list[LineEvent]:
        raise KeyError("boom")

    c._dispatch["Newchannel"] = broken  # a bug in a handler must not stop the AMI reader
    with caplog.at_level(logging.ERROR, logger="pbx.ami.correlator"):
        assert c.feed(ev("Newchannel", **TRUNK)) == []
    assert "Newchannel" in caplog.text


# ------------------------------------------------------------------ escaping


def test_cyrillic_name_bytes_from_the_trace() -> None:
    raw = (FIXTURES / "08a_callerid_cyrillic.log").read_bytes()
    line = next(x for x in raw.split(b"\r\n") if x.startswith(b"CallerIDName: \xd0\x98"))
    value = line.decode("utf-8").partition(": ")[2]
    assert value == 'Иван Петров (ООО \\\\\\"Ромашка\\\\\\") №5'
    assert display_name(value) == 'Иван Петров (ООО "Ромашка") №5'


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("Ivan", "Ivan"),
        ('a\\"b', 'a"b'),
        ("a\\\\b", "a\\b"),
        ("tab\\there", "tab\there"),
        ("q\\?\\'", "q?'"),
        ("\\x41", "\\x41"),  # not an ast_escape_c escape: kept
        ("trailing\\", "trailing\\"),
        ("Иван", "Иван"),
    ],
)
def test_unescape_c(raw: str, plain: str) -> None:
    assert unescape_c(raw) == plain


def test_display_name_edge_cases() -> None:
    assert display_name(None) == ""
    assert display_name("<unknown>") == ""
    assert display_name('a\\\\\\"b', sip=False) == 'a\\"b'
    assert display_name('a\\\\\\"b', sip=True) == 'a"b'


_AST_C = {
    "\a": "a",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
    "\v": "v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def ast_escape_c(s: str) -> str:
    """What Asterisk's ast_escape_c does to a value before AMI sends it."""
    return "".join("\\" + _AST_C[ch] if ch in _AST_C else ch for ch in s)


def sip_quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


@given(st.text())
def test_unescape_c_inverts_ast_escape_c(s: str) -> None:
    assert unescape_c(ast_escape_c(s)) == s


@given(st.text())
def test_unescape_sip_inverts_quoting(s: str) -> None:
    assert unescape_sip_quoted(sip_quote(s)) == s


@given(st.text().filter(lambda s: s not in ("", "<unknown>")))
def test_display_name_inverts_pjsip_then_ami(s: str) -> None:
    assert display_name(ast_escape_c(sip_quote(s))) == s


# ------------------------------------------------------------------ channel names


@pytest.mark.parametrize(
    ("name", "tech", "endpoint", "context", "half"),
    [
        ("PJSIP/101-00000001", "PJSIP", "101", "", 0),
        ("PJSIP/trunk-0000000b", "PJSIP", "trunk", "", 0),
        ("PJSIP/crm-trunk2-0000001a", "PJSIP", "crm-trunk2", "", 0),
        ("PJSIP/crm-trunk2", "PJSIP", "crm-trunk2", "", 0),
        ("PJSIP/103", "PJSIP", "103", "", 0),  # OriginateResponse Failure names the dial string
        ("SIP/101-0000000a", "SIP", "101", "", 0),
        ("IAX2/101-12345", "IAX2", "101", "", 0),
        ("Local/103@from-internal-00000000;1", "Local", "103", "from-internal", 1),
        ("Local/103@from-internal-00000000;2", "Local", "103", "from-internal", 2),
        ("Local/101@from-queue/n", "Local", "101", "from-queue", 0),
        ("PJSIP/101-00000001<ZOMBIE>", "PJSIP", "101", "", 0),
        ("garbage", "", "garbage", "", 0),
        ("", "", "", "", 0),
    ],
)
def test_parse_channel(name: str, tech: str, endpoint: str, context: str, half: int) -> None:
    parsed = parse_channel(name)
    assert (parsed.tech, parsed.endpoint, parsed.context, parsed.local_half) == (
        tech,
        endpoint,
        context,
        half,
    )
    assert parsed.is_local is (tech == "Local")


@given(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,15}", fullmatch=True),
    st.integers(min_value=0, max_value=0xFFFFFFFF),
)
def test_parse_channel_pjsip_roundtrip(endpoint: str, counter: int) -> None:
    assert parse_channel(f"PJSIP/{endpoint}-{counter:08x}").endpoint == endpoint


@given(st.text())
def test_parse_channel_never_raises(name: str) -> None:
    parse_channel(name)
    dial_number(name)


@pytest.mark.parametrize(
    ("dial_string", "number"),
    [
        ("89031234567@trunk", "89031234567"),
        ("PJSIP/89031234567@trunk", "89031234567"),
        ("PJSIP/+74957654321@faxtrunk", "+74957654321"),
        ("PJSIP/trunk/sip:89031234567@10.0.0.1:5060", "89031234567"),
        ("102", "102"),
        ("PJSIP/101&PJSIP/102", "101"),
    ],
)
def test_dial_number(dial_string: str, number: str) -> None:
    assert dial_number(dial_string) == number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("101", True),
        ("123456", True),
        ("1234567", False),
        ("", False),
        (None, False),
        ("+101", False),
        ("10a", False),
        ("١٠١", False),
        ("s", False),
    ],
)
def test_is_extension(value: str | None, expected: bool) -> None:
    assert is_extension(value, 6) is expected

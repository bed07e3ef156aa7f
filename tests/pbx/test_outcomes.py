"""Call outcomes from AMI (pbx/ami/outcomes.py and how the correlator uses it): the PBX
answering alone, voicemail files, the real end cause. Synthetic events in the recorded shapes
(tests/pbx/test_correlator.py's helpers); replayed traces: tests/calls/test_outcomes.py."""

from __future__ import annotations

import pytest

from callcenter.line_events import (
    CallEnded,
    EndState,
    MissReason,
    PbxAnswered,
    RecordingKind,
    RecordingStarted,
)
from pbx.ami.outcomes import CallFacts, end_cause, record_format, voicemail_path
from tests.pbx.test_correlator import KEY, TRUNK, dial, ev, leg, new_correlator, run

UP = {**TRUNK, "ChannelState": "6"}


MESSAGE = "/var/spool/asterisk/voicemail/default/101/INBOX/msg0000"


def test_voicemail_app_message_is_a_voicemail_recording() -> None:
    c = new_correlator()
    out = run(c, ev("Newchannel", **TRUNK), ev("Newstate", **UP),
              ev("Newexten", **UP, Application="VoiceMail", AppData="101@default,u"),
              ev("VarSet", **UP, Variable="VM_MESSAGEFILE", Value=MESSAGE),
              ev("VarSet", **UP, Variable="VMSTATUS", Value="SUCCESS"),
              ev("Hangup", **UP, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert [e for e in out if not hasattr(e, "direction")] == [
        PbxAnswered(KEY, 0.0),
        # no extension: the fetcher finds the format app_voicemail wrote (wav, WAV, gsm)
        RecordingStarted(KEY, 0.0, MESSAGE, RecordingKind.VOICEMAIL),
        CallEnded(KEY, 0.0, EndState.ANSWERED, None, "16 Normal Clearing", by_pbx=True),
    ]


@pytest.mark.parametrize("status", [None, "FAILED", "USEREXIT"])
def test_voicemail_named_at_the_beep_is_no_message_before_vmstatus_success(
        status: str | None) -> None:
    """VM_MESSAGEFILE is set before anything is recorded; a message shorter than minsecs is
    deleted (VMSTATUS=FAILED); a caller who left none: no voicemail claimed."""
    c = new_correlator()
    events = [ev("Newchannel", **TRUNK), ev("Newstate", **UP),
              ev("VarSet", **UP, Variable="VM_MESSAGEFILE", Value=MESSAGE)]
    if status is not None:  # and a later success is another VoiceMail()'s, not this one's
        events += [ev("VarSet", **UP, Variable="VMSTATUS", Value=status),
                   ev("VarSet", **UP, Variable="VMSTATUS", Value="SUCCESS")]
    out = run(c, *events, ev("Hangup", **UP, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert not [e for e in out if isinstance(e, RecordingStarted)]


def test_a_caller_who_sat_in_a_queue_after_the_ivr_and_hung_up_is_missed() -> None:
    c = new_correlator()
    out = run(c, ev("Newchannel", **TRUNK), ev("Newstate", **UP),
              ev("QueueCallerJoin", **UP, Queue="support"),
              ev("QueueCallerAbandon", **UP, Queue="support"),
              ev("Hangup", **UP, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert out[-1] == CallEnded(KEY, 0.0, EndState.MISSED, MissReason.ABANDONED,
                                "16 Normal Clearing")
    assert PbxAnswered(KEY, 0.0) in out


@pytest.mark.parametrize("dest", [
    leg("100.2", "PJSIP/trunk-00000002"),  # follow-me to a mobile over the trunk
    leg("100.2", "Local/200@ringgroups-0000001;1"),  # a Local ring group
])
def test_a_caller_the_dialplan_dialled_for_after_answering_is_missed(
        dest: dict[str, str]) -> None:
    c = new_correlator()
    out = run(c, ev("Newchannel", **TRUNK), ev("Newstate", **UP),
              ev("Newchannel", **dest), dial(UP, dest, DialString="trunk/89160000000"),
              ev("Newstate", **{**dest, "ChannelState": "5"}),
              dial(UP, dest, "DialEnd", DialStatus="NOANSWER"),
              ev("Hangup", **{**dest, "ChannelState": "5"}, Cause="19"),
              ev("Hangup", **UP, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert PbxAnswered(KEY, 0.0) in out
    assert out[-1] == CallEnded(KEY, 0.0, EndState.MISSED, MissReason.NO_ANSWER,
                                "16 Normal Clearing")


def test_a_caller_who_hung_up_before_the_pbx_answered_is_still_missed() -> None:
    c = new_correlator()
    out = run(c, ev("Newchannel", **TRUNK),
              ev("Hangup", **TRUNK, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert out[-1] == CallEnded(KEY, 0.0, EndState.MISSED, MissReason.ABANDONED,
                                "16 Normal Clearing")


@pytest.mark.parametrize(("app_data", "fmt"), [
    ("/var/spool/asterisk/monitor/vm-1.wav,3,120", "wav"),
    ("/tmp/x.gsm", "gsm"),
    ("/tmp/x", ""),
    ("", ""),
])
def test_record_format(app_data: str, fmt: str) -> None:
    assert record_format(app_data) == fmt


@pytest.mark.parametrize(("variable", "value", "fmt", "path"), [
    ("RECORDED_FILE", "/mon/vm-1", "gsm", "/mon/vm-1.gsm"),
    ("RECORDED_FILE", "/mon/vm-1", "", "/mon/vm-1.wav"),
    ("RECORDED_FILE", "/mon/vm-1.wav", "gsm", "/mon/vm-1.wav"),
    ("VM_MESSAGEFILE", "/vm/default/101/INBOX/msg0001", "", "/vm/default/101/INBOX/msg0001"),
    ("VM_MESSAGEFILE", "/vm/101/INBOX/msg0001.WAV", "", "/vm/101/INBOX/msg0001.WAV"),
    ("RECORDED_FILE", "", "wav", None),
    ("RECORDED_FILE", "relative/file", "wav", None),
    ("RECORDED_FILE", "/" + "x" * 2000, "wav", None),
    ("VM_MESSAGEFILE", "/var/spool/asterisk/voicemail/../../../etc/passwd", "", None),
])
def test_voicemail_path(variable: str, value: str, fmt: str, path: str | None) -> None:
    assert voicemail_path(variable, value, fmt) == path


def test_end_cause_prefers_a_real_cause_to_0_unknown() -> None:
    assert end_cause("16 Normal Clearing", CallFacts(request_cause="17 User busy")) == (
        "16 Normal Clearing")
    assert end_cause("0 Unknown", CallFacts(request_cause="16 Normal Clearing")) == (
        "16 Normal Clearing")
    assert end_cause("0 Unknown", CallFacts(other_cause="19 User alerting, no answer")) == (
        "19 User alerting, no answer")
    assert end_cause("0 Unknown", CallFacts()) == "0 Unknown"

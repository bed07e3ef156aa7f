"""Meaning of modem answers, and the incoming-call state machine, without I/O."""

from __future__ import annotations

import pytest

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    EndState,
    MissReason,
    RingingChanged,
)
from gsm.at import split_args
from gsm.modem_calls import CallSettings, CallTracker
from gsm.modem_parse import (
    Clip,
    clip,
    cms_code,
    cms_error,
    cms_outcome_unknown,
    cops_operator,
    creg,
    csq_dbm,
    cusd,
    first_value,
    listing,
)
from gsm.modem_settings import ModemSettings


def test_signal_registration_operator():
    assert csq_dbm(split_args("+CSQ: 21,99")) == -71
    assert csq_dbm(split_args("+CSQ: 99,99")) is None
    assert csq_dbm(["x"]) is None
    r = creg(split_args("+CREG: 0,5"), urc=False)
    assert r.registered and r.roaming and r.words == "registered, roaming"
    assert creg(split_args('+CREG: 1,"00C3","0D1B"'), urc=True).stat == 1
    assert creg(split_args("+CREG: 0,3"), urc=False).words == "registration denied"
    assert cops_operator(split_args('+COPS: 0,0,"MTS RUS",2')) == "MTS RUS"
    assert cops_operator(split_args("+COPS: 0")) == ""


def test_listing_pairs_headers_and_pdus_and_skips_a_header_without_pdu():
    lines = (
        "+CMGL: 1,0,,23",
        "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
        "+CMGL: 2,1,,40",  # its PDU line is missing
        '+CMGL: 5,1,"",24',
        "0006D60B911326880736F4111011719551401110117195714000",
    )
    got = listing(lines, "+CMGL")
    assert [(m.index, m.stat, m.length) for m in got] == [(1, 0, 23), (5, 1, 24)]
    (one,) = listing(("+CMGR: 0,,23", "0011AA"), "+CMGR")
    assert (one.index, one.stat, one.pdu) == (None, 0, "0011AA")


def test_clip():
    assert clip(split_args('+CLIP: "+79161234567",145,"",,"",0')) == Clip("+79161234567", False)
    assert clip(split_args('+CLIP: "79161234567",145,"",,"",0')).number == "+79161234567"
    assert clip(split_args('+CLIP: "89161234567",129,"",,"Ivan",0')) == Clip(
        "89161234567", False, "Ivan"
    )
    assert clip(split_args('+CLIP: "",128,"",,"",1')).withheld
    assert clip(split_args('+CLIP: "9161234567;ATH",129')).number == "9161234567"


def test_cusd_args():
    c = cusd(split_args('+CUSD: 0,"AA180C3602",15'))
    assert (c.status, c.text, c.dcs) == (0, "AA180C3602", 15)
    assert cusd(split_args("+CUSD: 4")).status == 4


def test_cms_error_classes():
    assert cms_error(1) == ("unassigned (unallocated) number (+CMS ERROR 1)", True)
    assert cms_error(0xC5)[1] is True  # a duplicate: the SMSC already has it
    assert cms_error(42)[1] is False
    assert cms_error(500) == ("unknown error (+CMS ERROR 500)", False)
    assert cms_error(999) == ("+CMS ERROR 999", False)
    assert cms_error(None, "+CMS ERROR: Network timeout") == (
        "network timeout (+CMS ERROR 332)",
        False,
    )
    assert cms_error(None, "+CMS ERROR: who knows") == ("+CMS ERROR: who knows", False)


def test_cms_outcome_unknown_after_the_pdu():
    assert cms_code(None, "+CMS ERROR:  network  TIMEOUT") == 332
    assert cms_outcome_unknown(cms_code(None, "+CMS ERROR: Network timeout"), pdu_written=False)
    for code in (500, 510, 0x200, None):
        assert cms_outcome_unknown(code, pdu_written=True), code
        assert not cms_outcome_unknown(code, pdu_written=False), code
    for code in (1, 42, 0xC5, 304):
        assert not cms_outcome_unknown(code, pdu_written=True), code


def _tracker():
    return CallTracker(
        CallSettings(line="gsm1", called_num="+79000000000", ring_extensions=("101", "102"))
    )


def test_ring_clip_then_rings_stop_is_a_missed_abandoned_call():
    t = _tracker()
    assert t.ring(100.0) == []
    started = t.clip(Clip("+79161234567", False), 100.01)
    assert isinstance(started[0], CallStarted) and isinstance(started[1], RingingChanged)
    s = started[0]
    assert (s.line, s.direction, s.caller_num, s.called_num, s.at) == (
        "gsm1",
        Direction.INBOUND,
        "+79161234567",
        "+79000000000",
        100.0,
    )
    assert started[1].extensions == ("101", "102")
    assert t.ring(105.0) == [] and t.clip(Clip("+79161234567", False), 105.0) == []
    assert t.next_deadline() == 113.0
    assert t.advance(112.9) == []
    ended = t.advance(113.0)
    assert ended[0] == RingingChanged(s.call_key, 113.0, ())
    assert ended[1] == CallEnded(
        s.call_key, 113.0, EndState.MISSED, MissReason.ABANDONED, "ringing stopped"
    )
    assert not t.busy


def test_no_carrier_while_ringing_and_a_ring_without_clip():
    t = _tracker()
    t.ring(10.0)
    (s, _) = t.advance(11.5)  # no +CLIP came: started with an unknown number
    assert isinstance(s, CallStarted) and s.caller_num == ""
    (changed,) = t.clip(Clip("+79161234567", False), 12.0)  # a late +CLIP fills it in
    assert changed == CallerChanged(s.call_key, 12.0, caller_num="+79161234567", withheld=False)
    ev = t.ended(13.0, "NO CARRIER")
    assert ev[-1].state is EndState.MISSED and ev[-1].cause == "NO CARRIER"


def test_answered_then_ended_and_keys_are_unique():
    t = _tracker()
    t.ring(1.0)
    first = t.clip(Clip("", True), 1.0)[0]
    assert first.withheld
    ev = t.answered(3.0)
    assert ev[0] == Answered(first.call_key, 3.0, None)
    assert t.advance(100.0) == []  # an answered call does not end by silence
    (end,) = t.ended(60.0, "^CEND 1,57,104,16")
    assert end.state is EndState.ANSWERED
    t.ring(200.0)
    second = t.clip(Clip("+7916", False), 200.0)[0]
    assert second.call_key != first.call_key
    assert t.line_lost(201.0)[-1].cause == "modem connection lost"
    assert t.ended(202.0, "NO CARRIER") == []


def test_the_clip_wait_counts_from_the_first_ring():
    t = CallTracker(CallSettings(line="gsm1", clip_wait=1.5))
    t.ring(100.0)
    t.ring(101.0)  # RINGs a second apart must not push the card back for ever
    assert t.next_deadline() == 101.5


def test_first_value_of_an_identification_answer():
    assert first_value(["", "+CGSN: 867123456789012"]) == "867123456789012"
    assert first_value(["Quectel EC25"]) == "Quectel EC25"
    assert first_value([]) == "" and len(first_value(["x" * 500])) == 64


@pytest.mark.parametrize("bad", ['SM","SM";ATD112;', "", "SMSMS", "С"])
def test_the_storage_setting_is_a_memory_name(bad):
    with pytest.raises(ValueError, match="memory name"):
        ModemSettings(name="gsm1", path="/dev/null", storage=bad)
    assert ModemSettings(name="gsm1", path="/dev/null", storage="me").storage == "ME"

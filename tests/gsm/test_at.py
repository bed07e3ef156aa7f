"""The sans-I/O AT layer fed bytes, split at every position."""

from __future__ import annotations

import itertools

import pytest

from gsm.at import (
    ESC,
    ESC_QUIET,
    Abandon,
    AtCommand,
    AtEngine,
    AtFramer,
    CommandDone,
    CommandFailed,
    FailReason,
    Final,
    Garbage,
    GarbageKind,
    LineReceived,
    PromptReceived,
    Urc,
    command_name,
    split_args,
)


def run(
    cmds: list[AtCommand], wire: bytes, splits: list[int] | None = None
) -> tuple[AtEngine, list]:
    """Submit ``cmds``, feed ``wire`` in pieces cut at ``splits``; return every event."""
    eng = AtEngine()
    for c in cmds:
        eng.submit(c)
    eng.advance(0.0)
    events: list = []
    cuts = [0, *(splits or []), len(wire)]
    for a, b in itertools.pairwise(cuts):
        eng.receive_data(wire[a:b])
        eng.advance(0.0)
        events.extend(eng.events())
    return eng, events


def every_split(cmds: list[AtCommand], wire: bytes):
    for i in range(len(wire) + 1):
        yield run(cmds, wire, [i])


def kinds(events: list) -> list:
    out = []
    for e in events:
        if isinstance(e, Urc):
            out.append(("urc", e.name, e.line, e.pdu))
        elif isinstance(e, CommandDone):
            out.append(("done", e.response.command, e.response.final, e.response.lines))
        else:
            out.append(e)
    return out


def test_urc_inside_a_reply_is_routed_at_every_split() -> None:
    wire = b'\r\n+CMGL: 1,0,,23\r\n0791\r\n+CMTI: "SM",7\r\n+CMGL: 2,1,,24\r\n0792\r\n\r\nOK\r\n'
    want = [
        ("urc", "+CMTI", '+CMTI: "SM",7', None),
        ("done", "AT+CMGL=4", Final.OK, ("+CMGL: 1,0,,23", "0791", "+CMGL: 2,1,,24", "0792")),
    ]
    for _, ev in every_split([AtCommand("AT+CMGL=4")], wire):
        assert kinds(ev) == want


def test_echo_is_dropped_and_reply_kept() -> None:
    wire = b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n"
    for _, ev in every_split([AtCommand("AT+CSQ")], wire):
        assert kinds(ev) == [("done", "AT+CSQ", Final.OK, ("+CSQ: 17,99",))]


def test_cmgs_prompt_pdu_and_urc_inside_prompt_at_every_split() -> None:
    cmd = AtCommand("AT+CMGS=17", pdu="0011000B919761", timeout=60)
    # a URC cut into the prompt: "\r\n>" URC " ", then the echoed PDU and the answer
    wire = b'AT+CMGS=17\r\r\n>\r\n+CMTI: "SM",3\r\n 0011000B919761\x1a\r\n+CMGS: 42\r\n\r\nOK\r\n'
    for i in range(len(wire) + 1):
        eng = AtEngine()
        eng.submit(cmd)
        eng.advance(0.0)
        assert eng.data_to_send() == b"AT+CMGS=17\r"
        sent = b""
        evs: list = []
        for piece in (wire[:i], wire[i:]):
            eng.receive_data(piece)
            eng.advance(1.0)
            sent += eng.data_to_send()
            evs.extend(eng.events())
        assert sent == b"0011000B919761\x1a", i
        assert kinds(evs) == [
            ("urc", "+CMTI", '+CMTI: "SM",3', None),
            ("done", "AT+CMGS=17", Final.OK, ("+CMGS: 42",)),
        ], i


def test_plain_prompt_without_line_end() -> None:
    cmd = AtCommand("AT+CMGS=5", pdu="00AA")
    eng = AtEngine()
    eng.submit(cmd)
    eng.advance(0.0)
    eng.receive_data(b"\r\n> ")
    # the deadline is re-armed from the moment the prompt came
    eng.advance(10.0)
    assert eng.data_to_send() == b"AT+CMGS=5\r00AA\x1a"
    assert eng.next_deadline() == 10.0 + cmd.timeout


def test_urc_before_prompt() -> None:
    cmd = AtCommand("AT+CMGS=5", pdu="00AA")
    eng, ev = run([cmd], b'\r\n+CMTI: "SM",1\r\n\r\n> ')
    assert eng.data_to_send().endswith(b"00AA\x1a")
    assert [e.name for e in ev if isinstance(e, Urc)] == ["+CMTI"]


def test_error_instead_of_prompt() -> None:
    cmd = AtCommand("AT+CMGS=5", pdu="00AA")
    eng, ev = run([cmd], b"\r\n+CMS ERROR: 500\r\n")
    assert eng.data_to_send() == b"AT+CMGS=5\r"  # the PDU never left
    (done,) = ev
    assert done.response.final is Final.CMS_ERROR and done.response.code == 500


def test_three_cmti_one_after_another_all_delivered() -> None:
    wire = b'\r\n+CMTI: "SM",1\r\n\r\n+CMTI: "SM",2\r\n\r\n+CMTI: "SM",3\r\n'
    for _, ev in every_split([], wire):
        assert [u.args for u in ev] == [["SM", "1"], ["SM", "2"], ["SM", "3"]]


def test_cds_header_and_pdu_line_at_every_split() -> None:
    wire = b"\r\n+CDS: 1\r\n07919761989901F006\r\n"
    for _, ev in every_split([], wire):
        assert kinds(ev) == [("urc", "+CDS", "+CDS: 1", "07919761989901F006")]


def test_cds_pdu_stays_with_its_header_during_a_command() -> None:
    wire = b"\r\n+CDS: 2\r\n0006AB\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
    for _, ev in every_split([AtCommand("AT+CSQ")], wire):
        assert kinds(ev) == [
            ("urc", "+CDS", "+CDS: 2", "0006AB"),
            ("done", "AT+CSQ", Final.OK, ("+CSQ: 20,99",)),
        ]


def test_cusd_multiline_text_is_one_urc() -> None:
    wire = b'\r\n+CUSD: 0,"Balance: 12.50 r.\r\nTariff: Smart\r\n\r\nBye",15\r\n'
    for _, ev in every_split([], wire):
        (u,) = ev
        assert u.name == "+CUSD"
        assert split_args(u.line) == ["0", "Balance: 12.50 r.\nTariff: Smart\n\nBye", "15"]


def test_cusd_with_an_odd_quote_does_not_swallow_the_stream() -> None:
    wire = b'\r\n+CUSD: 0,"Tariff "Smart",15\r\n\r\nOK\r\n\r\n+CMTI: "SM",3\r\n'
    for _, ev in every_split([AtCommand('AT+CUSD=1,"*100#",15')], wire):
        assert kinds(ev) == [
            ("urc", "+CUSD", '+CUSD: 0,"Tariff "Smart",15', None),
            ("done", 'AT+CUSD=1,"*100#",15', Final.OK, ()),
            ("urc", "+CMTI", '+CMTI: "SM",3', None),
        ]


def test_an_unclosed_cusd_text_ends_at_a_final_code_a_urc_or_a_line_cap() -> None:
    _, ev = run([AtCommand("AT+CSQ")], b'\r\n+CUSD: 0,"cut\r\nshort\r\n\r\nOK\r\n')
    assert kinds(ev) == [
        ("urc", "+CUSD", '+CUSD: 0,"cut\nshort', None),
        ("done", "AT+CSQ", Final.OK, ()),
    ]
    _, ev = run([], b'\r\n+CUSD: 0,"cut\r\nRING\r\n+CMTI: "SM",3\r\n')
    assert [(u.name, u.line) for u in ev] == [
        ("+CUSD", '+CUSD: 0,"cut'), ("RING", "RING"), ("+CMTI", '+CMTI: "SM",3'),
    ]  # fmt: skip
    _, ev = run([], b'\r\n+CUSD: 0,"open' + b"\r\nline" * 30 + b"\r\nOK\r\n")
    assert ev[0].name == "+CUSD" and ev[0].line.count("line") == 24
    assert [type(e).__name__ for e in ev[1:]] == ["Urc"] * 6 + ["Garbage"]


def test_unknown_prefixed_lines_during_a_command_are_urcs_not_its_reply() -> None:
    wire = b"\r\n^HCSQ2:1\r\n+CSQ: 20,99\r\n+CMGS: 5\r\n\r\nOK\r\n"
    for _, ev in every_split([AtCommand("AT+CSQ")], wire):
        assert ev[:2] == [
            Urc("^HCSQ2", "^HCSQ2:1", known=False),
            Urc("+CMGS", "+CMGS: 5", known=False),
        ]
        assert kinds(ev[2:]) == [("done", "AT+CSQ", Final.OK, ("+CSQ: 20,99",))]
    # a command with no reply prefix of its own (ATI) keeps them: Huawei's +GCAP
    _, ev = run([AtCommand("ATI")], b"\r\nModel: E1550\r\n+GCAP: +CGSM\r\n\r\nOK\r\n")
    assert kinds(ev) == [("done", "ATI", Final.OK, ("Model: E1550", "+GCAP: +CGSM"))]


def test_a_pdu_line_must_have_the_length_its_header_says() -> None:
    # the header's PDU never came; AT+CGSN's 16-digit IMEISV is hex-shaped but not 25 octets
    wire = b"\r\n+CDS: 25\r\n8671234567890123\r\n\r\nOK\r\n"
    for _, ev in every_split([AtCommand("AT+CGSN")], wire):
        assert kinds(ev) == [
            ("urc", "+CDS", "+CDS: 25", None),
            ("done", "AT+CGSN", Final.OK, ("8671234567890123",)),
        ]
    # +CMT: [<alpha>],<length>; a PDU without the SMSC part is taken too
    _, ev = run([], b'\r\n+CMT: "",2\r\n0006AB\r\n+CMT: ,2\r\n06AB\r\n')
    assert [u.pdu for u in ev] == ["0006AB", "06AB"]


def test_reset_emits_a_pending_pdu_header_without_its_pdu() -> None:
    eng = AtEngine()
    eng.receive_data(b"\r\n+CDS: 25\r\n")
    assert eng.events() == []
    eng.reset()
    assert kinds(eng.events()) == [("urc", "+CDS", "+CDS: 25", None)]


def test_cusd_reply_vs_urc() -> None:
    # AT+CUSD? answers +CUSD: 1 (reply); the network's answer during it is a URC
    _, ev = run([AtCommand("AT+CUSD?")], b'\r\n+CUSD: 0,"Hi",15\r\n+CUSD: 1\r\n\r\nOK\r\n')
    assert kinds(ev) == [
        ("urc", "+CUSD", '+CUSD: 0,"Hi",15', None),
        ("done", "AT+CUSD?", Final.OK, ("+CUSD: 1",)),
    ]
    # Huawei answers the request before OK: still a URC
    _, ev = run([AtCommand('AT+CUSD=1,"*100#",15')], b"\r\n+CUSD: 2\r\nOK\r\n")
    assert kinds(ev)[0] == ("urc", "+CUSD", "+CUSD: 2", None)


def test_creg_reply_vs_urc() -> None:
    wire = b'\r\n+CREG: 1,"00A1","1B2C",7\r\n+CREG: 2,1,"00A1","1B2C",7\r\n\r\nOK\r\n'
    _, ev = run([AtCommand("AT+CREG?")], wire)
    assert kinds(ev) == [
        ("urc", "+CREG", '+CREG: 1,"00A1","1B2C",7', None),
        ("done", "AT+CREG?", Final.OK, ('+CREG: 2,1,"00A1","1B2C",7',)),
    ]
    # with no query in flight, the same reply-shaped line is a URC
    _, ev = run([AtCommand("AT+CSQ")], b"\r\n+CREG: 5\r\n+CSQ: 9,99\r\nOK\r\n")
    assert kinds(ev)[0] == ("urc", "+CREG", "+CREG: 5", None)


def test_creg_urc_with_an_unquoted_lac_is_not_the_reply() -> None:
    wire = b"\r\n+CREG: 1,1234,5678\r\n+CREG: 0,1\r\n\r\nOK\r\n"
    _, ev = run([AtCommand("AT+CREG?")], wire)
    assert kinds(ev) == [
        ("urc", "+CREG", "+CREG: 1,1234,5678", None),
        ("done", "AT+CREG?", Final.OK, ("+CREG: 0,1",)),
    ]


def test_a_textless_cusd_during_a_ussd_request_is_the_networks_answer() -> None:
    _, ev = run([AtCommand('AT+CUSD=1,"*100#",15')], b"\r\n+CUSD: 0\r\n\r\nOK\r\n")
    assert kinds(ev) == [
        ("urc", "+CUSD", "+CUSD: 0", None),
        ("done", 'AT+CUSD=1,"*100#",15', Final.OK, ()),
    ]


def test_prompt_after_a_nul() -> None:
    for wire in (b"\r\n\x00> ", b"\r\n\x00>\r\n"):
        f = AtFramer()
        f.expect_prompt = True
        assert f.feed(wire) == [PromptReceived()]


def test_clip_reply_vs_urc() -> None:
    wire = b'\r\nRING\r\n\r\n+CLIP: "+79161234567",145,,,,0\r\n+CLIP: 1,1\r\nOK\r\n'
    _, ev = run([AtCommand("AT+CLIP?")], wire)
    assert kinds(ev) == [
        ("urc", "RING", "RING", None),
        ("urc", "+CLIP", '+CLIP: "+79161234567",145,,,,0', None),
        ("done", "AT+CLIP?", Final.OK, ("+CLIP: 1,1",)),
    ]


def test_no_carrier_ends_a_dial_but_is_a_urc_otherwise() -> None:
    _, ev = run([AtCommand("ATD+79161234567;")], b"\r\nNO CARRIER\r\n")
    assert kinds(ev) == [("done", "ATD+79161234567;", Final.NO_CARRIER, ())]
    _, ev = run([AtCommand("AT+CSQ")], b"\r\nNO CARRIER\r\n+CSQ: 1,2\r\nOK\r\n")
    assert kinds(ev) == [
        ("urc", "NO CARRIER", "NO CARRIER", None),
        ("done", "AT+CSQ", Final.OK, ("+CSQ: 1,2",)),
    ]


@pytest.mark.parametrize(
    ("line", "final", "code"),
    [
        (b"ERROR", Final.ERROR, None),
        (b"+CME ERROR: 10", Final.CME_ERROR, 10),
        (b"+CME ERROR: SIM not inserted", Final.CME_ERROR, None),
        (b"+CMS ERROR: 500", Final.CMS_ERROR, 500),
        (b"COMMAND NOT SUPPORT", Final.NOT_SUPPORTED, None),
    ],
)
def test_error_finals(line: bytes, final: Final, code: int | None) -> None:
    _, ev = run([AtCommand("AT^SYSCFG?")], b"\r\n" + line + b"\r\n")
    (done,) = ev
    assert done.response.final is final and done.response.code == code
    assert not done.response.ok


def test_vendor_urcs_and_boot_lines() -> None:
    wire = (
        b"\r\n^RSSI:17\r\n\r\n^MODE:5,4\r\n\r\n^BOOT:123,0,0,0,72\r\n\r\n+WIND: 4\r\n"
        b"\r\nCall Ready\r\n\r\nSMS Ready\r\n\r\nRDY\r\n\r\n+QIND: SMS DONE\r\n"
        b"\r\n^ORIG:1,0\r\n\r\n^CONF:1\r\n\r\n^CONN:1,0\r\n\r\n^CEND:1,0,104,16\r\n"
    )
    for _, ev in every_split([AtCommand("AT")], wire + b"\r\nOK\r\n"):
        names = [e.name for e in ev if isinstance(e, Urc)]
        assert names == [
            "^RSSI", "^MODE", "^BOOT", "+WIND", "Call Ready", "SMS Ready", "RDY", "+QIND",
            "^ORIG", "^CONF", "^CONN", "^CEND",
        ]  # fmt: skip
        assert isinstance(ev[-1], CommandDone)


def test_non_utf8_bytes_never_kill_anything() -> None:
    wire = b"\r\n\xff\xfe\x80garbage\r\n+CSQ: 1\xff,99\r\n" + "Привет".encode()[:3] + b"\r\nOK\r\n"
    for _, ev in every_split([AtCommand("AT+CSQ")], wire):
        dones = [e for e in ev if isinstance(e, CommandDone)]
        assert len(dones) == 1 and dones[0].response.ok
        assert any(isinstance(e, Garbage) and e.kind is GarbageKind.UNDECODABLE for e in ev)
    # a UTF-8 character cut by a read survives
    text = '+CUSD: 0,"Баланс",72'.encode()
    for _, ev in every_split([], b"\r\n" + text + b"\r\n"):
        assert split_args(ev[0].line)[1] == "Баланс"


def test_garbage_with_no_command_is_counted_not_delivered() -> None:
    eng, ev = run([], b"\r\n\x00\x00\r\n\xff\xfe\xfd\r\nOK\r\n")
    assert [e.kind for e in ev] == [GarbageKind.UNDECODABLE, GarbageKind.STRAY]
    assert eng.framer.bad_bytes >= 3


def test_unknown_unsolicited_line_is_a_urc_marked_unknown() -> None:
    _, ev = run([], b"\r\n+XYZ: 1\r\n")
    assert ev == [Urc("+XYZ", "+XYZ: 1", known=False)]


def test_line_length_cap() -> None:
    f = AtFramer(max_line=64)
    out = f.feed(b"\r\n" + b"A" * 100)
    out += f.feed(b"B" * 100 + b"\r\nOK\r\n")
    assert out == [Garbage(GarbageKind.OVERSIZED, 200), LineReceived("OK")]
    # an unterminated +CUSD text cannot grow without bound either
    f = AtFramer(max_line=64)
    out = f.feed(b'\r\n+CUSD: 0,"' + b"x" * 20 + b"\r\n" + b"y" * 50 + b'",15\r\nOK\r\n')
    assert out[-1] == LineReceived("OK")
    assert any(isinstance(o, Garbage) for o in out)


def test_prompt_only_when_expected() -> None:
    f = AtFramer()
    assert f.feed(b"\r\n> ") == []
    f = AtFramer()
    f.expect_prompt = True
    assert f.feed(b"\r\n> ") == [PromptReceived()]


def test_one_command_at_a_time_in_order_urgent_first() -> None:
    eng = AtEngine()
    a = eng.submit(AtCommand("AT+CSQ"))
    b = eng.submit(AtCommand("AT+COPS?"))
    u = eng.submit(AtCommand("AT", urgent=True))
    eng.advance(0)
    assert eng.data_to_send() == b"AT\r"
    eng.receive_data(b"\r\nOK\r\n")
    eng.advance(0)
    assert eng.data_to_send() == b"AT+CSQ\r"
    eng.advance(0)
    assert eng.data_to_send() == b""  # the next waits for the answer
    eng.receive_data(b"\r\nOK\r\n")
    eng.advance(0)
    assert eng.data_to_send() == b"AT+COPS?\r"
    eng.receive_data(b"\r\nOK\r\n")
    assert [e.token for e in eng.events()] == [u, a, b]


def test_timeout_blocks_until_reset_and_late_answer_is_stray() -> None:
    eng = AtEngine()
    t = eng.submit(AtCommand("AT+CSQ", timeout=2))
    eng.submit(AtCommand("AT+COPS?"))
    eng.advance(0)
    eng.data_to_send()
    assert eng.next_deadline() == 2
    eng.advance(2.5)
    (ev,) = eng.events()
    assert ev == CommandFailed(t, "AT+CSQ", FailReason.TIMEOUT, True, False, ev.detail)
    assert "AT+CSQ" in ev.detail
    eng.receive_data(b"\r\nOK\r\n")  # the late answer is not the next command's
    eng.advance(3)
    assert eng.data_to_send() == b""
    assert [e.kind for e in eng.events()] == [GarbageKind.STRAY]
    eng.reset()
    eng.advance(4)
    assert eng.data_to_send() == b"AT+COPS?\r"


def test_cmgs_timeout_after_pdu_says_pdu_written() -> None:
    eng = AtEngine()
    t = eng.submit(AtCommand("AT+CMGS=5", pdu="00AA", timeout=30, prompt_timeout=5))
    eng.advance(0)
    eng.receive_data(b"\r\n> ")
    eng.advance(1)
    eng.advance(31.5)
    (ev,) = eng.events()
    assert ev.token == t and ev.pdu_written and ev.reason is FailReason.TIMEOUT


def test_prompt_timeout_sends_escape() -> None:
    eng = AtEngine()
    eng.submit(AtCommand("AT+CMGS=5", pdu="00AA", prompt_timeout=5))
    eng.advance(0)
    eng.data_to_send()
    eng.advance(6)
    assert eng.data_to_send() == b"\x1b"
    assert not eng.events()[0].pdu_written


def test_reset_fails_in_flight_and_keeps_queue() -> None:
    eng = AtEngine()
    t = eng.submit(AtCommand("ATD123;"))
    q = eng.submit(AtCommand("AT+CSQ"))
    eng.advance(0)
    eng.reset()
    (ev,) = eng.events()
    assert ev.token == t and ev.reason is FailReason.CONNECTION_LOST and ev.written
    assert eng.queued == 1 and not eng.blocked
    assert eng.cancel(q) and eng.queued == 0


def test_response_helpers() -> None:
    _, ev = run([AtCommand("AT+COPS?")], b'\r\n+COPS: 0,0,"MTS RUS",7\r\nOK\r\n')
    assert ev[0].response.first("+COPS") == ["0", "0", "MTS RUS", "7"]
    assert command_name('AT+CPIN="1234"') == "AT+CPIN"


@pytest.mark.parametrize(
    "cmd",
    [
        AtCommand('AT+CUSD=1,"*100#\r+CMGD=1",15'),
        AtCommand("AT+CMGS=5", pdu="00\x1aAT"),
        AtCommand('AT+CPBW=1,"Привет"'),
    ],
)
def test_a_command_that_would_inject_another_is_refused(cmd: AtCommand) -> None:
    eng = AtEngine()
    with pytest.raises(ValueError, match="AT\\+C"):
        eng.submit(cmd)
    assert eng.queued == 0


def test_cds_header_without_its_pdu_does_not_eat_the_final() -> None:
    _, ev = run([AtCommand("AT+CSQ")], b"\r\n+CDS: 25\r\n\r\nOK\r\n")
    assert kinds(ev) == [("urc", "+CDS", "+CDS: 25", None), ("done", "AT+CSQ", Final.OK, ())]


def test_simcom_7600_and_cinterion_lines_are_urcs() -> None:
    wire = (
        b"\r\nSMS DONE\r\n\r\nPB DONE\r\n\r\nVOICE CALL: BEGIN\r\n\r\nVOICE CALL: END: 000012\r\n"
    )
    _, ev = run([AtCommand("AT")], wire + b"\r\n^SHUTDOWN\r\n\r\nOK\r\n")
    assert [e.name for e in ev if isinstance(e, Urc)] == [
        "SMS DONE", "PB DONE", "VOICE CALL", "VOICE CALL", "^SHUTDOWN",
    ]  # fmt: skip
    assert all(e.known for e in ev if isinstance(e, Urc))


def test_split_args_quotes_and_colons() -> None:
    assert split_args('+COPS: 0,0,"MTS, RUS: 1",7') == ["0", "0", "MTS, RUS: 1", "7"]
    assert split_args("+CMGL: 1,0,,23") == ["1", "0", "", "23"]


def test_abandoned_cmgs_before_the_prompt_writes_esc_never_the_pdu() -> None:
    eng = AtEngine()
    token = eng.submit(AtCommand("AT+CMGS=5", pdu="0011AABBCC", prompt_timeout=5))
    nxt = eng.submit(AtCommand("AT+CSQ"))
    eng.advance(0.0)
    assert eng.data_to_send() == b"AT+CMGS=5\r"
    assert eng.abandon(token) is Abandon.CANCELLED
    assert eng.data_to_send() == ESC
    eng.receive_data(b"\r\n> ")
    eng.advance(1.0)
    assert eng.data_to_send() == ESC  # in place of the PDU
    eng.advance(1.0 + ESC_QUIET - 0.01)
    assert eng.data_to_send() == b"" and eng.busy  # a modem may still answer the ESC
    eng.advance(1.0 + ESC_QUIET)
    assert eng.data_to_send() == b"AT+CSQ\r"
    ev = eng.events()
    assert [(type(e).__name__, e.token) for e in ev] == [("CommandFailed", token)]
    assert ev[0].reason is FailReason.ABANDONED and not ev[0].pdu_written
    eng.receive_data(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
    (done,) = eng.events()
    assert done.token == nxt and done.response.lines == ("+CSQ: 20,99",)


def test_abandoned_cmgs_whose_esc_is_answered_keeps_the_next_answer_in_step() -> None:
    eng = AtEngine()
    token = eng.submit(AtCommand("AT+CMGS=5", pdu="0011AABBCC"))
    nxt = eng.submit(AtCommand("AT+CSQ"))
    eng.advance(0.0)
    eng.data_to_send()
    eng.abandon(token)
    eng.receive_data(b"\r\n> ")
    eng.advance(0.1)
    eng.receive_data(b"\r\nERROR\r\n")  # this modem answers the ESC
    eng.advance(0.2)
    assert eng.data_to_send() == ESC + ESC + b"AT+CSQ\r"
    assert [e.token for e in eng.events()] == [token]
    eng.receive_data(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
    assert [(e.token, e.response.lines) for e in eng.events()] == [(nxt, ("+CSQ: 20,99",))]


def test_abandoned_cmgs_after_the_pdu_is_in_doubt_and_its_answer_is_not_the_next() -> None:
    eng = AtEngine()
    token = eng.submit(AtCommand("AT+CMGS=5", pdu="0011AABBCC"))
    nxt = eng.submit(AtCommand("AT+CSQ"))
    eng.advance(0.0)
    eng.receive_data(b"\r\n> ")
    eng.advance(0.1)
    assert eng.data_to_send() == b"AT+CMGS=5\r0011AABBCC\x1a"
    assert eng.abandon(token) is Abandon.IN_DOUBT
    assert eng.abandon(nxt) is Abandon.DROPPED
    assert eng.abandon(nxt) is Abandon.UNKNOWN
    eng.receive_data(b"\r\n+CMGS: 7\r\n\r\nOK\r\n")
    eng.advance(0.2)
    assert [e.token for e in eng.events()] == [token]
    assert eng.data_to_send() == b"" and not eng.busy

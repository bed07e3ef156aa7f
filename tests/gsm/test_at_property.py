"""Any mix of replies and URCs, cut into any chunks, gives the same events in the same order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gsm.at import AtCommand, AtEngine, CommandDone, Urc

COMMANDS = [
    ("AT+CSQ", ["+CSQ: 17,99"]),
    ("AT+CMGL=4", ["+CMGL: 1,0,,23", "07919761989901F0040B91", "+CMGL: 2,1,,5", "0011AA"]),
    ("AT+CREG?", ['+CREG: 2,1,"00A1","1B2C",7']),
    ("AT+CUSD?", ["+CUSD: 1"]),
    ("AT+CLIP?", ["+CLIP: 1,1"]),
    ("ATI", ["Manufacturer: huawei", "Model: E1550", "+GCAP: +CGSM"]),
    ("AT+CMGD=1", []),
]
FINALS = ["OK", "ERROR", "+CMS ERROR: 500", "+CME ERROR: 10", "COMMAND NOT SUPPORT"]
# (wire lines, the URC it must become)
URCS = [
    (['+CMTI: "SM",3'], ("+CMTI", '+CMTI: "SM",3', None)),
    (["RING"], ("RING", "RING", None)),
    (['+CLIP: "+79161234567",145,,,,0'], ("+CLIP", '+CLIP: "+79161234567",145,,,,0', None)),
    (["^RSSI:17"], ("^RSSI", "^RSSI:17", None)),
    (['+CREG: 1,"00A1","1B2C",7'], ("+CREG", '+CREG: 1,"00A1","1B2C",7', None)),
    (['+CUSD: 0,"Bal', 'ance",15'], ("+CUSD", '+CUSD: 0,"Bal\nance",15', None)),
    (["+CDS: 3", "0006AABB"], ("+CDS", "+CDS: 3", "0006AABB")),
    (["NO CARRIER"], ("NO CARRIER", "NO CARRIER", None)),
    (["+CUSD: 2"], ("+CUSD", "+CUSD: 2", None)),
]


@st.composite
def exchanges(draw):
    out = []
    for _ in range(draw(st.integers(1, 5))):
        text, lines = draw(st.sampled_from(COMMANDS))
        final = draw(st.sampled_from(FINALS))
        echo = draw(st.booleans())
        slots = len(lines) + 1
        urcs = draw(st.lists(st.tuples(st.integers(0, slots), st.sampled_from(URCS)), max_size=3))
        wire = [text + "\r"] if echo else []
        expected = []
        for pos in range(slots + 1):
            for at, (wl, ev) in urcs:
                if at == pos:
                    wire += ["\r\n" + ln for ln in wl]
                    wire[-1] += "\r\n"
                    expected.append(("urc", *ev))
            if pos < len(lines):
                wire.append("\r\n" + lines[pos] + "\r\n")
            elif pos == len(lines):
                wire.append("\r\n" + final + "\r\n")
                expected.append(("done", text, tuple(lines), final))
        data = "".join(wire).encode()
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
        out.append((AtCommand(text), data, cuts, expected))
    return out


def _norm(ev):
    if isinstance(ev, Urc):
        return ("urc", ev.name, ev.line, ev.pdu)
    assert isinstance(ev, CommandDone)
    r = ev.response
    return ("done", r.command, r.lines, r.final_text)


@settings(max_examples=150, deadline=None)
@given(exchanges())
def test_any_split_same_events(script) -> None:
    eng = AtEngine()
    got, want = [], []
    for cmd, data, cuts, expected in script:
        eng.submit(cmd)
        eng.advance(0)
        assert eng.data_to_send() == cmd.text.encode() + b"\r"
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            eng.receive_data(data[a:b])
            eng.advance(0)
        got += [_norm(e) for e in eng.events()]
        want += expected
    assert got == want

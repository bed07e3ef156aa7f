"""The emulator's network-side PDU code against published examples (3GPP TS 23.040 / 23.038)."""

from __future__ import annotations

from gsm.emulator_pdu import (
    decode_submit,
    decode_time,
    encode_deliver,
    encode_status_report,
    encode_time,
    gsm7_septets,
    pack7,
    split_text,
    tpdu_length,
    unpack7,
)


def test_pack7_spec_example() -> None:
    assert pack7(gsm7_septets("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert unpack7(bytes.fromhex("E8329BFD4697D9EC37"), 10) == gsm7_septets("hellohello")


def test_decode_submit_example() -> None:
    s = decode_submit("0011000B916407281553F80000AA0AE8329BFD4697D9EC37")
    assert (s.destination, s.text, s.status_report, s.concat) == (
        "+46708251358", "hellohello", False, None,
    )  # fmt: skip
    assert s.tpdu_length == 23


def test_decode_submit_concat_ucs2_with_report() -> None:
    # SRR set, UDH 8-bit reference 0x2A part 2 of 3, UCS2 "Да"
    pdu = "0061070B919761123456F700080A0500032A030204140430"
    s = decode_submit(pdu)
    assert s.status_report and s.concat == (0x2A, 2, 3) and s.text == "Да"
    assert s.mr == 7 and s.destination == "+79162143657"


def test_deliver_with_udh_fill_bits_round_trip() -> None:
    pdu = encode_deliver("+79161234567", "x" * 10, smsc="+79168999100", when=0,
                         alphabet="gsm7", concat=(5, 1, 2))  # fmt: skip
    b = bytes.fromhex(pdu)
    # after the 6-octet UDH the text starts on a septet boundary: 1 fill bit
    ud = b[-(6 + 9) :]
    assert ud[:6].hex() == "050003050201"
    assert unpack7(ud[6:], 10, fill=1) == gsm7_septets("x" * 10)
    assert tpdu_length(pdu) == len(b) - 1 - b[0]


def test_time_round_trip_with_zone() -> None:
    t = 1_764_600_000.0
    assert decode_time(encode_time(t, 12)) == t
    assert decode_time(encode_time(t, -20)) == t


def test_split_never_cuts_escape_or_surrogate() -> None:
    alpha, parts = split_text("€" * 100)
    assert alpha == "gsm7" and all(len(p) * 2 <= 153 for p in parts) and "".join(parts) == "€" * 100
    text = "a" * 66 + "😀" + "b" * 10
    alpha, parts = split_text(text)
    assert alpha == "ucs2" and parts[0] == "a" * 66 and parts[1].startswith("😀")


def test_status_report_layout() -> None:
    pdu = encode_status_report(42, "+79161234567", smsc="", submitted=0, done=60, status=0)
    b = bytes.fromhex(pdu)
    assert b[0] == 0 and b[1] == 0x06 and b[2] == 42 and b[-1] == 0

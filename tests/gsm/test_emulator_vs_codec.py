"""The emulator's network-side PDU code and the product's codec (``gsm/pdu.py``) were written
separately; here each reads what the other writes, so a bug shared by both is unlikely."""

from __future__ import annotations

import pytest

from callcenter.sms.events import Address, AddressKind, Concat, SmsEncoding
from gsm import emulator_pdu as E
from gsm import pdu as C

INTL = Address(AddressKind.INTERNATIONAL, "+79161234567")
NATL = Address(AddressKind.NATIONAL, "89161234567")

TEXTS = [
    ("hello", SmsEncoding.GSM7),
    ("[€] {^} ~|\\", SmsEncoding.GSM7),
    ("Привет, мир", SmsEncoding.UCS2),
    ("emoji 😀 here", SmsEncoding.UCS2),
]


@pytest.mark.parametrize(("text", "enc"), TEXTS)
@pytest.mark.parametrize("to", [INTL, NATL])
@pytest.mark.parametrize("concat", [None, Concat(ref=200, total=3, seq=2), Concat(300, 2, 1)])
def test_product_submit_read_by_emulator(text: str, enc: SmsEncoding, to: Address, concat) -> None:
    p = C.encode_submit(C.SubmitPdu(to=to, text=text, encoding=enc, concat=concat))
    s = E.decode_submit(p.hex)
    assert (s.destination, s.text, s.status_report) == (to.value, text, True)
    assert s.concat == (None if concat is None else (concat.ref, concat.seq, concat.total))
    assert s.tpdu_length == p.tpdu_length


@pytest.mark.parametrize(("text", "enc"), TEXTS)
@pytest.mark.parametrize("sender", ["+79161234567", "89161234567", "MTS", "Bank24"])
@pytest.mark.parametrize("concat", [None, (17, 1, 2), (4660, 2, 2)])
def test_emulator_deliver_read_by_product(text: str, enc: SmsEncoding, sender: str, concat) -> None:
    alphabet = "gsm7" if enc is SmsEncoding.GSM7 else "ucs2"
    when = 1_764_600_000.0
    hex_ = E.encode_deliver(sender, text, smsc="+79168999100", when=when, alphabet=alphabet,
                            concat=concat)  # fmt: skip
    d = C.decode(hex_, E.tpdu_length(hex_))
    assert isinstance(d, C.DeliverPdu)
    assert d.sender.value == sender and d.text == text and d.encoding is enc
    assert d.scts is not None and d.scts.timestamp() == when
    if concat is None:
        assert d.concat is None
    else:
        assert (d.concat.ref, d.concat.seq, d.concat.total) == concat


@pytest.mark.parametrize("status", [0x00, 0x20, 0x41])
def test_emulator_status_report_read_by_product(status: int) -> None:
    hex_ = E.encode_status_report(42, "+79161234567", smsc="+79168999100", submitted=1.7e9,
                                  done=1.7e9 + 60, status=status)  # fmt: skip
    r = C.decode(hex_)
    assert isinstance(r, C.StatusReportPdu)
    assert (r.message_ref, r.recipient.value, r.status) == (42, "+79161234567", status)
    assert r.discharge is not None and r.discharge.timestamp() == 1.7e9 + 60

"""The PDU codec on published vectors and on round trips.

Vectors marked [pgm] are from faucamp/python-gsmmodem ``test/test_pdu.py`` (the suite that
python-gsmmodem-new still ships); [diafaan] is the alphanumeric example from Diafaan's PDU
documentation, used by many decoders' test suites; [ru] are real Russian operator PDUs
(Beeline, the MChS "RSCHS" sender, MegaFon-style +7921 numbers) from the test table of a public
C modem-firmware PDU decoder found with the code search.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from callcenter.sms.events import Address, AddressKind, Concat, SmsEncoding
from callcenter.sms.segments import outbound_parts
from gsm import gsm7
from gsm.pdu import (
    DeliverPdu,
    PduError,
    StatusReportPdu,
    SubmitPdu,
    decode,
    decode_relative_validity,
    decode_timestamp,
    encode_deliver,
    encode_relative_validity,
    encode_status_report,
    encode_submit,
    encode_timestamp,
    parse_hex,
    submit_for_part,
)

INTL = AddressKind.INTERNATIONAL
NAT = AddressKind.NATIONAL
ALNUM = AddressKind.ALPHANUMERIC


def tz(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))


# --- published vectors ---------------------------------------------------------------------


def test_pgm_deliver_gsm7():
    p = decode("06917228195339040B917228214365F700003130805120618005D4F29C2E03")
    assert isinstance(p, DeliverPdu)
    assert p.smsc == Address(INTL, "+2782913593")
    assert p.sender == Address(INTL, "+27821234567")
    assert p.scts == datetime(2013, 3, 8, 15, 2, 16, tzinfo=tz(2))
    assert (p.text, p.encoding, p.concat) == ("Test2", SmsEncoding.GSM7, None)


def test_pgm_deliver_long_gsm7_plus_eight_hours():
    p = decode(
        "07915892000000F0040B915892214365F700007040213252242331493A283D0795C3F33C88FE06C9CB613288"
        "5EC6D341EDF27C1E3E97E7207B3A0C0A5241E377BB1D7693E72E"
    )
    assert p.sender.value == "+85291234567" and p.smsc.value == "+85290000000"
    assert p.scts == datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(8))
    assert p.text == "It is easy to read text messages via AT commands."


def test_pgm_deliver_extension_table():
    p = decode("06917228195339040B917228214365F70000313062315352800A800D8A5E98D337A910")
    assert p.text == "@{tést}!"


def test_pgm_submit_with_relative_validity():
    p = decode("07911326040000F0310D0B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701")
    assert isinstance(p, SubmitPdu)
    assert p.smsc.value == "+31624000000" and p.to.value == "+31628870634"
    assert (p.message_ref, p.validity_minutes, p.text) == (13, 3 * 1440, "www.diafaan.com")
    assert p.status_report is True


def test_pgm_status_report():
    p = decode("0006D60B911326880736F4111011719551401110117195714000")
    assert isinstance(p, StatusReportPdu)
    assert (p.message_ref, p.recipient.value, p.status) == (214, "+31628870634", 0)
    assert p.smsc is None
    assert p.scts == datetime(2011, 1, 11, 17, 59, 15, tzinfo=tz(1))
    assert p.discharge == datetime(2011, 1, 11, 17, 59, 17, tzinfo=tz(1))


def test_pgm_deliver_national_sender_with_concat_header():
    p = decode(
        "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E0649"
        "41B19CAB060319A5C522289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E5"
        "65D0DB0D82C55EB0DB4B068BCD5C20"
    )
    assert p.sender == Address(NAT, "2781188")  # TON unknown: no "+" invented
    assert p.smsc.value == "+2781191"
    assert p.concat == Concat(ref=0xC3, total=1, seq=1)
    assert p.text == (
        "Hello!You have R 19.50 FREE airtime available. R 19.50 will expire on 01/07/2013. "
    )


def test_pgm_submit_ucs2_and_a_udl_that_lies():
    p = decode("07914346466554F601000B914316565811F9000806304253F68449")
    assert (p.to.value, p.text, p.encoding) == ("+34616585119", "あ叶葉", SmsEncoding.UCS2)
    p = decode("0041010C910661345542F60008A0050003000301306F3044")
    assert p.concat == Concat(ref=0, total=3, seq=1) and p.text == "はい"


def test_pgm_eight_bit_data_is_kept_as_bytes():
    p = decode("0591721891F101000B917228214365F700040C48656C6C6F20776F726C6421")
    assert (p.encoding, p.text, p.data) == (SmsEncoding.DATA, "", b"Hello world!")


def test_pgm_zte_status_report_with_a_broken_address_does_not_crash():
    p = decode("0297F1061C0F910B487228297020F5317062419272803170624192138000")
    assert isinstance(p, StatusReportPdu) and p.message_ref == 28


def test_diafaan_alphanumeric_sender_has_no_stray_at_sign():
    p = decode("0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B")
    assert p.sender == Address(ALNUM, "diafaan")
    assert p.text == "diafaan.com"
    assert p.scts == datetime(2011, 1, 11, 13, 25, 41, tzinfo=UTC)


@pytest.mark.parametrize(
    ("pdu", "sender", "text", "concat"),
    [
        (
            "07919712690080F8040B919712890064F90008522021219333212404"
            "1F0440043E04320435044"
            "0043A0430002004410432044F043704380020004D00490058",
            Address(INTL, "+79219800469"),
            "Проверка связи MIX",
            None,
        ),
        (
            "07919736799499F8640DD0E272999D76971B000852207212329221370608045C250202002F006D0079"
            "006200650065002E0070006100670065002E006C0069006E006B002F0074006F007000750070000D000A",
            Address(ALNUM, "beeline"),
            "/mybee.page.link/topup\r\n",
            Concat(ref=0x5C25, total=2, seq=2),
        ),
        (
            "07919712690080F8440B919712890064F900085230300213232150050003E20303044B00200441044204"
            "30044004300435043C0441044F002004380020043F043504470430044204300435043C00200440043004"
            "37043D0443044E0020043504400443043D04340443002E",
            Address(INTL, "+79219800469"),
            "ы стараемся и печатаем разную ерунду.",
            Concat(ref=0xE2, total=3, seq=3),
        ),
    ],
)
def test_ru_operator_pdus(pdu, sender, text, concat):
    p = decode(pdu)
    assert (p.sender, p.text, p.concat) == (sender, text, concat)
    assert p.scts.utcoffset() == timedelta(hours=3)


def test_pgm_submit_encodings_byte_exact():
    e = encode_submit(SubmitPdu(Address(INTL, "+27820001111"), "Hello World!", status_report=False))
    assert e.hex == "0001000B917228001011F100000CC8329BFD065DDF72363904"
    assert e.tpdu_length == len(e.hex) // 2 - 1
    e = encode_submit(
        SubmitPdu(
            Address(INTL, "+123456789"),
            "世界您好！",
            SmsEncoding.UCS2,
            status_report=False,
            validity_minutes=52 * 10080,
            smsc=Address(INTL, "+44000000000"),
        )
    )
    assert e.hex == "07914400000000F01100099121436587F90008F40A4E16754C60A8597DFF01"
    assert e.tpdu_length == len(e.hex) // 2 - 8


def test_pgm_concatenated_submit_byte_exact():
    text = (
        "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua.Ut enim ad minim veniam, quinostrud "
        "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.Duis aute irure "
        "dolor in reprehenderit in voluptate velit esse cillum doloe eu fugiat nulla pariatur."
        "Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt "
        "mollit anim id est laborum"
    )
    to = Address(INTL, "+15125551234")
    parts = outbound_parts(to, text, concat_ref=0, status_report=False)
    hexes = [
        encode_submit(
            SubmitPdu(
                to,
                p.text,
                status_report=False,
                reject_duplicates=True,
                concat=Concat(0, p.total, p.seq),
            )
        ).hex
        for p in parts
    ]
    assert [h[:30] for h in hexes] == [
        "0045000B915121551532F40000A005",
        "0045000B915121551532F40000A005",
        "0045000B915121551532F400008C05",
    ]
    assert hexes[0].endswith("1B642FBBD3E1360B14AFA7DD")
    assert hexes[2].endswith("A7E9A0B03BDD06A5C9A0F29C0E6287C56F79BD0D")


def test_pgm_relative_validity_and_timestamps():
    for minutes, vp in [(30, 5), (16 * 60, 151), (3 * 1440, 169), (5 * 10080, 197)]:
        assert encode_relative_validity(minutes) == vp
        assert decode_relative_validity(vp) == minutes
    assert encode_relative_validity(31) == 6  # rounded up: never shorter than asked
    for ts, raw in [
        (datetime(2015, 11, 27, tzinfo=tz(0)), "51117200000000"),
        (datetime(2015, 11, 27, tzinfo=tz(2)), "51117200000080"),
        (datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(8)), "70402132522423"),
        (datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(-8)), "7040213252242B"),
    ]:
        assert encode_timestamp(ts).hex().upper() == raw
        assert decode_timestamp(bytes.fromhex(raw)) == ts


def test_quarter_hour_zones_and_garbage_dates():
    ist = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    nfl = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(-timedelta(hours=3, minutes=30)))
    npt = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=45)))
    for ts in (ist, nfl, npt):
        assert decode_timestamp(encode_timestamp(ts)) == ts
    assert decode_timestamp(bytes.fromhex("62F31201000000")) is None  # month 13 / bad digit
    with pytest.raises(PduError):
        encode_timestamp(datetime(2026, 1, 1))


# --- round trips ---------------------------------------------------------------------------


def _submit_round_trip(to: Address, text: str, ref: int = 42) -> list[SubmitPdu]:
    out = []
    for part in outbound_parts(to, text, concat_ref=ref):
        e = submit_for_part(
            part.to,
            part.text,
            part.encoding,
            seq=part.seq,
            total=part.total,
            concat_ref=part.concat_ref,
        )
        p = decode(e.hex)
        assert isinstance(p, SubmitPdu) and p.status_report
        assert len(bytes.fromhex(e.hex)) - 1 == e.tpdu_length
        out.append(p)
    return out


def test_cyrillic_200_characters_three_ucs2_parts_with_headers():
    text = ("Здравствуйте, Иван! Ваш заказ №123 готов к выдаче в офисе на Ленина 5. " * 3)[:200]
    parts = _submit_round_trip(Address(INTL, "+79161234567"), text, ref=77)
    assert [p.concat for p in parts] == [Concat(77, 3, 1), Concat(77, 3, 2), Concat(77, 3, 3)]
    assert all(p.encoding is SmsEncoding.UCS2 for p in parts)
    assert "".join(p.text for p in parts) == text
    raw = bytes.fromhex(
        submit_for_part(
            Address(INTL, "+79161234567"),
            parts[0].text,
            SmsEncoding.UCS2,
            seq=1,
            total=3,
            concat_ref=77,
        ).hex
    )
    assert raw[1] == 0x61  # SUBMIT + TP-SRR + TP-UDHI
    assert raw.endswith(parts[0].text.encode("utf-16-be"))
    assert bytes([140, 5, 0, 3, 77, 3, 1]) in raw  # UDL 140 = 6 header + 134 text octets


def test_emoji_on_a_boundary_arrives_whole():
    text = "я" * 66 + "😀" + "я" * 10 + "👍"
    parts = _submit_round_trip(Address(INTL, "+79161234567"), text)
    assert parts[0].text == "я" * 66 and parts[1].text.startswith("😀")
    assert "".join(p.text for p in parts) == text


def test_extension_table_multipart_round_trip():
    text = "Цена: 10€ [скидка] {код} ~ | ^ \\ " * 5
    assert "".join(p.text for p in _submit_round_trip(Address(INTL, "+49301234567"), text)) == text
    gsm_text = "Price 10€ [sale] {code} ~ | ^ \\ " * 7
    parts = _submit_round_trip(Address(INTL, "+49301234567"), gsm_text)
    assert all(p.encoding is SmsEncoding.GSM7 for p in parts) and len(parts) == 2
    assert "".join(p.text for p in parts) == gsm_text


def test_sixteen_bit_reference_round_trip():
    parts = _submit_round_trip(Address(INTL, "+79161234567"), "a" * 400, ref=0x1234)
    assert [p.concat for p in parts] == [Concat(0x1234, 3, i) for i in (1, 2, 3)]
    assert all(p.wide_ref for p in parts)


def test_national_number_is_never_turned_into_plus_zero():
    for number in ("89161234567", "0612345678", "900"):
        (p,) = _submit_round_trip(Address(NAT, number), "hi")
        assert p.to == Address(NAT, number)
    e = encode_deliver(DeliverPdu(Address(NAT, "0612345678"), "salut"))
    assert decode(e.hex).sender == Address(NAT, "0612345678")
    # An SMSC that marks a national number "international" still gets no "+0".
    raw = "00040A91" + "6021436587" + "0000" + "62101201000021" + "02E834"
    assert decode(raw).sender == Address(NAT, "0612345678")
    with pytest.raises(PduError):
        encode_submit(SubmitPdu(Address(INTL, "+0612345678"), "x"))
    with pytest.raises(PduError):
        encode_submit(SubmitPdu(Address(NAT, "12ab; rm"), "x"))


def test_alphanumeric_sender_round_trip():
    for name in ("MTS", "Bank", "diafaan", "Beeline-Mob", "Sale@Shop"):
        e = encode_deliver(DeliverPdu(Address(ALNUM, name), "text", scts=None))
        assert decode(e.hex).sender == Address(ALNUM, name)
    with pytest.raises(PduError):
        encode_deliver(DeliverPdu(Address(ALNUM, "TwelveChars!"), "x"))


def test_deliver_round_trip_multipart_and_timestamp():
    scts = datetime(2026, 12, 1, 16, 40, 5, tzinfo=timezone(-timedelta(hours=4, minutes=30)))
    e = encode_deliver(
        DeliverPdu(
            Address(INTL, "+79161234567"),
            "Привет 👋",
            SmsEncoding.UCS2,
            scts=scts,
            concat=Concat(300, 2, 1),
            smsc=Address(INTL, "+79168999100"),
        )
    )
    p = decode(e.hex)
    assert (p.text, p.scts, p.concat, p.wide_ref) == ("Привет 👋", scts, Concat(300, 2, 1), True)
    assert p.smsc == Address(INTL, "+79168999100")


def test_status_report_round_trip_and_pdu_without_smsc_field():
    sr = StatusReportPdu(
        message_ref=200,
        recipient=Address(INTL, "+79161234567"),
        scts=datetime(2026, 12, 1, 16, 0, tzinfo=tz(3)),
        discharge=datetime(2026, 12, 1, 16, 0, 4, tzinfo=tz(3)),
        status=0x46,
    )
    e = encode_status_report(sr)
    assert decode(e.hex) == sr
    no_smsc = e.hex[2:]
    assert decode(no_smsc, tpdu_length=e.tpdu_length) == sr


def test_gsm7_fill_bits_for_every_header_length():
    for extra in range(0, 8):
        from gsm.pdu import InformationElement

        ies = (InformationElement(0x70, bytes(extra)),) if extra else ()
        text = "Fill bits " + "x" * extra
        e = encode_submit(SubmitPdu(Address(INTL, "+1234"), text, extra_ies=ies))
        assert decode(e.hex).text == text


def test_bad_pdus_raise_pdu_error():
    for bad in ("", "zz", "07914400000000F0", "0001000B9172280010", "03"):
        with pytest.raises(PduError):
            decode(bad)
    with pytest.raises(PduError):
        encode_submit(SubmitPdu(Address(INTL, "+1234"), "я" * 71, SmsEncoding.UCS2))
    with pytest.raises(PduError):
        encode_submit(SubmitPdu(Address(INTL, "+1234"), "Привет"))  # not GSM 7-bit


def test_gsm7_pack_unpack():
    # [pgm] TestGsm7: packed septets of "Hello World!" and of extension characters.
    assert gsm7.pack(gsm7.to_septets("Hello World!")) == bytes(
        [200, 50, 155, 253, 6, 93, 223, 114, 54, 57, 4]
    )
    assert gsm7.pack(gsm7.to_septets("a[]{}€")) == bytes(
        [225, 13, 111, 227, 219, 160, 54, 169, 77, 25]
    )
    assert (
        gsm7.from_septets(gsm7.unpack(bytes([225, 13, 111, 227, 219, 160, 54, 169, 77, 25]), 11))
        == "a[]{}€"
    )


def test_alphanumeric_length_given_as_two_per_octet_drops_the_padding_septet():
    e = encode_deliver(DeliverPdu(Address(ALNUM, "diafaan"), "hi", scts=None))
    assert e.hex[4:6] == "0D"  # 7 septets are 49 bits: 13 semi-octets
    wrong = e.hex[:4] + "0E" + e.hex[6:]  # 14 semi-octets for 7 octets, as some senders do
    assert decode(wrong).sender == Address(ALNUM, "diafaan")


def test_an_information_element_past_the_header_end_is_refused():
    e = encode_deliver(
        DeliverPdu(Address(NAT, "0612345678"), "part", concat=Concat(ref=5, total=2, seq=1))
    )
    raw = bytearray(parse_hex(e.hex))
    i = raw.index(bytes([0x05, 0x00, 0x03, 5, 2, 1]))  # UDHL, IEI, IEDL, ref, total, seq
    raw[i + 2] = 0x04  # the IE claims one octet more than its header holds
    with pytest.raises(PduError, match="past the user-data header"):
        decode(raw.hex())


@pytest.mark.parametrize(
    ("text", "encoding"), [("hello there", SmsEncoding.GSM7), ("привет", SmsEncoding.UCS2)]
)
def test_user_data_shorter_than_its_length_is_flagged(text, encoding):
    e = encode_deliver(DeliverPdu(Address(NAT, "0612345678"), text, encoding, scts=None))
    assert not decode(e.hex).truncated
    cut = decode(e.hex[:-2])  # one octet less than TP-UDL says
    assert cut.truncated and text.startswith(cut.text.rstrip("@"))

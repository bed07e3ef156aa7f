"""USSD replies in each form a modem returns them, requests, and balances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gsm import gsm7
from gsm.ussd import UssdMode, decode_reply, encode_request, parse_balance


def test_request_star_100_hash_packed_like_huawei():
    # "AA180C3602" is the packed *100# that Huawei E-series documentation and forums show.
    assert encode_request("*100#") == ("AA180C3602", 15)
    assert encode_request("*100#", UssdMode.PLAIN) == ("*100#", 15)
    assert encode_request("*100#", UssdMode.UCS2) == ("002A0031003000300023", 15)


@pytest.mark.parametrize("bad", ['*100#"\r\nATD', "", "*" * 65, "ATH", "+100#"])
def test_request_refuses_anything_but_a_code(bad):
    with pytest.raises(ValueError):
        encode_request(bad)


def test_gsm7_packed_hex_reply():
    packed = gsm7.pack_ussd("Balance 12,30 EUR").hex().upper()
    assert decode_reply(packed, 15) == "Balance 12,30 EUR"
    assert decode_reply(packed, 15, UssdMode.PACKED) == "Balance 12,30 EUR"


def test_gsm7_packed_reply_filling_the_last_octet_has_no_stray_at_or_cr():
    for text in ("1234567", "Balance: 5.00 EUR, bonus 100 MB.", "x" * 15):
        packed = gsm7.pack_ussd(text).hex()
        assert decode_reply(packed, 15) == text
    # A sender that did not pad with CR: 7 zero spare bits are not an "@".
    assert decode_reply(gsm7.pack(gsm7.to_septets("1234567")).hex(), 15) == "1234567"


def test_ucs2_reply_dcs_72():
    text = "Баланс: 123.45 р.\nБонусы: 10"
    assert decode_reply(text.encode("utf-16-be").hex().upper(), 72) == text


def test_ucs2_from_a_modem_in_cscs_ucs2_mode_with_dcs_15():
    text = "Ваш баланс 55,10 руб."
    hexed = text.encode("utf-16-be").hex().upper()
    assert decode_reply(hexed, 15) == text
    assert decode_reply(hexed, 15, UssdMode.UCS2) == text


def test_ucs2_with_language_indication_dcs_17():
    text = "Привет"
    assert decode_reply("7275" + text.encode("utf-16-be").hex(), 0x11) == text


def test_plain_text_reply_from_cscs_gsm_and_multiline():
    assert decode_reply("Balance 12,30 EUR", 15) == "Balance 12,30 EUR"
    assert decode_reply("Balance: 1.00\r\nBonus: 2", 15) == "Balance: 1.00\nBonus: 2"
    # All-digit plain text is not mistaken for hex.
    assert decode_reply("1234", 15) == "1234"
    assert decode_reply("ABBA", 15, UssdMode.PLAIN) == "ABBA"


def test_no_dcs_and_8bit():
    assert decode_reply("Hello", None) == "Hello"
    assert decode_reply("48656C6C6F", 0x44) == "Hello"


def test_huge_reply_is_bounded():
    assert len(decode_reply("x" * 10_000, 15)) == 2000


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("Баланс: 123.45 р.", Decimal("123.45"), "р."),
        ("Balance 12,30 EUR", Decimal("12.30"), "EUR"),
        ("Ваш баланс минус 15,20 руб. Пополните счёт", Decimal("-15.20"), "руб."),
        ("Баланс:-3.5р", Decimal("-3.5"), "р"),
        ("Остаток 1 234,56 р. Тариф Smart", Decimal("1234.56"), "р."),
        ("Your credit is 5 GBP. Bonus 100 MB", Decimal("5"), "GBP"),
        ("Na rahunku 80.00 грн", Decimal("80.00"), "грн"),
        ("Guthaben: 7,99 €", Decimal("7.99"), "€"),
    ],
)
def test_balance_parsed(text, amount, currency):
    b = parse_balance(text)
    assert (b.amount, b.currency, b.text) == (amount, currency, text)


def test_no_balance_in_other_replies():
    b = parse_balance("Услуга подключена. Спасибо!")
    assert b.amount is None and b.text == "Услуга подключена. Спасибо!"


def test_gsm7_with_language_indication_dcs_16_drops_the_language():
    raw = gsm7.pack_ussd("EN\rBalance 5 EUR").hex().upper()
    assert decode_reply(raw, 0x10, UssdMode.PACKED) == "Balance 5 EUR"
    assert decode_reply("Balance 5 EUR", 0x10, UssdMode.PLAIN) == "Balance 5 EUR"  # none given

"""Part sizes, encodings and cut points of ``callcenter.sms.segments``."""

from __future__ import annotations

import pytest

from callcenter.sms.events import Address, AddressKind, SmsEncoding
from callcenter.sms.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MessageTooLong,
    choose_encoding,
    count,
    outbound_parts,
    split,
    units_of,
)

TO = Address(AddressKind.INTERNATIONAL, "+79161234567")


def test_alphabet_has_128_septets_and_ten_extension_characters():
    assert len(GSM7_BASIC) == 128
    assert len(GSM7_EXTENSION) == 10
    assert choose_encoding("Hello @£$¥ èé ÄÖÑÜ§¿ äöñüà ΔΦΓΛΩΠΨΣΘΞ") is SmsEncoding.GSM7
    assert choose_encoding("Привет") is SmsEncoding.UCS2
    assert choose_encoding("ok 👍") is SmsEncoding.UCS2
    assert choose_encoding("ç") is SmsEncoding.UCS2  # only capital Ç is in the alphabet


@pytest.mark.parametrize(
    ("length", "parts"), [(160, 1), (161, 2), (306, 2), (307, 3), (153 * 255, 255)]
)
def test_gsm7_part_sizes(length, parts):
    assert len(split("a" * length)) == parts


def test_gsm7_multipart_parts_are_153_septets():
    parts = split("a" * 400)
    assert [len(p) for p in parts] == [153, 153, 94]


def test_sixteen_bit_reference_leaves_152_and_66():
    assert [len(p) for p in split("a" * 400, wide_ref=True)] == [152, 152, 96]
    assert [len(p) for p in split("я" * 140, wide_ref=True)] == [66, 66, 8]


def test_extension_characters_count_two_septets():
    assert count("€" * 80).parts == 1
    assert count("€" * 80 + "a").parts == 2
    c = count("[]")
    assert (c.encoding, c.units, c.characters, c.left) == (SmsEncoding.GSM7, 4, 2, 156)


def test_an_escape_pair_is_never_cut():
    # 152 plain septets then "€": a 153-septet part cannot hold ESC + 0x65, so "€" moves on whole.
    text = "a" * 152 + "€" + "b" * 20
    parts = split(text)
    assert parts == ["a" * 152, "€" + "b" * 20]
    assert sum(units_of(ch, SmsEncoding.GSM7) for ch in parts[0]) == 152


def test_cyrillic_200_characters_is_three_ucs2_parts():
    text = ("Здравствуйте! Ваш заказ готов к выдаче. " * 6)[:200]
    assert len(text) == 200
    parts = split(text)
    assert choose_encoding(text) is SmsEncoding.UCS2
    assert [len(p) for p in parts] == [67, 67, 66]
    assert "".join(parts) == text


def test_ucs2_single_part_holds_70():
    assert len(split("я" * 70)) == 1
    assert len(split("я" * 71)) == 2


def test_emoji_on_a_part_boundary_is_never_cut():
    # 66 units, then an emoji (2 UTF-16 units) would straddle units 67-68.
    text = "я" * 66 + "😀" + "я" * 10
    parts = split(text)
    assert parts == ["я" * 66, "😀" + "я" * 10]
    for p in parts:
        p.encode("utf-16-be")  # a lone surrogate would raise here


def test_zwj_sequence_and_flag_stay_whole_when_they_can():
    family = "👨\u200d👩\u200d👧"
    text = "я" * 64 + family + "я" * 10
    parts = split(text)
    assert parts[1].startswith(family)
    assert "".join(parts) == text
    flags = "я" * 65 + "🇷🇺🇩🇪" + "я" * 10  # each flag: two regional indicators of 2 units
    parts = split(flags)
    assert parts[0] == "я" * 65 and parts[1].startswith("🇷🇺🇩🇪")
    accented = "я" * 66 + "й" + "\u0301" + "я" * 10  # a letter with a combining accent
    assert split(accented)[1].startswith("й\u0301")


def test_a_cluster_longer_than_a_part_is_cut_between_code_points():
    text = "😀" + "\u0301" * 80
    parts = split(text)
    assert "".join(parts) == text and len(parts) == 2
    # each part fits its 134 octets, and the emoji's surrogate pair stays in the first
    assert all(len(p.encode("utf-16-be")) <= 134 for p in parts) and parts[0].startswith("😀")


def test_count_for_the_console():
    assert count("").parts == 0 and count("").left == 160
    c = count("a" * 155)
    assert (c.parts, c.per_part, c.left) == (1, 160, 5)
    c = count("a" * 161)
    assert (c.parts, c.per_part, c.left) == (2, 153, 145)
    c = count("Привет 😀")
    assert (c.encoding, c.characters, c.units, c.left) == (SmsEncoding.UCS2, 8, 9, 61)


def test_too_long():
    with pytest.raises(MessageTooLong):
        split("a" * (153 * 255 + 1))
    assert count("a" * (153 * 255 + 1)).parts == 256


def test_outbound_parts_carry_ref_and_sequence():
    parts = outbound_parts(TO, "я" * 100, concat_ref=7)
    assert [(p.seq, p.total, p.concat_ref, p.encoding) for p in parts] == [
        (1, 2, 7, SmsEncoding.UCS2),
        (2, 2, 7, SmsEncoding.UCS2),
    ]
    assert all(p.status_report for p in parts)
    (single,) = outbound_parts(TO, "hi", concat_ref=7)
    assert single.concat_ref is None and single.total == 1
    wide = outbound_parts(TO, "a" * 400, concat_ref=300)
    assert [len(p.text) for p in wide] == [152, 152, 96]
    with pytest.raises(ValueError):
        outbound_parts(TO, "x", concat_ref=70000)

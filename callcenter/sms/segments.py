"""How a text becomes SMS parts: the alphabet, the part sizes and where a part may end.

Pure functions, shared by the console's counter (``count``), the SMS core that splits a message
into :class:`~callcenter.sms.ports.OutboundPart` s (``outbound_parts``) and the PDU codec in
``gsm/`` (which imports the GSM 03.38 tables from here, so both agree on every septet).

* GSM 7-bit (3GPP TS 23.038 default alphabet + extension table) when every character is in it;
  an extension character (``€ [ ] { } ^ ~ \\ |`` and form feed) costs two septets (ESC + code).
  A part holds 160 septets; with a concatenation header 153 (8-bit reference, 6 header octets
  + 1 fill bit = 7 septets) or 152 (16-bit reference, 7 header octets = 8 septets).
* Otherwise UCS2 (UTF-16BE): 70 code units; 67 with an 8-bit reference, 66 with a 16-bit one.
  A character outside the BMP (an emoji) is a surrogate pair of two units.

A part never ends inside an escape pair or a surrogate pair (both are impossible here: parts
are cut between characters), and, when it can be avoided, never inside a user-perceived
character built of several code points (a ZWJ emoji sequence, a flag, a skin-tone modifier, a
letter with a combining accent): the cut moves back to the start of that cluster. Only a single
cluster longer than a whole part is cut inside, between code points.

The concatenation reference decides the header size: ``concat_ref`` 0-255 is sent as the 8-bit
IE 0x00, 256-65535 as the 16-bit IE 0x08 (``gsm/pdu.py`` does the same), so
``outbound_parts`` sizes the parts from the reference it is given.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from callcenter.sms.events import Address, SmsEncoding
from callcenter.sms.ports import OutboundPart

# 3GPP TS 23.038 §6.2.1: the default alphabet, indexed by septet. 0x1B is the escape to the
# extension table (never a character of its own here).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_ESCAPE = 0x1B
# §6.2.1.1: the extension table (after ESC). 0x0A is a page break, shown as form feed.
GSM7_EXTENSION = {
    "\x0c": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
GSM7_BASIC_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != GSM7_ESCAPE}
GSM7_EXTENSION_BY_CODE = {code: ch for ch, code in GSM7_EXTENSION.items()}

GSM7_SINGLE, GSM7_CONCAT8, GSM7_CONCAT16 = 160, 153, 152
UCS2_SINGLE, UCS2_CONCAT8, UCS2_CONCAT16 = 70, 67, 66
MAX_PARTS = 255  # the concatenation IE counts parts in one octet


class MessageTooLong(ValueError):
    """More than 255 parts: no concatenation header can number them."""


def septets_of(ch: str) -> int | None:
    """Septets ``ch`` costs in GSM 7-bit (1 or 2), or None when it is not in the alphabet."""
    if ch in GSM7_BASIC_INDEX:
        return 1
    if ch in GSM7_EXTENSION:
        return 2
    return None


def is_gsm7(text: str) -> bool:
    return all(septets_of(ch) is not None for ch in text)


def choose_encoding(text: str) -> SmsEncoding:
    return SmsEncoding.GSM7 if is_gsm7(text) else SmsEncoding.UCS2


def units_of(ch: str, encoding: SmsEncoding) -> int:
    """What one character costs in its encoding: septets, or UTF-16 code units."""
    if encoding is SmsEncoding.GSM7:
        n = septets_of(ch)
        if n is None:
            raise ValueError(f"character U+{ord(ch):04X} is not in the GSM 7-bit alphabet")
        return n
    return 2 if ord(ch) > 0xFFFF else 1


def part_capacity(encoding: SmsEncoding, *, multipart: bool, wide_ref: bool = False) -> int:
    """Units per part: 160/153/152 septets or 70/67/66 UTF-16 units."""
    if encoding is SmsEncoding.GSM7:
        if not multipart:
            return GSM7_SINGLE
        return GSM7_CONCAT16 if wide_ref else GSM7_CONCAT8
    if encoding is SmsEncoding.UCS2:
        if not multipart:
            return UCS2_SINGLE
        return UCS2_CONCAT16 if wide_ref else UCS2_CONCAT8
    raise ValueError("8-bit data is not split by text")


def _joins_previous(text: str, i: int) -> bool:
    """True when a cut just before ``text[i]`` would break one user-perceived character.

    A small subset of the Unicode grapheme rules (UAX #29) that covers what SMS users type:
    combining marks, variation selectors, ZWJ sequences, skin-tone modifiers, emoji tags and
    regional-indicator pairs (flags)."""
    if i <= 0 or i >= len(text):
        return False
    cp, prev = ord(text[i]), ord(text[i - 1])
    if cp == 0x200D or prev == 0x200D:  # zero-width joiner: both sides belong together
        return True
    if 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return True
    if unicodedata.category(text[i]) in ("Mn", "Me", "Mc"):
        return True
    if 0x1F1E6 <= cp <= 0x1F1FF and 0x1F1E6 <= prev <= 0x1F1FF:
        # A flag is two regional indicators; count the run before to know which pair this is.
        run = 0
        j = i - 1
        while j >= 0 and 0x1F1E6 <= ord(text[j]) <= 0x1F1FF:
            run += 1
            j -= 1
        return run % 2 == 1
    return text[i - 1] == "\r" and text[i] == "\n"


def split(text: str, encoding: SmsEncoding | None = None, *, wide_ref: bool = False) -> list[str]:
    """The texts of the parts ``text`` is sent as (one part when it fits in a single SMS).

    Raises MessageTooLong past 255 parts and ValueError for GSM 7-bit with a character
    outside the alphabet."""
    enc = encoding or choose_encoding(text)
    costs = [units_of(ch, enc) for ch in text]
    if sum(costs) <= part_capacity(enc, multipart=False):
        return [text]
    cap = part_capacity(enc, multipart=True, wide_ref=wide_ref)
    parts: list[str] = []
    start = 0
    while start < len(text):
        used = 0
        end = start
        while end < len(text) and used + costs[end] <= cap:
            used += costs[end]
            end += 1
        if end < len(text):
            cut = end
            while cut > start and _joins_previous(text, cut):
                cut -= 1
            if cut > start:  # else one cluster is longer than a part: cut between code points
                end = cut
        parts.append(text[start:end])
        start = end
        if len(parts) > MAX_PARTS:
            raise MessageTooLong(f"the text needs more than {MAX_PARTS} parts")
    return parts


@dataclass(frozen=True, slots=True)
class SmsCount:
    """The console's counter: "UCS2 · part 2 of 2 · 12 left"."""

    encoding: SmsEncoding
    parts: int
    characters: int  # code points typed (an emoji is one)
    units: int  # septets (GSM 7-bit) or UTF-16 code units (UCS2) in the whole text
    per_part: int  # units a part holds at this length (160/153 or 70/67)
    left: int  # units still free in the last part before another part starts


def count(text: str, *, wide_ref: bool = False) -> SmsCount:
    enc = choose_encoding(text)
    units = sum(units_of(ch, enc) for ch in text)
    if not text:
        cap = part_capacity(enc, multipart=False)
        return SmsCount(enc, 0, 0, 0, cap, cap)
    try:
        parts = split(text, enc, wide_ref=wide_ref)
    except MessageTooLong:
        cap = part_capacity(enc, multipart=True, wide_ref=wide_ref)
        return SmsCount(enc, -(-units // cap), len(text), units, cap, 0)
    multipart = len(parts) > 1
    cap = part_capacity(enc, multipart=multipart, wide_ref=wide_ref)
    last = sum(units_of(ch, enc) for ch in parts[-1])
    return SmsCount(enc, len(parts), len(text), units, cap, cap - last)


def outbound_parts(
    to: Address, text: str, *, concat_ref: int, status_report: bool = True
) -> list[OutboundPart]:
    """The parts to hand a modem, each with its own text. ``concat_ref`` (0-65535) is used
    only when the text needs more than one part; above 255 it is a 16-bit reference."""
    if not 0 <= concat_ref <= 0xFFFF:
        raise ValueError("concat_ref must be 0-65535")
    enc = choose_encoding(text)
    texts = split(text, enc, wide_ref=concat_ref > 0xFF)
    total = len(texts)
    return [
        OutboundPart(
            to=to,
            text=t,
            encoding=enc,
            seq=i,
            total=total,
            concat_ref=concat_ref if total > 1 else None,
            status_report=status_report,
        )
        for i, t in enumerate(texts, 1)
    ]

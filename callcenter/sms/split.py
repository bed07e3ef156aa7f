"""Splitting a text into SMS parts, behind one function the SMS core calls.

A stand-in until ``callcenter/sms/segments.py`` (the PDU helper's part counter) lands: it keeps
the same rules - GSM 7-bit with the extension table when every character fits, else UCS2; a GSM
escape pair or a UTF-16 surrogate pair is never cut in two.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.sms.events import SmsEncoding

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_BASIC_SET = frozenset(_GSM_BASIC) - {"\x1b"}
_GSM_EXT = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class TextSplit:
    encoding: SmsEncoding
    parts: tuple[str, ...]
    units: int  # septets (GSM 7-bit) or UTF-16 code units (UCS2) of the whole text
    per_part: int  # capacity of one part in those units (single or concatenated)
    remaining: int  # units left in the last part before another part is needed


def _cost(ch: str, encoding: SmsEncoding) -> int:
    if encoding is SmsEncoding.GSM7:
        return 2 if ch in _GSM_EXT else 1
    return 2 if ord(ch) > 0xFFFF else 1


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM_BASIC_SET or ch in _GSM_EXT for ch in text)


def split_text(text: str) -> TextSplit:
    encoding = SmsEncoding.GSM7 if is_gsm7(text) else SmsEncoding.UCS2
    single, multi = (160, 153) if encoding is SmsEncoding.GSM7 else (70, 67)
    costs = [_cost(ch, encoding) for ch in text]
    units = sum(costs)
    if units <= single:
        return TextSplit(encoding, (text,) if text else (), units, single, single - units)
    parts: list[str] = []
    start, used = 0, 0
    for i, cost in enumerate(costs):
        # a character is indivisible here: an escape pair or a surrogate pair moves whole
        if used + cost > multi:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return TextSplit(encoding, tuple(parts), units, multi, multi - used)

"""Splitting a text into SMS parts, behind the one function the SMS core calls.

The rules live in :mod:`callcenter.sms.segments` (GSM 7-bit with the extension table when every
character fits, else UCS2; a part never ends inside an escape pair, a surrogate pair or an
emoji sequence). The pool numbers concatenated messages with an 8-bit reference, so parts are
sized for it (153 septets / 67 UTF-16 units).
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.sms import segments
from callcenter.sms.events import SmsEncoding


@dataclass(frozen=True, slots=True)
class TextSplit:
    encoding: SmsEncoding
    parts: tuple[str, ...]
    units: int  # septets (GSM 7-bit) or UTF-16 code units (UCS2) of the whole text
    per_part: int  # capacity of one part in those units (single or concatenated)
    remaining: int  # units left in the last part before another part is needed


def split_text(text: str) -> TextSplit:
    """Raises ValueError (segments.MessageTooLong) past 255 parts."""
    counted = segments.count(text)
    parts = tuple(segments.split(text, counted.encoding)) if text else ()
    return TextSplit(counted.encoding, parts, counted.units, counted.per_part, counted.left)

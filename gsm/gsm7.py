"""GSM 7-bit (3GPP TS 23.038) text <-> septets <-> packed octets, shared by PDUs and USSD.

The alphabet tables live in the core (:mod:`callcenter.sms.segments`) so the console's part
counter and this codec agree on what costs one septet and what costs two.
"""

from __future__ import annotations

from callcenter.sms.segments import (
    GSM7_BASIC,
    GSM7_BASIC_INDEX,
    GSM7_ESCAPE,
    GSM7_EXTENSION,
    GSM7_EXTENSION_BY_CODE,
)

CR = 0x0D


def to_septets(text: str) -> list[int]:
    """Septet codes of ``text``; raises ValueError naming the first character not in GSM 7-bit."""
    out: list[int] = []
    for ch in text:
        code = GSM7_BASIC_INDEX.get(ch)
        if code is not None:
            out.append(code)
            continue
        ext = GSM7_EXTENSION.get(ch)
        if ext is None:
            raise ValueError(f"character U+{ord(ch):04X} is not in the GSM 7-bit alphabet")
        out += (GSM7_ESCAPE, ext)
    return out


def from_septets(septets: list[int]) -> str:
    """Text of septet codes. An escape before a code the extension table lacks shows the main
    table's character (23.038 §6.2.1.1); a lone trailing escape is dropped."""
    out: list[str] = []
    escaped = False
    for s in septets:
        s &= 0x7F
        if escaped:
            out.append(GSM7_EXTENSION_BY_CODE.get(s, GSM7_BASIC[s] if s != GSM7_ESCAPE else " "))
            escaped = False
        elif s == GSM7_ESCAPE:
            escaped = True
        else:
            out.append(GSM7_BASIC[s])
    return "".join(out)


def pack(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first; ``fill_bits`` zero bits come first (after a user-data header)."""
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits > 0:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack(data: bytes, count: int | None = None, fill_bits: int = 0) -> list[int]:
    """Septets packed in ``data`` (at most ``count``; all whole septets when None)."""
    acc = 0
    nbits = 0
    out: list[int] = []
    skip = fill_bits
    for b in data:
        acc |= b << nbits
        nbits += 8
        if skip:
            acc >>= skip
            nbits -= skip
            skip = 0
        while nbits >= 7:
            if count is not None and len(out) >= count:
                return out
            out.append(acc & 0x7F)
            acc >>= 7
            nbits -= 7
    return out if count is None else out[:count]


def pack_ussd(text: str) -> bytes:
    """Packed GSM 7-bit for a USSD string (23.038 §6.1.2.3.1): when the last octet would leave
    7 spare bits, they are a CR, so the receiver does not read an extra "@"."""
    septets = to_septets(text)
    if len(septets) % 8 == 7:
        septets.append(CR)
    return pack(septets)


def unpack_ussd(data: bytes) -> str:
    septets = unpack(data)
    # When the septets fill the last octet exactly, the final one may be padding: a CR
    # (23.038; a real trailing CR is then sent doubled) or, from senders that skip the
    # rule, 7 zero bits that would otherwise show as a stray "@".
    if len(data) % 7 == 0 and septets and septets[-1] in (CR, 0):
        septets.pop()
    return from_septets(septets)

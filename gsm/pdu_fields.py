"""The fields of 23.040 PDUs that are not addresses or user data: semi-octet digits, the
7-octet timestamps (TP-SCTS, TP-DT) and the relative validity period, and the codec's error.
Split from :mod:`gsm.pdu`, which re-exports them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class PduError(ValueError):
    """A PDU that cannot be decoded or a message that cannot be encoded, said in words."""


_BCD = "0123456789*#abc"  # 23.040 §9.1.2.3: 0xA '*', 0xB '#', 0xC-0xE a/b/c, 0xF filler


def _swap_digits(digits: str) -> bytes:
    nibbles = [_BCD.index(d) for d in digits]
    if len(nibbles) % 2:
        nibbles.append(0xF)
    return bytes(lo | (hi << 4) for lo, hi in zip(nibbles[::2], nibbles[1::2], strict=True))


def _unswap_digits(data: bytes, count: int | None = None) -> str:
    out: list[str] = []
    for b in data:
        for nib in (b & 0x0F, b >> 4):
            if nib == 0xF:
                continue
            out.append(_BCD[nib])
    return "".join(out if count is None else out[:count])


# --- timestamps and validity -----------------------------------------------------------------


def encode_timestamp(ts: datetime) -> bytes:
    if ts.utcoffset() is None:
        raise PduError("a PDU timestamp needs a time zone")
    offset = ts.utcoffset() or timedelta()
    quarters = round(offset.total_seconds() / 900)
    if abs(quarters) > 79:
        raise PduError("time zone offset out of range")
    digits = (
        f"{ts.year % 100:02d}{ts.month:02d}{ts.day:02d}{ts.hour:02d}{ts.minute:02d}{ts.second:02d}"
    )
    out = bytearray(_swap_digits(digits))
    q = abs(quarters)
    tz = (q // 10) | ((q % 10) << 4)
    if quarters < 0:
        tz |= 0x08  # 23.040 §9.2.3.11: bit 3 of the octet is the sign
    out.append(tz)
    return bytes(out)


def decode_timestamp(raw: bytes) -> datetime | None:
    """The 7-octet SCTS / DT, or None when a modem or SMSC sent digits that are no date."""
    fields = []
    for b in raw[:6]:
        lo, hi = b & 0x0F, b >> 4
        if lo > 9 or hi > 9:
            return None
        fields.append(lo * 10 + hi)
    tzb = raw[6]
    tens, units = tzb & 0x07, tzb >> 4
    if units > 9:
        return None
    quarters = tens * 10 + units
    if tzb & 0x08:
        quarters = -quarters
    yy, mo, dd, hh, mi, ss = fields
    try:
        return datetime(
            2000 + yy if yy < 90 else 1900 + yy,
            mo,
            dd,
            hh,
            mi,
            ss,
            tzinfo=timezone(timedelta(minutes=15 * quarters)),
        )
    except ValueError:
        return None


def encode_relative_validity(minutes: int) -> int:
    """TP-VP relative (23.040 §9.2.3.12.1), rounded up to the next value it can express."""
    if minutes <= 0:
        raise PduError("validity must be positive")
    if minutes <= 720:
        return max(0, -(-minutes // 5) - 1)
    if minutes <= 1440:
        return 143 + -(-(minutes - 720) // 30)
    days = -(-minutes // 1440)
    if days <= 30:
        return 166 + max(days, 2)
    weeks = -(-minutes // 10080)
    if weeks > 63:
        raise PduError("validity longer than 63 weeks")
    return 192 + max(weeks, 5)


def decode_relative_validity(vp: int) -> int:
    """Minutes of a relative TP-VP octet."""
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 720 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 1440
    return (vp - 192) * 10080

"""The network side of 3GPP TS 23.040 for the modem emulator: it *reads* SMS-SUBMIT and *writes*
SMS-DELIVER and SMS-STATUS-REPORT, the inverse of what the product's codec (``gsm/pdu.py``) does.

Written separately on purpose: an emulator that reused the product's codec would agree with every
bug of it (an emoji cut in two, a wrong fill-bit count after a UDH) and the tests would prove
nothing. This one is small, covers what the emulator needs, and is checked against the spec's
own examples in ``tests/gsm/test_emulator_pdu.py``.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

# GSM 03.38 default alphabet; index = septet value. \x1b is the escape to the extension table.
GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(GSM7) == 128
GSM7_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
            0x3E: "]", 0x40: "|", 0x65: "€"}  # fmt: skip
_TO_GSM7 = {c: i for i, c in enumerate(GSM7) if i != 0x1B}
_TO_EXT = {c: i for i, c in GSM7_EXT.items()}


class PduError(ValueError):
    pass


# --- alphabets ---------------------------------------------------------------------------------


def gsm7_septets(text: str) -> list[int] | None:
    """The septets of ``text``, or None when a character is not in GSM 7-bit."""
    out: list[int] = []
    for ch in text:
        if ch in _TO_GSM7:
            out.append(_TO_GSM7[ch])
        elif ch in _TO_EXT:
            out += [0x1B, _TO_EXT[ch]]
        else:
            return None
    return out


def septets_text(septets: list[int]) -> str:
    out: list[str] = []
    esc = False
    for s in septets:
        if esc:
            out.append(GSM7_EXT.get(s, " "))
            esc = False
        elif s == 0x1B:
            esc = True
        else:
            out.append(GSM7[s])
    return "".join(out)


def pack7(septets: list[int], fill: int = 0) -> bytes:
    acc, nbits, out = 0, fill, bytearray()
    for s in septets:
        acc |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits > fill or (nbits and septets):
        out.append(acc & 0xFF)
    return bytes(out)


def unpack7(data: bytes, count: int, fill: int = 0) -> list[int]:
    acc = int.from_bytes(data, "little") >> fill
    return [(acc >> (7 * i)) & 0x7F for i in range(count)]


# --- addresses and times -----------------------------------------------------------------------


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _digits(data: bytes, count: int) -> str:
    s = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in data)
    return s[:count].replace("A", "*").replace("B", "#")


def encode_address(addr: str) -> bytes:
    """TP-OA/TP-DA/TP-RA: "+7916…" international, "8916…" national-unknown, "MTS" alphanumeric."""
    if addr.startswith("+") and addr[1:].isdigit():
        d = addr[1:]
        return bytes([len(d), 0x91]) + _semi_octets(d)
    if addr.isdigit():
        return bytes([len(addr), 0x81]) + _semi_octets(addr)
    septets = gsm7_septets(addr)
    if septets is None:
        raise PduError("alphanumeric address not in GSM 7-bit")
    packed = pack7(septets)
    return bytes([(len(septets) * 7 + 3) // 4, 0xD0]) + packed


def decode_address(b: bytes, i: int) -> tuple[str, int]:
    n, toa = b[i], b[i + 1]
    i += 2
    nbytes = (n + 1) // 2
    raw = b[i : i + nbytes]
    if len(raw) < nbytes:
        raise PduError("address cut short")
    if (toa & 0x70) == 0x50:
        return septets_text(unpack7(raw, n * 4 // 7)), i + nbytes
    d = _digits(raw, n)
    return ("+" + d if (toa & 0x70) == 0x10 else d), i + nbytes


def encode_smsc(addr: str) -> bytes:
    if not addr:
        return b"\x00"
    body = encode_address(addr)[1:]
    return bytes([len(body)]) + body


def encode_time(t: float, tz_quarters: int = 12) -> bytes:
    """TP-SCTS / TP-DT: local time of the zone, swapped semi-octets, zone in quarter hours."""
    tm = time.gmtime(t + tz_quarters * 900)
    digits = "".join(
        f"{v:02d}"
        for v in (tm.tm_year % 100, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
    )
    out = bytearray(_semi_octets(digits))
    q = abs(tz_quarters)
    z = int(f"{q % 10}{q // 10}", 16)
    out.append(z | (0x08 if tz_quarters < 0 else 0))
    return bytes(out)


def decode_time(b: bytes) -> float:
    d = [int(f"{x & 0x0F}{(x >> 4) & 0x0F}") if i < 6 else x for i, x in enumerate(b[:7])]
    z = b[6]
    q = (z & 0x07) * 10 + (z >> 4)
    if z & 0x08:
        q = -q
    t = calendar.timegm((2000 + d[0], d[1], d[2], d[3], d[4], d[5], 0, 0, 0))
    return t - q * 900


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submit:
    """What the DTE asked the network to send (decoded from AT+CMGS)."""

    mr: int
    destination: str
    text: str
    dcs: int
    status_report: bool
    concat: tuple[int, int, int] | None  # (ref, seq, total)
    tpdu_length: int  # the octets after the SMSC part: what AT+CMGS=<n> must say


def decode_submit(pdu_hex: str) -> Submit:
    try:
        b = bytes.fromhex(pdu_hex)
        i = 1 + b[0]
        tpdu_len = len(b) - i
        fo = b[i]
        if fo & 0x03 != 0x01:
            raise PduError("not an SMS-SUBMIT")
        vpf = (fo >> 3) & 0x03
        srr = bool(fo & 0x20)
        udhi = bool(fo & 0x40)
        mr = b[i + 1]
        dest, i = decode_address(b, i + 2)
        dcs = b[i + 1]
        i += 2
        i += {0: 0, 2: 1, 1: 7, 3: 7}[vpf]
        udl = b[i]
        ud = b[i + 1 :]
    except (IndexError, ValueError) as exc:
        raise PduError(f"bad SMS-SUBMIT: {exc}") from exc
    text, concat = decode_user_data(dcs, udl, ud, udhi)
    return Submit(mr, dest, text, dcs, srr, concat, tpdu_len)


def _alphabet(dcs: int) -> str:
    if dcs & 0xC0 == 0x00:
        return {0: "gsm7", 1: "8bit", 2: "ucs2", 3: "gsm7"}[(dcs >> 2) & 0x03]
    if dcs & 0xF0 == 0xF0:
        return "8bit" if dcs & 0x04 else "gsm7"
    if dcs & 0xF0 == 0xE0:
        return "ucs2"
    return "gsm7"


def decode_user_data(
    dcs: int, udl: int, ud: bytes, udhi: bool
) -> tuple[str, tuple[int, int, int] | None]:
    concat = None
    hdr = 0
    if udhi:
        udhl = ud[0]
        hdr = udhl + 1
        j = 1
        while j < hdr:
            iei, ln = ud[j], ud[j + 1]
            v = ud[j + 2 : j + 2 + ln]
            if iei == 0x00 and ln == 3:
                concat = (v[0], v[2], v[1])
            elif iei == 0x08 and ln == 4:
                concat = ((v[0] << 8) | v[1], v[3], v[2])
            j += 2 + ln
    alpha = _alphabet(dcs)
    if alpha == "gsm7":
        skip = (hdr * 8 + 6) // 7
        fill = skip * 7 - hdr * 8
        return septets_text(unpack7(ud[hdr:], udl - skip, fill)), concat
    body = ud[hdr:udl]
    if alpha == "ucs2":
        return body.decode("utf-16-be", errors="replace"), concat
    return "", concat


def split_text(text: str) -> tuple[str, list[str]]:
    """The alphabet for ``text`` and its parts (153 septets / 67 UTF-16 units once split),
    never cutting an escape sequence or a surrogate pair."""
    septets = gsm7_septets(text)
    if septets is not None:
        if len(septets) <= 160:
            return "gsm7", [text]
        parts, cur, n = [], "", 0
        for ch in text:
            w = 2 if ch in _TO_EXT else 1
            if n + w > 153:
                parts.append(cur)
                cur, n = "", 0
            cur += ch
            n += w
        return "gsm7", [*parts, cur] if cur else parts
    units = len(text.encode("utf-16-be")) // 2
    if units <= 70:
        return "ucs2", [text]
    parts, cur, n = [], "", 0
    for ch in text:
        w = 2 if ord(ch) > 0xFFFF else 1
        if n + w > 67:
            parts.append(cur)
            cur, n = "", 0
        cur += ch
        n += w
    return "ucs2", [*parts, cur] if cur else parts


def encode_deliver(
    sender: str,
    text: str,
    *,
    smsc: str,
    when: float | None = None,  # None: now
    alphabet: str | None = None,  # "gsm7" or "ucs2"; None: GSM 7-bit when the text fits
    concat: tuple[int, int, int] | None = None,  # (ref, seq, total); ref > 255: 16-bit IE
    tz_quarters: int = 12,
) -> str:
    """One SMS-DELIVER as the modem hands it to the DTE (SMSC part first), in hex."""
    if when is None:
        when = time.time()
    if alphabet is None:
        alphabet = "gsm7" if gsm7_septets(text) is not None else "ucs2"
    udh = b""
    if concat is not None:
        ref, seq, total = concat
        if ref > 0xFF:
            udh = bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, total, seq])
        else:
            udh = bytes([5, 0x00, 3, ref, total, seq])
    fo = 0x04 | (0x40 if udh else 0)
    if alphabet == "gsm7":
        septets = gsm7_septets(text)
        if septets is None:
            raise PduError("text not in GSM 7-bit")
        skip = (len(udh) * 8 + 6) // 7
        fill = skip * 7 - len(udh) * 8
        ud = udh + pack7(septets, fill)
        udl = skip + len(septets)
        dcs = 0x00
    else:
        body = text.encode("utf-16-be")
        ud = udh + body
        udl = len(ud)
        dcs = 0x08
    tpdu = (
        bytes([fo])
        + encode_address(sender)
        + bytes([0x00, dcs])
        + encode_time(when, tz_quarters)
        + bytes([udl])
        + ud
    )
    return (encode_smsc(smsc) + tpdu).hex().upper()


def encode_status_report(
    mr: int, recipient: str, *, smsc: str, submitted: float, done: float, status: int
) -> str:
    tpdu = (
        bytes([0x06, mr & 0xFF])
        + encode_address(recipient)
        + encode_time(submitted)
        + encode_time(done)
        + bytes([status & 0xFF])
    )
    return (encode_smsc(smsc) + tpdu).hex().upper()


def tpdu_length(pdu_hex: str) -> int:
    """The <length> of +CMT/+CMGR/+CMGL/+CDS: octets after the SMSC part."""
    b = bytes.fromhex(pdu_hex)
    return len(b) - 1 - b[0]

"""SMS PDUs per 3GPP TS 23.040: SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT, both ways.

The modem needs SUBMIT encode and DELIVER / STATUS-REPORT decode; the emulator the reverse
directions. Every PDU here carries the SMSC address in front (24.011 RP address as AT+CMGS,
+CMGR, +CMGL and +CDS use it); ``00`` means "the SIM's SMSC".

Own code, not a library, on evidence (each candidate installed from PyPI and run on the cases
below, 2026-12-01):

* python-gsmmodem-new 0.13 ``gsmmodem.pdu``: encodes SUBMIT and decodes well, but an emoji
  raises ``ValueError: byte must be in range(0, 256)`` (encode, so a boundary test cannot even
  run), and it has no SMS-DELIVER or SMS-STATUS-REPORT *encoder* (the emulator needs both);
  the rest of the package is the thread-based modem LIBRARIES.md rejects.
* smspdudecoder 2.2: decode only (no SUBMIT encoder, no STATUS-REPORT at all); the 23.040 /
  diafaan alphanumeric sender decodes as ``"diafaan@"`` (the spare bits read as a septet); needs
  ``bitstring<5`` (breaks on import with bitstring 5.0).
* pdusms 1.0 (2021, a port of the Python-2 ``smspdu``): no SMS-STATUS-REPORT; unmaintained.
* smspdu 1.0 (2011): Python 2 only, does not install.

So the codec is our own (this module and ``gsm/gsm7.py``), tested on those libraries'
published vectors (cited in ``tests/gsm/test_pdu.py``), on round trips, and against the
emulator's separate codec (``gsm/emulator_pdu.py``) in ``tests/gsm/test_modem.py``.
Not supported (kept as raw PDU, never lost): national language shift tables (IE 0x24/0x25),
compressed text, EMS.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from callcenter.sms.events import Address, AddressKind, Concat, SmsEncoding

from . import gsm7
from .pdu_fields import _BCD, _swap_digits, _unswap_digits
from .pdu_fields import PduError as PduError
from .pdu_fields import decode_relative_validity as decode_relative_validity
from .pdu_fields import decode_timestamp as decode_timestamp
from .pdu_fields import encode_relative_validity as encode_relative_validity
from .pdu_fields import encode_timestamp as encode_timestamp


class Mti(enum.IntEnum):
    DELIVER = 0  # SC -> MS (MS -> SC it would be a DELIVER-REPORT, never read from a modem)
    SUBMIT = 1
    STATUS_REPORT = 2


IEI_CONCAT8 = 0x00
IEI_CONCAT16 = 0x08


@dataclass(frozen=True, slots=True)
class InformationElement:
    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    to: Address
    text: str = ""
    encoding: SmsEncoding = SmsEncoding.GSM7
    message_ref: int = 0  # TP-MR; most modems put their own and answer it in +CMGS
    status_report: bool = True  # TP-SRR
    concat: Concat | None = None
    wide_ref: bool | None = None  # 16-bit IE 0x08; None: 16-bit only when ref > 255
    validity_minutes: int | None = None  # TP-VP relative (rounded up to what it can say)
    reject_duplicates: bool = False  # TP-RD
    smsc: Address | None = None  # None: the SIM's SMSC (length octet 00)
    data: bytes = b""  # 8-bit payload when encoding is DATA
    extra_ies: tuple[InformationElement, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliverPdu:
    sender: Address
    text: str = ""
    encoding: SmsEncoding = SmsEncoding.GSM7
    scts: datetime | None = None  # None when the SMSC's timestamp is not a valid date
    concat: Concat | None = None
    smsc: Address | None = None
    pid: int = 0
    dcs: int = 0
    more_messages: bool = False  # TP-MMS clear: the SMSC has more for this MS
    status_report_indication: bool = False
    message_class: int | None = None  # 0 = flash
    data: bytes = b""
    ies: tuple[InformationElement, ...] = field(default=())
    wide_ref: bool = False
    truncated: bool = False  # the user data was shorter than TP-UDL said: text incomplete


@dataclass(frozen=True, slots=True)
class StatusReportPdu:
    message_ref: int
    recipient: Address
    scts: datetime | None
    discharge: datetime | None
    status: int  # TP-ST
    smsc: Address | None = None


@dataclass(frozen=True, slots=True)
class EncodedPdu:
    hex: str  # SMSC field + TPDU, upper-case hex, as written after the "> " prompt
    tpdu_length: int  # octets after the SMSC field: the <length> of AT+CMGS=<length>


# --- addresses -------------------------------------------------------------------------------


def _address_parts(addr: Address) -> tuple[int, bytes, int]:
    """(type of address, value octets, length in semi-octets) for an address field."""
    if addr.kind is AddressKind.ALPHANUMERIC:
        try:
            septets = gsm7.to_septets(addr.value)
        except ValueError as exc:
            raise PduError(f"alphanumeric address {addr.value!r}: {exc}") from None
        if not 0 < len(septets) <= 11:
            raise PduError("an alphanumeric address holds 1 to 11 GSM 7-bit characters")
        packed = gsm7.pack(septets)
        return 0xD0, packed, (len(septets) * 7 + 3) // 4
    digits = addr.value
    if addr.kind is AddressKind.INTERNATIONAL:
        if not digits.startswith("+"):
            raise PduError(f"an international number starts with '+': {digits!r}")
        digits = digits[1:]
        if digits.startswith("0"):
            raise PduError(f"no country code starts with 0: {addr.value!r}")
        toa = 0x91
    else:
        # TON "unknown", ISDN plan: what phones send for a number dialled as in the country.
        toa = 0x81
    if not digits or len(digits) > 20 or any(d not in _BCD[:12] for d in digits):
        raise PduError(f"not a phone number: {addr.value!r}")
    return toa, _swap_digits(digits), len(digits)


def encode_address(addr: Address) -> bytes:
    toa, value, semi = _address_parts(addr)
    return bytes([semi, toa]) + value


def encode_smsc(addr: Address | None) -> bytes:
    if addr is None:
        return b"\x00"
    if addr.kind is AddressKind.ALPHANUMERIC:
        raise PduError("an SMSC address is a number")
    toa, value, _ = _address_parts(addr)
    return bytes([len(value) + 1, toa]) + value


def _decode_address_value(toa: int, value: bytes, semi_octets: int) -> Address:
    ton = (toa >> 4) & 0x07
    if ton == 5:
        septets = gsm7.unpack(value, semi_octets * 4 // 7)
        if septets and septets[-1] == 0 and semi_octets == 2 * len(value) and len(value) % 7 == 0:
            # a sender that gave the length as 2 x octets: the padding of 7 chars in 7 octets
            # reads as one more septet, "@" ("diafaan@"); an 8th "@" in a name is unlikely
            septets = septets[:-1]
        return Address(AddressKind.ALPHANUMERIC, gsm7.from_septets(septets))
    digits = _unswap_digits(value, semi_octets)
    if ton == 1 and digits and not digits.startswith("0"):
        return Address(AddressKind.INTERNATIONAL, "+" + digits)
    # National, unknown, network-specific, or an "international" number that starts with 0
    # (seen from misconfigured SMSCs): never invent a "+0...".
    return Address(AddressKind.NATIONAL, digits)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PduError(f"PDU ends inside the {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def _read_address(r: _Reader) -> Address:
    semi = r.byte("address length")
    toa = r.byte("type of address")
    return _decode_address_value(toa, r.take((semi + 1) // 2, "address"), semi)


def _read_smsc(r: _Reader) -> Address | None:
    n = r.byte("SMSC length")
    if n == 0:
        return None
    body = r.take(n, "SMSC address")
    return _decode_address_value(body[0], body[1:], 2 * (n - 1))


# --- user data -------------------------------------------------------------------------------


def _udh(concat: Concat | None, wide: bool, extra: tuple[InformationElement, ...]) -> bytes:
    ies = bytearray()
    if concat is not None:
        if not (1 <= concat.seq <= concat.total <= 255):
            raise PduError("concatenation: 1 <= seq <= total <= 255")
        if wide:
            ies += bytes([IEI_CONCAT16, 4, concat.ref >> 8, concat.ref & 0xFF])
        else:
            ies += bytes([IEI_CONCAT8, 3, concat.ref])
        ies += bytes([concat.total, concat.seq])
    for ie in extra:
        ies += bytes([ie.iei, len(ie.data)]) + ie.data
    return bytes([len(ies)]) + bytes(ies) if ies else b""


def _dcs_alphabet(dcs: int) -> tuple[SmsEncoding | None, int | None]:
    """(alphabet, message class) of a TP-DCS (23.038 §4); None alphabet: compressed/unknown."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding / automatic deletion
        if dcs & 0x20:
            return None, None  # compressed
        cls = dcs & 0x03 if dcs & 0x10 else None
        return {0: SmsEncoding.GSM7, 1: SmsEncoding.DATA, 2: SmsEncoding.UCS2}.get(
            (dcs >> 2) & 0x03, SmsEncoding.GSM7
        ), cls
    if group in (0xC, 0xD):
        return SmsEncoding.GSM7, None
    if group == 0xE:
        return SmsEncoding.UCS2, None
    if group == 0xF:
        return (SmsEncoding.DATA if dcs & 0x04 else SmsEncoding.GSM7), dcs & 0x03
    return SmsEncoding.GSM7, None  # reserved groups: 23.038 says treat as GSM 7-bit


def _dcs_of(encoding: SmsEncoding) -> int:
    return {SmsEncoding.GSM7: 0x00, SmsEncoding.DATA: 0x04, SmsEncoding.UCS2: 0x08}[encoding]


def _encode_ud(encoding: SmsEncoding, text: str, data: bytes, udh: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for the text after a header ``udh`` (with its length octet)."""
    if encoding is SmsEncoding.GSM7:
        try:
            septets = gsm7.to_septets(text)
        except ValueError as exc:
            raise PduError(str(exc)) from None
        header_bits = len(udh) * 8
        fill = (7 - header_bits % 7) % 7
        udl = (header_bits + fill) // 7 + len(septets)
        if udl > 160:
            raise PduError(f"{len(septets)} septets do not fit one part after the header")
        return udl, udh + gsm7.pack(septets, fill)
    body = text.encode("utf-16-be") if encoding is SmsEncoding.UCS2 else data
    if len(udh) + len(body) > 140:
        raise PduError(f"{len(body)} octets do not fit one part after the header")
    return len(udh) + len(body), udh + body


@dataclass(frozen=True, slots=True)
class _UserData:
    text: str
    data: bytes
    ies: tuple[InformationElement, ...]
    concat: Concat | None
    wide_ref: bool
    truncated: bool = False  # TP-UDL promised more than came, or an odd UCS2 octet


def _decode_ud(encoding: SmsEncoding | None, udhi: bool, udl: int, ud: bytes) -> _UserData:
    ies: list[InformationElement] = []
    header_len = 0
    if udhi and ud:
        header_len = 1 + ud[0]
        if header_len > len(ud):
            raise PduError("user-data header longer than the user data")
        i = 1
        while i + 1 < header_len:
            iei, n = ud[i], ud[i + 1]
            if i + 2 + n > header_len:
                raise PduError("an information element runs past the user-data header")
            ies.append(InformationElement(iei, bytes(ud[i + 2 : i + 2 + n])))
            i += 2 + n
    concat, wide = None, False
    for ie in ies:
        if ie.iei == IEI_CONCAT8 and len(ie.data) == 3:
            ref, total, seq = ie.data
        elif ie.iei == IEI_CONCAT16 and len(ie.data) == 4:
            ref, total, seq, wide = (ie.data[0] << 8) | ie.data[1], ie.data[2], ie.data[3], True
        else:
            continue
        if 1 <= seq <= total:  # else a broken header: the part stands alone
            concat = Concat(ref=ref, total=total, seq=seq)
        break
    if encoding is SmsEncoding.GSM7:
        header_bits = header_len * 8
        fill = (7 - header_bits % 7) % 7
        skip_septets = (header_bits + fill) // 7
        count = max(0, udl - skip_septets)
        present = max(0, (len(ud) - header_len) * 8 - fill) // 7
        septets = gsm7.unpack(ud[header_len:], count, fill)
        text = gsm7.from_septets(septets)
        return _UserData(text, b"", tuple(ies), concat, wide, truncated=count > present)
    # Octet alphabets: UDL counts octets; trust the octets actually present when they differ.
    short = udl > len(ud)
    body = bytes(ud[header_len : max(header_len, udl)] if not short else ud[header_len:])
    if encoding is SmsEncoding.UCS2:
        odd = len(body) % 2 == 1
        if odd:
            body = body[:-1]
        # A lone surrogate (a sender cut an emoji in two) becomes U+FFFD; the raw PDU keeps it.
        text = body.decode("utf-16-be", errors="replace")
        return _UserData(text, b"", tuple(ies), concat, wide, truncated=short or odd)
    return _UserData("", body, tuple(ies), concat, wide, truncated=short)


# --- SMS-SUBMIT ------------------------------------------------------------------------------


def encode_submit(p: SubmitPdu) -> EncodedPdu:
    wide = p.wide_ref if p.wide_ref is not None else bool(p.concat and p.concat.ref > 0xFF)
    if p.concat is not None and p.concat.ref > (0xFFFF if wide else 0xFF):
        raise PduError("concatenation reference out of range")
    udh = _udh(p.concat, wide, p.extra_ies)
    first = Mti.SUBMIT
    if p.reject_duplicates:
        first |= 0x04
    if p.validity_minutes is not None:
        first |= 0x10  # TP-VPF relative
    if p.status_report:
        first |= 0x20
    if udh:
        first |= 0x40
    tpdu = bytearray([first, p.message_ref & 0xFF])
    tpdu += encode_address(p.to)
    tpdu += bytes([0x00, _dcs_of(p.encoding)])
    if p.validity_minutes is not None:
        tpdu.append(encode_relative_validity(p.validity_minutes))
    udl, ud = _encode_ud(p.encoding, p.text, p.data, udh)
    tpdu += bytes([udl]) + ud
    return EncodedPdu((encode_smsc(p.smsc) + tpdu).hex().upper(), len(tpdu))


def _decode_submit(r: _Reader, smsc: Address | None, first: int) -> SubmitPdu:
    mr = r.byte("TP-MR")
    to = _read_address(r)
    r.byte("TP-PID")
    dcs = r.byte("TP-DCS")
    vpf = (first >> 3) & 0x03
    validity = None
    if vpf == 2:
        validity = decode_relative_validity(r.byte("TP-VP"))
    elif vpf in (1, 3):
        r.take(7, "TP-VP")
    udl = r.byte("TP-UDL")
    encoding, _ = _dcs_alphabet(dcs)
    ud = _decode_ud(encoding, bool(first & 0x40), udl, r.rest())
    concat_ies = (IEI_CONCAT8, IEI_CONCAT16)
    return SubmitPdu(
        to=to,
        text=ud.text,
        encoding=encoding or SmsEncoding.DATA,
        message_ref=mr,
        status_report=bool(first & 0x20),
        concat=ud.concat,
        wide_ref=ud.wide_ref,
        validity_minutes=validity,
        reject_duplicates=bool(first & 0x04),
        smsc=smsc,
        data=ud.data,
        extra_ies=tuple(ie for ie in ud.ies if ie.iei not in concat_ies),
    )


# --- SMS-DELIVER -----------------------------------------------------------------------------


def encode_deliver(p: DeliverPdu) -> EncodedPdu:
    wide = p.wide_ref or bool(p.concat and p.concat.ref > 0xFF)
    udh = _udh(p.concat, wide, p.ies)
    first = Mti.DELIVER
    if not p.more_messages:
        first |= 0x04  # TP-MMS set means "no more messages waiting"
    if p.status_report_indication:
        first |= 0x20
    if udh:
        first |= 0x40
    dcs = p.dcs or _dcs_of(p.encoding)
    tpdu = bytearray([first]) + encode_address(p.sender) + bytes([p.pid, dcs])
    tpdu += encode_timestamp(p.scts or datetime.now(UTC))
    udl, ud = _encode_ud(p.encoding, p.text, p.data, udh)
    tpdu += bytes([udl]) + ud
    return EncodedPdu((encode_smsc(p.smsc) + tpdu).hex().upper(), len(tpdu))


def _decode_deliver(r: _Reader, smsc: Address | None, first: int) -> DeliverPdu:
    sender = _read_address(r)
    pid = r.byte("TP-PID")
    dcs = r.byte("TP-DCS")
    scts = decode_timestamp(r.take(7, "TP-SCTS"))
    udl = r.byte("TP-UDL")
    encoding, cls = _dcs_alphabet(dcs)
    ud = _decode_ud(encoding, bool(first & 0x40), udl, r.rest())
    return DeliverPdu(
        sender=sender,
        text=ud.text,
        encoding=encoding or SmsEncoding.DATA,
        scts=scts,
        concat=ud.concat,
        smsc=smsc,
        pid=pid,
        dcs=dcs,
        more_messages=not first & 0x04,
        status_report_indication=bool(first & 0x20),
        message_class=cls,
        data=ud.data,
        ies=ud.ies,
        wide_ref=ud.wide_ref,
        truncated=ud.truncated,
    )


# --- SMS-STATUS-REPORT -----------------------------------------------------------------------


def encode_status_report(p: StatusReportPdu) -> EncodedPdu:
    now = datetime.now(UTC)
    tpdu = bytearray([Mti.STATUS_REPORT, p.message_ref & 0xFF])
    tpdu += encode_address(p.recipient)
    tpdu += encode_timestamp(p.scts or now) + encode_timestamp(p.discharge or now)
    tpdu.append(p.status & 0xFF)
    return EncodedPdu((encode_smsc(p.smsc) + tpdu).hex().upper(), len(tpdu))


def _decode_status_report(r: _Reader, smsc: Address | None) -> StatusReportPdu:
    mr = r.byte("TP-MR")
    recipient = _read_address(r)
    scts = decode_timestamp(r.take(7, "TP-SCTS"))
    dt = decode_timestamp(r.take(7, "TP-DT"))
    st = r.byte("TP-ST")
    # TP-PI and the optional PID/DCS/UD that may follow carry nothing the core uses.
    return StatusReportPdu(mr, recipient, scts, dt, st, smsc)


# --- entry point -----------------------------------------------------------------------------

Pdu = SubmitPdu | DeliverPdu | StatusReportPdu


def parse_hex(pdu_hex: str) -> bytes:
    text = pdu_hex.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise PduError(f"not hexadecimal: {text[:40]!r}") from None


def decode(pdu_hex: str, tpdu_length: int | None = None) -> Pdu:
    """Decode a PDU as a modem shows it (+CMGR, +CMGL, +CDS) or as a TE wrote it (+CMGS).

    With ``tpdu_length`` (the <length> the modem printed) a PDU without the SMSC field — a few
    modems drop it from +CDS — is recognised; without it the field is expected."""
    raw = parse_hex(pdu_hex)
    if not raw:
        raise PduError("empty PDU")
    r = _Reader(raw)
    smsc = None if tpdu_length is not None and len(raw) == tpdu_length else _read_smsc(r)
    first = r.byte("first octet")
    mti = first & 0x03
    try:
        if mti == Mti.DELIVER:
            return _decode_deliver(r, smsc, first)
        if mti == Mti.SUBMIT:
            return _decode_submit(r, smsc, first)
        if mti == Mti.STATUS_REPORT:
            return _decode_status_report(r, smsc)
    except (IndexError, ValueError) as exc:
        if isinstance(exc, PduError):
            raise
        raise PduError(f"malformed PDU: {exc}") from None
    raise PduError("reserved message type (TP-MTI 3)")


def submit_for_part(
    to: Address,
    text: str,
    encoding: SmsEncoding,
    *,
    seq: int = 1,
    total: int = 1,
    concat_ref: int | None = None,
    status_report: bool = True,
    validity_minutes: int | None = None,
    smsc: Address | None = None,
) -> EncodedPdu:
    """The SMS-SUBMIT for one part as :func:`callcenter.sms.segments.outbound_parts` made it."""
    concat = None
    if total > 1:
        if concat_ref is None:
            raise PduError("a part of a multipart message needs a concatenation reference")
        concat = Concat(ref=concat_ref, total=total, seq=seq)
    return encode_submit(
        SubmitPdu(
            to=to,
            text=text,
            encoding=encoding,
            status_report=status_report,
            concat=concat,
            validity_minutes=validity_minutes,
            smsc=smsc,
        )
    )

"""What a modem line reports about SMS and USSD, in words every modem family shares.

The modem adapter (``gsm/``) decodes PDUs and AT codes into these; the core stores them before
the modem acknowledges anything (an inbound part is deleted from the SIM only after the sink
that received it returned). Incoming GSM *calls* use :mod:`callcenter.line_events`, like any line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SmsEncoding(enum.StrEnum):
    GSM7 = "gsm7"  # GSM 03.38 default alphabet + extension table; 160 / 153 per part
    UCS2 = "ucs2"  # UTF-16BE; 70 / 67 per part
    DATA = "8bit"  # binary, not shown as text


class AddressKind(enum.StrEnum):
    INTERNATIONAL = "international"  # TON 1: the digits are E.164 without "+"
    NATIONAL = "national"  # TON 2 / unknown: as dialled in the country ("89161234567")
    ALPHANUMERIC = "alphanumeric"  # TON 5: a sender name ("MTS", "Bank")


@dataclass(frozen=True, slots=True)
class Address:
    kind: AddressKind
    value: str  # "+79161234567", "89161234567", "MTS"


@dataclass(frozen=True, slots=True)
class Concat:
    """The user-data header of one part of a long message (8- or 16-bit reference)."""

    ref: int
    total: int
    seq: int  # 1-based


@dataclass(frozen=True, slots=True)
class SmsPartReceived:
    """One SMS-DELIVER read from a modem. A message of one part has ``concat=None``."""

    line: str  # the modem line's name
    sender: Address
    text: str  # decoded; "" for 8-bit data
    encoding: SmsEncoding
    smsc_time: float  # TP-SCTS as unix time (the SMSC's clock, with its zone applied)
    concat: Concat | None
    pdu: str  # the raw PDU in hex, kept for the record and for de-duplication
    storage_index: int | None = None  # the SIM/ME slot it was read from
    truncated: bool = False  # shorter than its header said: the text shown is incomplete


class ReportStatus(enum.StrEnum):
    DELIVERED = "delivered"  # TP-ST 0x00-0x1F: short message received by the SME
    PENDING = "pending"  # TP-ST 0x20-0x3F: the SMSC still tries
    FAILED = "failed"  # TP-ST 0x40-0x7F: permanent error or given up


@dataclass(frozen=True, slots=True)
class SmsStatusReport:
    """One SMS-STATUS-REPORT (+CDS or +CDSI read): about exactly one sent part."""

    line: str
    message_ref: int  # TP-MR of the part it reports on (the value +CMGS returned)
    recipient: Address
    status: ReportStatus
    status_code: int  # TP-ST, for the log and for the failure text
    discharge_time: float | None  # TP-DT as unix time
    pdu: str
    # TP-SCTS: when the SMSC took the part. TP-MR wraps at 256, so the core matches a report
    # on line + MR + recipient + this time near the part's send time.
    submitted_time: float | None = None


@dataclass(frozen=True, slots=True)
class UssdReply:
    line: str
    text: str  # decoded (GSM 7-bit, UCS2 or hex-encoded replies), may be several lines
    # +CUSD <m>: 0 done, 1 further action required, 2 ended by the network, 4 not supported
    status: int
    dcs: int | None


SmsLineEvent = SmsPartReceived | SmsStatusReport | UssdReply

"""What the modem's answers mean: pure functions over the lines of the AT layer.

Signal, registration, operator, the +CMGL / +CMGR listings, +CLIP, +CUSD, and what a
``+CMS ERROR`` code says about retrying (27.005 §3.2.5, 24.011 Annex E-2, 23.040 §9.2.3.22).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gsm.at import split_args


def first_value(lines: tuple[str, ...] | list[str]) -> str:
    """The answer of ``AT+CGMM``, ``AT+CGSN``, ``ATI``…: the first non-empty line, without a
    ``+CGSN:`` style prefix, bounded."""
    value = next((ln for ln in lines if ln), "")
    return (value.split(":", 1)[-1].strip() if value.startswith("+") else value)[:64]


def csq_dbm(args: list[str]) -> int | None:
    """``+CSQ: <rssi>,<ber>`` -> dBm (27.007 §8.5: -113 + 2·rssi); None for 99 / unknown."""
    try:
        rssi = int(args[0])
    except (IndexError, ValueError):
        return None
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    if 100 <= rssi <= 191:  # TD-SCDMA / extended range some modems use: -116 + (rssi - 100)
        return -116 + (rssi - 100)
    return None


@dataclass(frozen=True, slots=True)
class Registration:
    stat: int  # 0 not searching, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming
    registered: bool
    roaming: bool

    @property
    def words(self) -> str:
        return {
            0: "not registered",
            1: "registered",
            2: "searching for a network",
            3: "registration denied",
            4: "registration unknown",
            5: "registered, roaming",
        }.get(self.stat, f"registration state {self.stat}")


def creg(args: list[str], *, urc: bool) -> Registration | None:
    """``+CREG: <n>,<stat>[,...]`` (reply) or ``+CREG: <stat>[,...]`` (URC)."""
    try:
        stat = int(args[0] if urc else args[1])
    except (IndexError, ValueError):
        return None
    return Registration(stat, stat in (1, 5), stat == 5)


def cops_operator(args: list[str]) -> str:
    """``+COPS: <mode>[,<format>,"<oper>"[,<act>]]`` -> the operator's name, "" if none."""
    return args[2][:40] if len(args) >= 3 else ""


@dataclass(frozen=True, slots=True)
class StoredPdu:
    index: int | None  # None for +CMGR (the caller knows the index)
    stat: int  # 0 received unread, 1 received read, 2 stored unsent, 3 stored sent
    length: int  # TPDU octets
    pdu: str


def listing(lines: tuple[str, ...] | list[str], prefix: str) -> list[StoredPdu]:
    """The messages of ``+CMGL`` (``+CMGL: <index>,<stat>,[<alpha>],<length>`` then the PDU)
    or ``+CMGR`` (``+CMGR: <stat>,[<alpha>],<length>`` then the PDU). A header whose PDU line
    is missing or another header is skipped, never glued to the next message."""
    out: list[StoredPdu] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith(prefix + ":"):
            continue
        args = split_args(line)
        if i >= len(lines) or lines[i].startswith(prefix + ":"):
            continue
        pdu = lines[i].strip()
        i += 1
        try:
            if prefix == "+CMGL":
                index, stat, length = int(args[0]), int(args[1]), int(args[-1])
            else:
                index, stat, length = None, int(args[0]), int(args[-1])
        except (IndexError, ValueError):
            continue
        out.append(StoredPdu(index, stat, length, pdu))
    return out


@dataclass(frozen=True, slots=True)
class Clip:
    number: str
    withheld: bool
    name: str = ""


def clip(args: list[str]) -> Clip:
    """``+CLIP: "<number>",<type>[,<subaddr>,<satype>[,"<alpha>"[,<CLI validity>]]]``."""
    number = args[0] if args else ""
    number = re.sub(r"[^0-9+*#]", "", number)[:32]
    ntype = args[1] if len(args) > 1 else ""
    if ntype == "145" and number and not number.startswith("+"):
        number = "+" + number
    validity = args[5] if len(args) > 5 else ""
    name = args[4][:64] if len(args) > 4 else ""
    withheld = validity in ("1", "2") or not number
    return Clip("" if withheld else number, withheld, name)


@dataclass(frozen=True, slots=True)
class Cusd:
    status: int  # 0 done, 1 further action, 2 ended by network, 3 other client, 4 unsupported
    text: str  # the raw <str>, still encoded
    dcs: int | None


def cusd(args: list[str]) -> Cusd:
    try:
        status = int(args[0])
    except (IndexError, ValueError):
        status = 0
    text = args[1] if len(args) > 1 else ""
    try:
        dcs: int | None = int(args[2]) if len(args) > 2 and args[2] else None
    except ValueError:
        dcs = None
    return Cusd(status, text, dcs)


# --- +CMS ERROR --------------------------------------------------------------------------------

# Codes after which the part may well have reached the SMSC: never re-send by itself.
CMS_UNKNOWN_OUTCOME = frozenset({332})  # network timeout: no RP-ACK, the SMSC may have it

_PERMANENT = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    95: "invalid short message",
    96: "invalid mandatory information",
    97: "message type non-existent",
    98: "message not compatible with the protocol state",
    99: "information element non-existent",
    0x80: "telematic interworking not supported",
    0x90: "data coding scheme not supported",
    0xB0: "TPDU not supported",
    0xC1: "no SMSC subscription",
    0xC3: "invalid destination address",
    0xC4: "destination barred",
    0xC5: "rejected as a duplicate",
    0xC6: "validity period format not supported",
    0xC7: "validity period not supported",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
}
_TRANSIENT = {
    27: "destination out of service",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable",
    111: "protocol error",
    127: "interworking error",
    0xC0: "SMSC busy",
    0xC2: "SMSC system failure",
    0xD0: "SIM SMS storage full",
    0xD2: "error in the modem",
    0xD4: "SIM toolkit busy",
    300: "modem failure",
    302: "operation not allowed",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    316: "SIM PUK required",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    500: "unknown error",
}
# 27.005 §3.2.5 names of the codes, as a modem ignoring AT+CMEE=1 says them (lower case).
_WORDS = {
    "me failure": 300,
    "sms service of me reserved": 301,
    "operation not allowed": 302,
    "operation not supported": 303,
    "invalid pdu mode parameter": 304,
    "invalid text mode parameter": 305,
    "sim not inserted": 310,
    "sim pin required": 311,
    "ph-sim pin required": 312,
    "sim failure": 313,
    "sim busy": 314,
    "sim wrong": 315,
    "sim puk required": 316,
    "memory failure": 320,
    "invalid memory index": 321,
    "memory full": 322,
    "smsc address unknown": 330,
    "no network service": 331,
    "network timeout": 332,
    "unknown error": 500,
}


def cms_code(code: int | None, text: str) -> int | None:
    """The code of ``+CMS ERROR: <n>``, or of its words (``+CMS ERROR: Network timeout``)."""
    if code is not None:
        return code
    words = " ".join(text.split(":", 1)[-1].split()).lower()
    return _WORDS.get(words)


def cms_outcome_unknown(code: int | None, *, pdu_written: bool) -> bool:
    """After this answer to AT+CMGS the part may have reached the SMSC: never re-send it by
    itself. 332 always; after the PDU was written also 500, the unlisted codes from 500 on
    (manufacturer-specific: nobody says whether the network had it) and an unrecognised
    answer (``code`` None)."""
    if code in CMS_UNKNOWN_OUTCOME:
        return True
    if not pdu_written:
        return False
    return code is None or code == 500 or (code > 500 and code not in _PERMANENT)


def cms_error(code: int | None, text: str = "") -> tuple[str, bool]:
    """(reason in words, permanent) for ``+CMS ERROR: <code>``. Permanent: the message itself
    is refused (number, barring, format), so no modem can send it; else the pool may retry."""
    code = cms_code(code, text)
    if code is None:
        return (text or "+CMS ERROR", False)
    if code in _PERMANENT:
        return (f"{_PERMANENT[code]} (+CMS ERROR {code})", True)
    if code in _TRANSIENT:
        return (f"{_TRANSIENT[code]} (+CMS ERROR {code})", False)
    return (f"+CMS ERROR {code}", False)

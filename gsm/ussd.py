"""USSD over AT+CUSD: decode the reply string whatever form the modem chose, encode a request,
and read a balance out of the operator's words.

``+CUSD: <m>[,<str>[,<dcs>]]`` (27.007 §7.15). The same operator reply reaches the TE as

* GSM 7-bit *packed* septets in hex, DCS 15 (Huawei E-series and most sticks, whatever
  AT+CSCS says): ``+CUSD: 0,"C2303BEC1E97413D90B40E",15``;
* UCS2 in hex, DCS 72 (0x48) — or DCS 15 with AT+CSCS="UCS2", the modem converting for us;
* plain text, when the modem decodes itself (SIMCom, Quectel with AT+CSCS="GSM"/"IRA"),
  possibly over several lines (the AT layer hands the lines joined with "\\n").

``decode_reply`` takes a ``mode`` from the modem's settings ("packed", "plain", "ucs2") and in
"auto" tells the forms apart by what decodes to readable text.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from . import gsm7

DCS_GSM7 = 0x0F
DCS_UCS2 = 0x48
MAX_REPLY = 2000  # characters kept of one reply (a USSD string is at most 182 septets)
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


class UssdMode(enum.StrEnum):
    AUTO = "auto"
    PACKED = "packed"  # the modem sends and wants GSM 7-bit packed hex
    PLAIN = "plain"  # the modem converts to and from its AT+CSCS character set
    UCS2 = "ucs2"  # AT+CSCS="UCS2": every string is UTF-16BE hex


def _alphabet(dcs: int | None) -> str:
    """'gsm7', 'ucs2' or '8bit' for a CBS/USSD data coding scheme (23.038 §5)."""
    if dcs is None:
        return "gsm7"
    group = dcs >> 4
    if dcs == 0x10:
        return "gsm7-lang"
    if group in (0x0, 0x2, 0x3):
        return "gsm7"
    if dcs == 0x11:
        return "ucs2-lang"
    if group in (0x4, 0x5, 0x6, 0x7, 0x9):
        return {0: "gsm7", 1: "8bit", 2: "ucs2"}.get((dcs >> 2) & 0x03, "gsm7")
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"


def _readable(text: str) -> bool:
    if not text:
        return False
    for ch in text:
        if ch in "\r\n\t":
            continue
        cat = unicodedata.category(ch)
        if cat.startswith("C") or ch == "\ufffd":
            return False
    return True


def _ucs2(raw: bytes) -> str | None:
    if len(raw) % 2:
        return None
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError:
        return None


def _looks_ucs2(raw: bytes) -> bool:
    """UTF-16BE text of a real language: mostly Latin (00xx) or Cyrillic (04xx) high bytes."""
    text = _ucs2(raw)
    if text is None or not _readable(text):
        return False
    highs = raw[0::2]
    return sum(1 for h in highs if h in (0x00, 0x04)) * 2 >= len(highs)


def decode_reply(s: str, dcs: int | None, mode: UssdMode = UssdMode.AUTO) -> str:
    """The text of a +CUSD reply string, newlines normalised to "\\n"."""
    s = s.strip()
    alphabet = _alphabet(dcs)
    text = _decode(s, alphabet, mode)
    if alphabet == "gsm7-lang" and len(text) >= 3 and text[:2].isalpha() and text[2] == "\r":
        text = text[3:]  # 23.038 §5 DCS 0x10: "EN<CR>", the language, precedes the text
    return text.replace("\r\n", "\n").replace("\r", "\n")[:MAX_REPLY]


def _decode(s: str, alphabet: str, mode: UssdMode) -> str:
    is_hex = bool(_HEX.match(s))
    if mode is UssdMode.PLAIN or not is_hex:
        return s
    raw = bytes.fromhex(s)
    if mode is UssdMode.UCS2 or alphabet in ("ucs2", "ucs2-lang"):
        if alphabet == "ucs2-lang":
            raw = raw[2:]  # two octets of language indication
        text = _ucs2(raw)
        return text if text is not None else raw.decode("utf-16-be", errors="replace")
    if alphabet == "8bit":
        return raw.decode("latin-1")
    if mode is UssdMode.PACKED:
        return gsm7.unpack_ussd(raw)
    # auto, GSM 7-bit DCS, a hex string: UCS2 from AT+CSCS="UCS2", packed septets, or plain
    # text that happens to be all hex digits ("1234").
    if len(raw) % 2 == 0 and _looks_ucs2(raw):
        return raw.decode("utf-16-be")
    packed = gsm7.unpack_ussd(raw)
    if _readable(packed) and not s.isdigit():
        return packed
    return s


def encode_request(code: str, mode: UssdMode = UssdMode.PACKED) -> tuple[str, int]:
    """(string, dcs) for ``AT+CUSD=1,"<string>",<dcs>``. Raises ValueError for a code that is
    not a USSD string (only digits, ``*`` and ``#`` are sent: nothing else reaches the modem)."""
    if not re.fullmatch(r"[0-9*#]{1,64}", code):
        raise ValueError(f"not a USSD code: {code[:20]!r}")
    if mode is UssdMode.PACKED:
        return gsm7.pack_ussd(code).hex().upper(), DCS_GSM7
    if mode is UssdMode.UCS2:
        return code.encode("utf-16-be").hex().upper(), DCS_GSM7
    return code, DCS_GSM7


@dataclass(frozen=True, slots=True)
class Balance:
    text: str  # the whole reply, for display
    amount: Decimal | None  # None when no figure was found
    currency: str = ""


_KEYWORDS = r"(?:баланс|balance|balans|остаток|на сч[её]те|credit|guthaben|saldo|solde|restsaldo)"
_NUMBER = (
    r"(?P<sign>[-−–]|минус\s*)?"
    r"(?P<num>\d{1,3}(?:[ \u00a0]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)"
)
_CURRENCY = (
    r"(?P<cur>руб\.?|р\.|р\b|₽|rub|rur|eur|€|usd|\$|uah|грн\.?|grn|kzt|тг|тенге|byn|gbp|£"
    r"|chf|pln|zł)"
)
_AFTER_KEYWORD = re.compile(
    _KEYWORDS + r"[^\d\-−–]{0,30}?" + _NUMBER + r"\s*" + _CURRENCY + "?",
    re.IGNORECASE,
)
_WITH_CURRENCY = re.compile(_NUMBER + r"\s*" + _CURRENCY, re.IGNORECASE)


def parse_balance(text: str) -> Balance:
    """A balance figure out of an operator's reply: "Баланс: 123.45 р." -> 123.45 "р.";
    "Balance 12,30 EUR" -> 12.30 "EUR"; "Ваш баланс минус 15 руб" -> -15. Prefers a number
    after a balance keyword, then any number followed by a currency; else no amount."""
    m = _AFTER_KEYWORD.search(text) or _WITH_CURRENCY.search(text)
    if m is None:
        return Balance(text, None)
    num = re.sub(r"[ \u00a0]", "", m.group("num")).replace(",", ".")
    try:
        amount = Decimal(num)
    except InvalidOperation:
        return Balance(text, None)
    if m.group("sign"):
        amount = -amount
    return Balance(text, amount, (m.group("cur") or "").strip())

"""Phone numbers: normalize caller IDs to E.164 and pick the digits used for matching.

Normalization uses the ``phonenumbers`` library with the configured default region. When it
cannot produce a valid E.164 number, matching falls back to the last N significant digits, and
never on fewer than ``MIN_MATCH_DIGITS`` digits, so a short code or a typo matches nobody.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

MIN_MATCH_DIGITS = 7
DEFAULT_TAIL_DIGITS = 10
MAX_EXTENSION_DIGITS = 6

_WITHHELD = {"", "anonymous", "<unknown>", "unknown", "restricted", "private", "withheld",
             "unavailable", "<unavailable>", "anonymous@anonymous.invalid"}
_NON_DIGITS = re.compile(r"\D+")


class NumberKind(enum.StrEnum):
    EXTERNAL = "external"  # a number outside the office: look it up in the client base
    EXTENSION = "extension"  # an internal extension: look it up among users
    WITHHELD = "withheld"  # anonymous, unknown or empty: no lookup
    INVALID = "invalid"  # too short or garbage to match anything


@dataclass(frozen=True, slots=True)
class Number:
    raw: str
    kind: NumberKind
    e164: str | None = None  # "+79161234567" when phonenumbers could make it valid
    digits: str = ""  # every digit of the number as dialled (international form when known)

    @property
    def withheld(self) -> bool:
        return self.kind is NumberKind.WITHHELD

    def tail(self, n: int = DEFAULT_TAIL_DIGITS) -> str | None:
        """The last ``n`` significant digits, or None when fewer than MIN_MATCH_DIGITS exist."""
        digits = self.digits
        if len(digits) < MIN_MATCH_DIGITS:
            return None
        return digits[-n:] if len(digits) > n else digits


def digits_of(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def normalize(raw: str | None, region: str = "RU", *,
              max_extension_digits: int = MAX_EXTENSION_DIGITS) -> Number:
    """Classify and normalize one caller ID or typed phone number.

    ``region`` is an ISO country code ("RU", "DE") used for national forms such as 8 916 ... ;
    ``max_extension_digits`` is the longest number still treated as an internal extension.
    """
    text = (raw or "").strip()
    if text.lower() in _WITHHELD:
        return Number(text, NumberKind.WITHHELD)
    if text.lower().startswith("sip:"):
        text = text[4:].split("@", 1)[0]
        if text.lower() in _WITHHELD:
            return Number(raw or "", NumberKind.WITHHELD)
    digits = digits_of(text)
    if not digits:
        return Number(raw or "", NumberKind.INVALID)
    if not text.lstrip().startswith("+") and len(digits) <= max_extension_digits and len(
        digits
    ) < MIN_MATCH_DIGITS:
        return Number(raw or "", NumberKind.EXTENSION, digits=digits)
    e164 = _to_e164(text, digits, region)
    if e164 is not None:
        return Number(raw or "", NumberKind.EXTERNAL, e164, e164[1:])
    if len(digits) < MIN_MATCH_DIGITS:
        return Number(raw or "", NumberKind.INVALID, digits=digits)
    return Number(raw or "", NumberKind.EXTERNAL, None, _strip_international_prefix(digits))


def _to_e164(text: str, digits: str, region: str) -> str | None:
    candidates = [text]
    if text.startswith("00"):
        candidates.insert(0, "+" + digits[2:])
    elif region.upper() == "RU" and digits.startswith("810") and not text.startswith("+"):
        candidates.insert(0, "+" + digits[3:])  # Russian international prefix 8~10
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region.upper() or None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


_PLAIN = re.compile(r"^\+?[0-9][0-9 ()\-.]*$")
_SEPARATORS = str.maketrans("", "", " ()-.")


@lru_cache(maxsize=32)
def _region_shape(region: str) -> tuple[str, str, str, frozenset[int]] | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    if meta is None:
        return None
    national = meta.national_prefix or ""
    international = meta.international_prefix or ""
    if (national and not national.isdigit()) or meta.national_prefix_for_parsing not in (
        None, national
    ):
        return None  # prefixes given as patterns (BY "0|80?"): leave them to phonenumbers
    if not international.isdigit():
        international = "00"  # regions with a pattern ("0(?:0|1)") - the common one
    lengths = frozenset(meta.general_desc.possible_length or ())
    return str(meta.country_code), national, international, lengths


def quick_e164(raw: str, region: str) -> str | None:
    """The E.164 form of a plainly written number, without the phonenumbers parser.

    A caller-ID lookup runs on every ringing call; phonenumbers.parse alone costs ~17 µs, more
    than the whole indexed read. For the shapes a PBX actually sends (+7…, 8…, 00…, bare
    national digits) the E.164 form is a matter of prefixes, which the region's metadata gives.
    Anything else returns None and goes through normalize(). The result is a lookup key, not a
    validity verdict: stored numbers are validated, so a wrong key simply finds nothing.
    It answers only where it provably agrees: its key is phonenumbers' E.164, or phonenumbers
    finds no valid number and the key is no canonical valid number either. Shapes where the
    two could differ (a national prefix after the country code, bare digits that begin with
    the country code, fewer than 7 digits) return None. Property tests over written forms of
    valid numbers and over random strings (RU, DE, US, GB offices) hold it to the library.
    """
    if raw.isdigit():
        text = raw  # the usual shapes first: no regex, no copy
    elif raw[:1] == "+" and raw[1:].isdigit():
        return _international(raw[1:])
    elif not _PLAIN.match(raw):
        return None
    else:
        text = raw.translate(_SEPARATORS)
    if text.startswith("+"):
        return _international(text[1:])
    if len(text) < MIN_MATCH_DIGITS:
        return None  # normalize() takes it for an extension or too short to match
    shape = _region_shape(region)
    if shape is None:
        return None
    country, national, international, lengths = shape
    for prefix in {international, "00"}:
        if text.startswith(prefix) and len(text) - len(prefix) >= 8:
            return _international(text[len(prefix):])
    if national and text.startswith(national) and len(text) - len(national) in lengths:
        return "+" + country + text[len(national):]
    if text.startswith(country) and len(text) - len(country) in lengths and len(text) > max(
        lengths, default=0
    ):
        return "+" + text
    if len(text) in lengths and not (national and text.startswith(national)) and not (
        text.startswith(country)  # "49 705…" in DE: a country code, or national digits?
    ):
        return "+" + country + text
    return None


def _international(digits: str) -> str | None:
    """``+<digits>`` when the digits after the country code cannot hold a national prefix that
    phonenumbers would strip (``+49 (0)30 …``, ``0049 030 …``); None leaves those to it."""
    if not 7 <= len(digits) <= 15 or not digits.isdigit():
        return None
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if regions:
            break
    else:
        return None
    shape = _region_shape(regions[0])
    if shape is None:
        return None
    national = shape[1]
    if national and digits[size:].startswith(national):
        return None
    return "+" + digits


def _strip_international_prefix(digits: str) -> str:
    if digits.startswith("00"):
        return digits[2:]
    return digits


def display(number: Number, region: str = "RU") -> str:
    """A human form for the console: international format when valid, raw text otherwise."""
    if number.e164:
        return _display_e164(number.e164, region.upper())
    return number.raw


@lru_cache(maxsize=4096)  # the same callers ring again and again
def _display_e164(e164: str, region: str) -> str:
    parsed = phonenumbers.parse(e164, None)
    if phonenumbers.region_code_for_number(parsed) == region:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

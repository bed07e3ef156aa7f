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


# Hashable and never changed, but not frozen: a frozen dataclass's __init__ costs ~0.6 µs more,
# a third of a screen-pop's lookup (benchmarks/lookup.py). Treat it as immutable.
@dataclass(slots=True, unsafe_hash=True)
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
    if not raw.isascii():
        return None  # other digits ("８９１…", "٨٩١…"): phonenumbers reads them, str methods not
    if raw.isdigit():
        text = raw  # the usual shapes first: no regex, no copy
    elif raw[:1] == "+" and raw[1:].isdigit():
        return _international(raw[1:])
    elif not _PLAIN.fullmatch(raw):
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
            if _idd_end(region, text) not in (0, len(prefix)):
                return None  # the region's prefix pattern takes more ("00[14-9]", KH: "008…")
            return _international(text[len(prefix):])
    if text.startswith("00") or _idd_end(region, text):
        return None  # normalize() reads an international prefix first (IL "019 71…", NL "00 31…")
    if national and text.startswith(national) and len(text) - len(national) in lengths:
        return "+" + country + text[len(national):]
    if text.startswith(country) and len(text) - len(country) in lengths and len(text) > max(
        lengths, default=0
    ) and not (national and text[len(country):].startswith(national)):
        return "+" + text  # (phonenumbers strips a national prefix after it: "43 0294…", AT)
    if len(text) in lengths and not (national and text.startswith(national)) and not (
        text.startswith(country)  # "49 705…" in DE: a country code, or national digits?
    ):
        return "+" + country + text
    return None


@lru_cache(maxsize=32)
def _idd_pattern(region: str) -> re.Pattern[str] | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    prefix = meta.international_prefix if meta is not None else None
    return re.compile(prefix) if prefix else None


def _idd_end(region: str, text: str) -> int:
    """How many leading digits of ``text`` phonenumbers takes for the region's international
    prefix (0: none)."""
    pattern = _idd_pattern(region)
    found = pattern.match(text) if pattern is not None else None
    return found.end() if found else 0


def _international(digits: str) -> str | None:
    """``+<digits>`` when the digits after the country code cannot hold a national prefix that
    phonenumbers would strip (``+49 (0)30 …``, ``0049 030 …``); None leaves those to it."""
    if not 7 <= len(digits) <= 15 or not digits.isdigit() or digits[0] == "0":
        return None  # no country code begins with 0 ("0000 7 912…": phonenumbers reads +7)
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


def quick_key(raw: str, region: str) -> tuple[str | None, str] | None:
    """The caller-ID lookup's key for a plainly written external number, without phonenumbers:
    ``(e164, digits)`` where :func:`quick_e164` answers, ``(None, digits)`` where phonenumbers
    provably finds no valid number (so normalize() would give an external number with no E.164
    form and these digits), None for everything else (normalize() decides). ``digits`` is what
    the last-digits match uses, as normalize() would give it.
    """
    key = quick_e164(raw, region)
    if key is not None:
        return (key, key[1:]) if len(key) > MIN_MATCH_DIGITS else None
    return None if (digits := _no_valid_number(raw, region)) is None else (None, digits)


def _no_valid_number(raw: str, region: str) -> str | None:
    """The digits of ``raw`` when phonenumbers cannot read a valid number in them: national
    digits (no ``+``, no international, national or country prefix that phonenumbers would
    strip) that no region of the country could hold. The usual such caller ID is a carrier's
    own prefix before the number ("99 916 …"); the full parse of it costs ~40 µs."""
    if not raw.isascii():
        return None  # "８９１…" is 8 91… to phonenumbers, and no pattern's digits to re
    if raw.isdigit():
        text = raw
    elif raw[:1] == "+" or not _PLAIN.fullmatch(raw):
        return None
    else:
        text = raw.translate(_SEPARATORS)
    profile = _invalid_profile(region)
    if profile is None or len(text) < MIN_MATCH_DIGITS:
        return None
    country, national, international, regions = profile
    if text.startswith(("00", country)) or (national and text.startswith(national)) or (
            international.match(text)):
        return None
    # What is_valid_number() asks first of each region sharing the country code (+7: RU and
    # KZ): a possible length and the general pattern. Neither anywhere: no valid number.
    for lengths, pattern in regions:
        if len(text) in lengths and pattern.fullmatch(text):
            return None
    return text


@lru_cache(maxsize=32)
def _invalid_profile(region: str) -> tuple[str, str, re.Pattern[str],
                                           tuple[tuple[frozenset[int], re.Pattern[str]], ...]
                                           ] | None:
    """(country code, national prefix, international prefix pattern, (possible lengths,
    general pattern) of every region of the country) for ``region``, or None where its
    prefixes are patterns or a region gives no lengths or pattern."""
    shape = _region_shape(region)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    if shape is None or meta is None or not meta.international_prefix:
        return None
    country, national = shape[0], shape[1]
    regions = []
    for other in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(country), ()):
        desc = getattr(phonenumbers.PhoneMetadata.metadata_for_region(other), "general_desc",
                       None)
        if desc is None or not desc.possible_length or not desc.national_number_pattern:
            return None
        regions.append((frozenset(desc.possible_length), re.compile(desc.national_number_pattern)))
    return country, national, re.compile(meta.international_prefix), tuple(regions)


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

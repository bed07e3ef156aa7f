from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.phones import (
    MIN_MATCH_DIGITS,
    NumberKind,
    display,
    normalize,
    quick_e164,
    quick_key,
)

SAME_NUMBER = ["+79161234567", "89161234567", "9161234567", "0079161234567",
               "+7 (916) 123-45-67", "8 916 123 45 67", "+7-916-123-45-67", "79161234567"]


@pytest.mark.parametrize("raw", SAME_NUMBER)
def test_every_russian_form_gives_the_same_e164(raw: str) -> None:
    n = normalize(raw, "RU")
    assert n.kind is NumberKind.EXTERNAL
    assert n.e164 == "+79161234567"
    assert n.raw == raw
    assert n.tail(10) == "9161234567"


@pytest.mark.parametrize("raw", ["anonymous", "Anonymous", "<unknown>", "", "   ", None,
                                 "sip:anonymous@anonymous.invalid", "Restricted"])
def test_withheld_forms(raw: str | None) -> None:
    n = normalize(raw, "RU")
    assert n.kind is NumberKind.WITHHELD
    assert n.withheld
    assert n.tail() is None


@pytest.mark.parametrize("raw", ["101", "5", "2001", "123456"])
def test_internal_extensions(raw: str) -> None:
    n = normalize(raw, "RU")
    assert n.kind is NumberKind.EXTENSION
    assert n.digits == raw
    assert n.tail() is None  # never matched against clients


def test_extension_length_is_configurable() -> None:
    assert normalize("1234", "RU", max_extension_digits=3).kind is NumberKind.INVALID


def test_garbage_is_invalid_not_an_error() -> None:
    assert normalize("call me", "RU").kind is NumberKind.INVALID
    assert normalize("+12", "RU").kind is NumberKind.INVALID


def test_other_region_national_form() -> None:
    assert normalize("030 123456", "DE").e164 == "+4930123456"
    assert normalize("+4930123456", "RU").e164 == "+4930123456"


def test_unknown_region_falls_back_to_digits() -> None:
    n = normalize("5550199887766", "RU")
    assert n.kind is NumberKind.EXTERNAL
    assert n.e164 is None
    assert n.tail(10) == "0199887766"


def test_display() -> None:
    assert display(normalize("+79161234567", "RU"), "RU") == "8 (916) 123-45-67"
    assert display(normalize("+4930123456", "RU"), "RU") == "+49 30 123456"
    assert display(normalize("anonymous", "RU"), "RU") == "anonymous"


# -- properties ---------------------------------------------------------------------------

ru_mobile = st.integers(min_value=9_000_000_000, max_value=9_999_999_999).map(str).filter(
    # some 9xx ranges are unassigned, and phonenumbers rightly calls them invalid
    lambda ten: phonenumbers.is_valid_number(phonenumbers.parse("+7" + ten)))


def _forms(ten: str) -> list[str]:
    return [f"+7{ten}", f"8{ten}", ten, f"007{ten}",
            f"+7 ({ten[:3]}) {ten[3:6]}-{ten[6:8]}-{ten[8:]}", f"8 {ten[:3]} {ten[3:]}"]


@given(ru_mobile)
def test_all_forms_of_a_mobile_number_agree(ten: str) -> None:
    results = {normalize(f, "RU").e164 for f in _forms(ten)}
    assert results == {f"+7{ten}"}


@given(ru_mobile, st.sampled_from(range(7, 11)))
def test_tail_is_a_suffix_and_never_shorter_than_minimum(ten: str, n: int) -> None:
    number = normalize(f"8{ten}", "RU")
    tail = number.tail(n)
    assert tail is not None
    assert len(tail) == n >= MIN_MATCH_DIGITS
    assert number.digits.endswith(tail)


@given(st.text(max_size=30))
def test_normalize_never_raises_and_short_numbers_never_match(text: str) -> None:
    n = normalize(text, "RU")
    assert n.kind in set(NumberKind)
    if n.kind is not NumberKind.EXTERNAL:
        assert n.tail() is None
    else:
        assert len(n.digits) >= MIN_MATCH_DIGITS


@given(st.text(alphabet="0123456789", min_size=1, max_size=6))
def test_short_digit_strings_are_extensions_or_invalid(digits: str) -> None:
    assert normalize(digits, "RU").kind in {NumberKind.EXTENSION}


# -- the lookup fast path agrees with phonenumbers ----------------------------------------


_REGIONS = ["RU", "DE", "US", "GB", "UA", "IT", "FR", "KZ", "BY", "IN", "BR", "PL"]


@st.composite
def valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE,
                                 phonenumbers.PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    nsn = str(example.national_number)
    tail = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    number = phonenumbers.parse(f"+{example.country_code}{nsn[:-4]}{tail}")
    return number


@given(valid_numbers(), st.sampled_from(_REGIONS), st.sampled_from(range(4)))
def test_quick_e164_agrees_with_phonenumbers_on_valid_numbers(
    number: phonenumbers.PhoneNumber, context: str, style: int
) -> None:
    if style < 3:
        text = phonenumbers.format_number(number, style)
    else:
        text = phonenumbers.format_out_of_country_calling_number(number, context)
    full = normalize(text, context)
    quick = quick_e164(text, context)
    if full.e164 is not None and quick is not None:
        assert quick == full.e164, (text, context)


def test_quick_e164_shapes() -> None:
    assert quick_e164("+7 (916) 123-45-67", "RU") == "+79161234567"
    assert quick_e164("89161234567", "RU") == "+79161234567"
    assert quick_e164("0079161234567", "RU") == "+79161234567"
    assert quick_e164("9161234567", "RU") == "+79161234567"
    assert quick_e164("Ivan", "RU") is None
    assert quick_e164("80294918338", "BY") is None  # pattern prefixes go to phonenumbers


# The fast path may answer only where phonenumbers gives the same key, or where phonenumbers
# finds no valid number and the fast key is no canonical valid number either (so it can never
# hit a stored, validated number). Anything else must be left to normalize().

_OFFICES = ["RU", "DE", "US", "GB"]


def _canonical_valid(key: str) -> bool:
    try:
        parsed = phonenumbers.parse(key, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed) and phonenumbers.format_number(
        parsed, phonenumbers.PhoneNumberFormat.E164) == key


def _agrees(text: str, region: str) -> None:
    quick = quick_e164(text, region)
    if quick is None:
        return
    full = normalize(text, region).e164
    assert quick == full or (full is None and not _canonical_valid(quick)), (text, region,
                                                                            quick, full)


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    """A valid number as people and PBXs write it, including the forms that trip prefixes:
    ``+49 (0)30 …``, ``0049 030 …``, the country code without ``+``, bare digits."""
    number = draw(valid_numbers())
    cc, nsn = str(number.country_code), str(number.national_number)
    region = phonenumbers.region_code_for_country_code(number.country_code)
    trunk = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or ""
    forms = [
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        phonenumbers.format_out_of_country_calling_number(number, draw(st.sampled_from(
            _OFFICES))),
        f"+{cc} ({trunk}){nsn}", f"00{cc}{trunk}{nsn}", f"{cc}{nsn}", f"{cc} {nsn}", nsn,
        f"{trunk}{nsn}", f"+{cc}{trunk}{nsn}",
    ]
    return draw(st.sampled_from(forms))


@given(written_numbers(), st.sampled_from(_OFFICES))
def test_quick_e164_agrees_with_phonenumbers_on_written_numbers(text: str, region: str
                                                                ) -> None:
    _agrees(text, region)


@given(st.text(alphabet="0123456789 +()-.", min_size=1, max_size=20), st.sampled_from(_OFFICES))
def test_quick_e164_agrees_with_phonenumbers_on_random_strings(text: str, region: str) -> None:
    _agrees(text, region)


def test_quick_e164_leaves_a_national_prefix_after_the_country_code_to_phonenumbers() -> None:
    for text in ("+49 (0)30 123456", "0049030123456", "+49030123456"):
        assert quick_e164(text, "DE") is None
        assert normalize(text, "DE").e164 == "+4930123456"
    assert quick_e164("49705565", "DE") is None  # "49": the country code, or national digits?


# -- quick_key: the matcher's whole fast path, against normalize() -----------------------------


def _key_agrees(text: str, region: str) -> None:
    keyed = quick_key(text, region)
    if keyed is None:
        return
    key, digits = keyed
    full = normalize(text, region)
    if key is not None:
        assert key == quick_e164(text, region) and digits == key[1:]
        _agrees(text, region)
        return
    # "phonenumbers finds no valid number": normalize() must say exactly that, with these digits
    assert (full.kind, full.e164, full.digits) == (NumberKind.EXTERNAL, None, digits), (
        text, region, full)


_ODD_OFFICES = [*_OFFICES, "KZ", "IT", "FR", "IN", "BR", "PL", "UA"]


@settings(max_examples=1000)
@given(st.text(alphabet="0123456789 ()-.", min_size=7, max_size=20),
       st.sampled_from(_ODD_OFFICES))
def test_quick_key_agrees_with_normalize_on_random_digits(text: str, region: str) -> None:
    _key_agrees(text, region)


@settings(max_examples=500)
@given(written_numbers(), st.sampled_from(_ODD_OFFICES),
       st.text(alphabet="0123456789", min_size=1, max_size=4))
def test_quick_key_agrees_with_normalize_on_prefixed_numbers(text: str, region: str,
                                                             prefix: str) -> None:
    # a carrier's or PBX's own digits before a real number: the shape the shortcut is for
    _key_agrees(prefix + text.lstrip("+"), region)
    _key_agrees(text, region)


def test_quick_key_shapes() -> None:
    assert quick_key("89161234567", "RU") == ("+79161234567", "79161234567")
    assert quick_key("99 916 123 45 67", "RU") == (None, "999161234567")
    assert quick_key("8 10 49 30 1234567", "RU") == ("+49301234567", "49301234567")
    assert quick_key("810 999 161 234 567", "RU") is None  # a prefix it would strip: parse it
    assert quick_key("79161234567123", "RU") is None  # country code first: parse it
    assert quick_key("+999161234567", "RU") is None
    assert quick_key("Ivan 99916", "RU") is None
    assert quick_key("123", "RU") is None


# Shapes found by fuzzing quick_key against normalize() over every region phonenumbers knows:
# each answered a key or a "no valid number" verdict that normalize() contradicts.
_FOUND_BY_FUZZING = [
    ("٨٩١٦١٢٣٤٥٦٧", "RU"),  # Arabic-Indic digits: str.isdigit() says yes, phonenumbers reads 8916…
    ("８９１６１２３４５６７", "RU"),  # full-width digits, the same
    ("+٧٩١٦١٢٣٤٥٦٧", "RU"),
    ("٩١٦١٢٣٤٥٦٧", "RU"),
    ("43029476316090", "AT"),  # the country code, then a national prefix phonenumbers strips
    ("3580412345678", "FI"),
    ("2430991234567", "CD"),
    ("008554922375578", "KH"),  # international prefix "00[14-9]": 008, then +55…
    ("006524261234567", "SG"),  # "0[0-3]\d": 006, then +52…
    ("00664900123456", "TH"),
    ("01997123456", "IL"),  # "0(?:0|1[2-9])": 019 is an international prefix, then +971…
    ("003114020", "NL"),  # too short for quick_e164's "00" branch; normalize() reads +31 14020
    ("99916123456\n", "RU"),  # "$" matches before a final newline: the key kept it
    ("916123456\n", "RU"),
]


@pytest.mark.parametrize(("text", "region"), _FOUND_BY_FUZZING)
def test_quick_key_agrees_with_normalize_where_fuzzing_found_it_did_not(text: str,
                                                                       region: str) -> None:
    _key_agrees(text, region)
    quick = quick_e164(text, region)
    full = normalize(text, region).e164
    # a key must be phonenumbers' own E.164, or no valid number where phonenumbers finds none
    assert quick is None or quick == full or (full is None and not _canonical_valid(quick)), (
        quick, full)


_EVERY_REGION = sorted(phonenumbers.SUPPORTED_REGIONS)


@settings(max_examples=1500)
@given(st.text(alphabet="0123456789", min_size=7, max_size=16), st.sampled_from(_EVERY_REGION))
def test_quick_key_agrees_with_normalize_in_every_region(text: str, region: str) -> None:
    _key_agrees(text, region)


@settings(max_examples=1500)
@given(st.sampled_from(_EVERY_REGION), st.text(alphabet="0123456789", max_size=3),
       st.sampled_from(["", "cc", "00cc"]), st.data())
def test_quick_key_agrees_with_normalize_on_example_numbers_of_every_region(
        region: str, prefix: str, lead: str, data: st.DataObject) -> None:
    examples = [phonenumbers.national_significant_number(n) for t in range(11)
                if (n := phonenumbers.example_number_for_type(region, t)) is not None]
    if not examples:
        return
    nsn = data.draw(st.sampled_from(examples))
    cc = str(phonenumbers.country_code_for_region(region))
    text = lead.replace("cc", cc) + prefix + nsn
    _key_agrees(text, region)
    _key_agrees(text[:-1], region)

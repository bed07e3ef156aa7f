"""Click-to-call dial formats and the ring-first channel (pbx/dialing.py)."""

from __future__ import annotations

import pytest

from callcenter.errors import CallActionFailed
from pbx.dialing import dial_string, dialable, ring_first_channel


@pytest.mark.parametrize(("typed", "fmt", "region", "prefix", "dialled"), [
    ("89031234567", "as_entered", "RU", "", "89031234567"),
    ("8 903 123-45-67", "as_entered", "RU", "9", "989031234567"),
    ("89031234567", "e164", "RU", "", "+79031234567"),
    ("+7 (903) 123-45-67", "national", "RU", "", "89031234567"),
    ("+7 (903) 123-45-67", "national", "RU", "9", "989031234567"),
    ("+74951110000", "national", "RU", "", "84951110000"),
    ("89031234567", "international", "RU", "", "0079031234567"),
    ("89031234567", "international", "RU", "9", "90079031234567"),
    ("+49 30 123456", "national", "RU", "", "004930123456"),  # abroad: international form
    ("+49 (0)30 123456", "national", "DE", "", "030123456"),
    ("0049030123456", "national", "DE", "0", "0030123456"),
    ("+4930123456", "international", "DE", "", "004930123456"),
    ("112", "e164", "RU", "", "112"),  # a service number is no E.164 number: as typed
    ("101", "national", "RU", "9", "9101"),
])
def test_dial_formats(typed: str, fmt: str, region: str, prefix: str, dialled: str) -> None:
    assert dial_string(typed, fmt, region, prefix=prefix) == dialled


def test_the_international_prefix_is_the_lines() -> None:
    assert dial_string("89031234567", "international", "RU",
                       international_prefix="810") == "81079031234567"


@pytest.mark.parametrize("typed", [
    "", "abc", "+7+916", "1" * 33, "1" * 65, "1\r\nAction: Hangup", "+7 916 123-45-67 call me",
    "8916l234567", "*100#", "89161234567 доб. 12 или 13", "доб. 12",
])
def test_what_cannot_be_dialled_is_refused(typed: str) -> None:
    for fmt in ("as_entered", "national"):
        with pytest.raises(CallActionFailed):
            dial_string(typed, fmt, "RU")


def test_a_letter_is_named_in_the_refusal() -> None:
    with pytest.raises(CallActionFailed, match="'l'"):
        dialable("8916l234567")


@pytest.mark.parametrize(("typed", "dialled"), [
    ("+7 916 123-45-67 доб. 12", "+79161234567"),
    ("+7 916 123-45-67, ДОБ 12", "+79161234567"),
    ("+7 916 123-45-67 доп.12", "+79161234567"),
    ("+1 (212) 555-0100 ext. 7", "+12125550100"),
    ("+1 212 555 0100 Extension 7", "+12125550100"),
    ("+1.212.555.0100x7", "+12125550100"),
    ("+1 212 555 0100 #7", "+12125550100"),
    ("8\u00a0916\u00a0123\u201345\u201367", "89161234567"),  # pasted: NBSP, en dashes
    ("8 (916) 123/45/67", "89161234567"),
])
def test_separators_and_an_extension_are_not_dialled(typed: str, dialled: str) -> None:
    assert dialable(typed) == dialled


def test_ring_first_channel() -> None:
    assert ring_first_channel("", "PJSIP", "102") == "PJSIP/102"
    assert ring_first_channel("", "SIP", "102") == "SIP/102"
    assert ring_first_channel("Local/{ext}@from-internal", "PJSIP", "102") == (
        "Local/102@from-internal")

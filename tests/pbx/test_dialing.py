"""Click-to-call dial formats and the ring-first channel (pbx/dialing.py)."""

from __future__ import annotations

import pytest

from callcenter.errors import CallActionFailed
from pbx.dialing import dial_string, ring_first_channel


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


@pytest.mark.parametrize("typed", ["", "abc", "+7+916", "1" * 33, "1\r\nAction: Hangup"])
def test_what_cannot_be_dialled_is_refused(typed: str) -> None:
    if "\r\n" in typed:  # only the digits survive: no header can be injected
        assert dial_string(typed, "as_entered", "RU") == "1"
        return
    with pytest.raises(CallActionFailed):
        dial_string(typed, "national", "RU")


def test_ring_first_channel() -> None:
    assert ring_first_channel("", "PJSIP", "102") == "PJSIP/102"
    assert ring_first_channel("", "SIP", "102") == "SIP/102"
    assert ring_first_channel("Local/{ext}@from-internal", "PJSIP", "102") == (
        "Local/102@from-internal")

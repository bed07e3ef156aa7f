"""Caller ID, dialled number and CANCEL reasons from the headers of real PBXs' INVITEs."""

from __future__ import annotations

import pytest

from sip.identity import (
    MAX_VALUE,
    CancelOutcome,
    caller_id,
    cancel_outcome,
    dialled,
    parse_name_addr,
    uri_user,
)


class H:
    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = pairs

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k.lower() == name.lower()]


def test_pai_wins_over_rpid_and_from() -> None:
    h = H(("From", '"Front desk" <sip:100@pbx>;tag=a'),
          ("Remote-Party-ID", '"RPID" <sip:+79160000000@pbx>;party=calling'),
          ("P-Asserted-Identity", '"ООО Ромашка" <sip:+79161234567@carrier;user=phone>'))
    cid = caller_id(h)
    assert (cid.number, cid.name, cid.withheld, cid.source) == (
        "+79161234567", "ООО Ромашка", False, "P-Asserted-Identity")


def test_pai_with_a_tel_uri_and_rpid_fallback_and_from_fallback() -> None:
    assert caller_id(H(("P-Asserted-Identity", "<tel:+74951112233>"))).number == "+74951112233"
    cid = caller_id(H(("From", "<sip:100@pbx>;tag=1"),
                      ("Remote-Party-ID", "<sip:89161234567@pbx>;privacy=off")))
    assert (cid.number, cid.source) == ("89161234567", "Remote-Party-ID")
    cid = caller_id(H(("From", '"Ivan \\"Big\\" P" <sip:89161234567@pbx>;tag=1')))
    assert (cid.number, cid.name, cid.source) == ("89161234567", 'Ivan "Big" P', "From")


@pytest.mark.parametrize("headers", [
    (("From", "<sip:89161234567@pbx>;tag=1"), ("Privacy", "id")),
    (("P-Asserted-Identity", "<sip:+79161234567@c>"), ("Privacy", "header; id")),
    (("From", '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1'),),
    (("Remote-Party-ID", "<sip:89161234567@pbx>;privacy=full"),),
])
def test_withheld(headers) -> None:
    cid = caller_id(H(*headers))
    assert cid.withheld
    assert cid.name == ""


def test_strangers_text_is_bounded_and_has_no_controls() -> None:
    cid = caller_id(H(("From", '"' + "A\r\nX" * 500 + '" <sip:1%0d%0a2@pbx>')))
    assert len(cid.name) <= MAX_VALUE and "\r" not in cid.name and "\n" not in cid.name
    assert cid.number == "12"


def test_garbage_never_raises() -> None:
    for value in ['"unterminated', "<sip:101@x", "<>", "sip:", "mailto:a@b", ",,,", '"a" b']:
        parse_name_addr(value)
        caller_id(H(("From", value)))
    assert uri_user("http://x") == ""


def test_dialled_number_and_forwarding() -> None:
    assert dialled(H(("To", "<sip:+74951234567@office>")), "sip:101@10.0.0.5").number == \
        "+74951234567"
    assert dialled(H(("To", "<sip:office>")), "sip:101@10.0.0.5:5070").number == "101"
    d = dialled(H(("To", "<sip:201@pbx>"),
                  ("Diversion", "<sip:200@pbx>;reason=no-answer, <sip:74951234567@pbx>"
                                ";reason=unconditional")), "sip:201@me")
    assert (d.number, d.original) == ("201", "74951234567")
    d = dialled(H(("To", "<sip:201@pbx>"),
                  ("History-Info", "<sip:74951234567@pbx>;index=1, <sip:201@pbx>;index=1.1")),
                "sip:201@me")
    assert d.original == "74951234567"


@pytest.mark.parametrize(("reason", "outcome"), [
    (None, CancelOutcome.CALLER_GAVE_UP),
    ('SIP;cause=200;text="Call completed elsewhere"', CancelOutcome.ANSWERED_ELSEWHERE),
    ("Q.850;cause=16;text=\"Normal call clearing\"", CancelOutcome.CALLER_GAVE_UP),
    ("SIP;cause=487", CancelOutcome.CALLER_GAVE_UP),
    ('Q.850;cause=16, SIP;cause=200;text="elsewhere"', CancelOutcome.ANSWERED_ELSEWHERE),
    # Q.850 26 "non-selected user clearing": the ISDN words for answered at another phone
    ('Q.850;cause=26;text="ANSWERED_ELSEWHERE"', CancelOutcome.ANSWERED_ELSEWHERE),
    ("q.850 ; cause=26", CancelOutcome.ANSWERED_ELSEWHERE),
])
def test_cancel_reason(reason, outcome) -> None:
    headers = H(("Reason", reason)) if reason else H()
    assert cancel_outcome(headers) is outcome

"""Dialog state on both sides and the requests built inside a dialog."""

from __future__ import annotations

import pytest

from sip.dialog import Dialog, DialogError
from sip.message import Request, Response, parse_message


def invite() -> Request:
    return Request(
        "INVITE",
        "sip:bob@biloxi.example",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"),
            ("From", '"Alice" <sip:alice@atlanta.example>;tag=a1'),
            ("To", "<sip:bob@biloxi.example>"),
            ("Call-ID", "c1"),
            ("CSeq", "7 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1:5070>"),
            ("Record-Route", "<sip:p2.example;lr>, <sip:p1.example;lr>"),
        ],
    )


def ok(req: Request, status: int = 200) -> Response:
    return Response.for_request(
        req, status, to_tag="b1", headers=[("Contact", "<sip:bob@10.0.0.2:5062>")]
    )


def test_uac_dialog_routes_in_reverse_and_counts_cseq() -> None:
    req = invite()
    d = Dialog.as_uac(req, ok(req))
    assert d.id == ("c1", "a1", "b1") and not d.early
    bye = d.new_request("BYE")
    assert str(bye.uri) == "sip:bob@10.0.0.2:5062"
    assert bye.headers.get_all("Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert bye.cseq.seq == 8 and bye.from_.tag == "a1" and bye.to.tag == "b1"
    assert bye.from_.display == "Alice"
    refer = d.new_request("REFER", [("Refer-To", "<sip:100@x>")])
    assert refer.cseq.seq == 9 and refer.headers.get("Refer-To") == "<sip:100@x>"
    ack = d.ack(ok(req))
    assert ack.method == "ACK" and ack.cseq.seq == 7 and ack.cseq.method == "ACK"
    bye.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2")
    parse_message(bye.to_bytes())
    assert d.matches(ok(req), incoming_request=False)


def test_uas_dialog_checks_remote_cseq_and_refreshes_the_target() -> None:
    req = invite()
    d = Dialog.as_uas(req, "b1")
    assert d.route_set[0].uri.host == "p2.example"  # UAS keeps Record-Route order
    assert str(d.remote_target) == "sip:alice@127.0.0.1:5070"
    notify = d.new_request("NOTIFY")
    assert notify.from_.tag == "b1" and notify.to.tag == "a1" and notify.cseq.seq == 1
    again = Request(
        "NOTIFY",
        "sip:bob@x",
        [
            ("From", "<sip:alice@atlanta.example>;tag=a1"),
            ("To", "<sip:bob@biloxi.example>;tag=b1"),
            ("Call-ID", "c1"),
            ("CSeq", "8 NOTIFY"),
            ("Contact", "<sip:alice@192.0.2.9>"),
        ],
    )
    assert d.matches(again)
    d.receive_request(again)
    assert d.remote_seq == 8 and d.remote_target.host == "192.0.2.9"
    with pytest.raises(DialogError):
        d.receive_request(again)
    resp = d.respond(again, 200)
    assert resp.to.tag == "b1" and resp.cseq.method == "NOTIFY"


def test_early_dialog_is_confirmed_by_the_2xx() -> None:
    req = invite()
    d = Dialog.as_uac(req, ok(req, 180))
    assert d.early
    d.receive_response(ok(req))
    assert not d.early


def test_strict_router_becomes_the_request_uri() -> None:
    req = invite()
    req.headers.set("Record-Route", "<sip:strict.example>")
    d = Dialog.as_uac(req, ok(req))
    bye = d.new_request("BYE")
    assert str(bye.uri) == "sip:strict.example"
    assert bye.headers.get_all("Route") == ["<sip:bob@10.0.0.2:5062>"]


def test_a_dialog_needs_tags_and_contact() -> None:
    req = invite()
    no_tag = Response.for_request(req, 200, headers=[("Contact", "<sip:b@h>")])
    with pytest.raises(DialogError):
        Dialog.as_uac(req, no_tag)
    with pytest.raises(DialogError):
        Dialog.as_uac(req, Response.for_request(req, 200, to_tag="x"))
    with pytest.raises(ValueError):
        Dialog.as_uac(req, ok(req)).new_request("ACK")

"""The SIP message model: parsing, limits, clear errors, printing (sans-I/O)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.address import CSeq, NameAddr, SipUri, Via
from sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE,
    Headers,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    new_branch,
    parse_message,
)

INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP 10.0.0.1:5061;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: Bob <sip:bob@biloxi.com>\r\n"
    b'f: "Alice, A" <sip:alice@atlanta.com>;tag=1928301774\r\n'
    b"i: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"m: <sip:alice@pc33.atlanta.com;transport=tcp>\r\n"
    b"Supported:\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_parses_a_request_with_compact_headers_and_an_empty_header() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:bob@biloxi.com"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.from_.display == "Alice, A"
    assert msg.from_.tag == "1928301774"
    assert msg.to.tag is None
    assert [v.transport for v in msg.vias] == ["UDP", "TCP"]
    assert msg.branch == "z9hG4bK776asdhds"
    assert msg.vias[1].port == 5061 and msg.vias[1].params == {"rport": None}
    assert msg.contacts[0].uri.transport == "TCP"
    assert msg.headers.get("Supported") == ""
    assert msg.headers.get("content-type") == "application/sdp"
    assert msg.body == b"v=0\n"


def test_parses_a_response() -> None:
    data = (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx;rport=5070\r\n"
        b"From: <sip:u@h>;tag=a\r\nTo: <sip:u@h>;tag=b\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n"
        b'WWW-Authenticate: Digest realm="h", nonce="n, with comma", qop="auth"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (401, "Unauthorized")
    assert msg.to.tag == "b"
    assert (
        msg.headers.get("www-authenticate") == 'Digest realm="h", nonce="n, with comma", qop="auth"'
    )


def test_folded_header_lines_are_joined() -> None:
    data = INVITE.replace(
        b"Max-Forwards: 70\r\n", b"Subject: I know\r\n you\r\nMax-Forwards: 70\r\n"
    )
    assert parse_message(data).headers.get("Subject") == "I know you"


def test_extra_bytes_after_content_length_are_dropped_on_udp() -> None:
    assert parse_message(INVITE + b"junk").body == b"v=0\n"


def test_missing_content_length_on_udp_takes_the_rest() -> None:
    data = INVITE.replace(b"l: 4\r\n", b"")
    assert parse_message(data).body == b"v=0\n"
    with pytest.raises(SipParseError, match="missing Content-Length"):
        parse_message(data, stream=True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no end of header section"),
        (b"\x00\xff garbage\r\n\r\n", "bad request line"),
        (b"HELLO\r\n\r\n", "bad request line"),
        (b"SIP/2.0 99 Odd\r\n\r\n", "bad status code"),
        (b"INV/ITE sip:a@b SIP/2.0\r\n\r\n", "bad method"),
        (b"INVITE http://x SIP/2.0\r\n\r\n", "bad Request-URI"),
        (INVITE.replace(b"l: 4", b"l: 40"), "datagram cut short"),
        (INVITE.replace(b"l: 4", b"l: -1"), "bad Content-Length"),
        (INVITE.replace(b"l: 4", b"l: 9999999"), "bad Content-Length"),
        (INVITE.replace(b"i: a84b4c76e66710@pc33.atlanta.com\r\n", b""), "missing Call-ID"),
        (INVITE.replace(b"CSeq: 314159 INVITE\r\n", b""), "missing CSeq"),
        (INVITE.replace(b"t: Bob <sip:bob@biloxi.com>\r\n", b""), "missing To"),
        (INVITE.replace(b'f: "Alice', b'x-f: "Alice'), "missing From"),
        (INVITE.split(b"\r\n", 1)[0] + b"\r\nCall-ID: x\r\n\r\n", "missing Via"),
        (INVITE.replace(b"314159 INVITE", b"314159 BYE"), "CSeq method differs"),
        (INVITE.replace(b"314159 INVITE", b"9999999999 INVITE"), "bad CSeq"),
        (INVITE.replace(b"SIP/2.0/UDP pc33", b"SIP/3.0/UDP pc33"), "bad Via"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "malformed header line"),
        (INVITE[:60], "no end of header section"),
    ],
)
def test_garbage_gives_a_clear_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        parse_message(data)


def test_a_request_missing_a_header_carries_what_was_read() -> None:
    data = INVITE.replace(b"CSeq: 314159 INVITE\r\n", b"")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert isinstance(info.value.partial, Request)
    assert info.value.partial.headers.get("Call-ID") == "a84b4c76e66710@pc33.atlanta.com"


def test_limits() -> None:
    with pytest.raises(SipParseError, match="too large"):
        parse_message(INVITE + b"x" * MAX_MESSAGE)
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * (MAX_HEADERS + 1))
    with pytest.raises(SipParseError, match="too many header fields"):
        parse_message(many)
    long = INVITE.replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * 9000)
    with pytest.raises(SipParseError, match="header line too long"):
        parse_message(long)
    folds = INVITE.replace(b"Max-Forwards: 70", b"Subject: x" + b"\r\n a" * 5000)
    with pytest.raises(SipParseError, match="header line too long"):
        parse_message(folds)


def test_print_and_parse_round_trip() -> None:
    msg = parse_message(INVITE)
    again = parse_message(msg.to_bytes())
    assert again.to_bytes() == msg.to_bytes()
    text = msg.to_bytes().decode()
    assert "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n" in text  # long names on output
    assert text.endswith("Content-Length: 4\r\n\r\nv=0\n")


def test_response_for_request_copies_the_dialog_headers_and_adds_the_tag() -> None:
    req = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", b"Record-Route: <sip:p1;lr>\r\n"))
    assert isinstance(req, Request)
    resp = Response.for_request(req, 180, to_tag="t1")
    back = parse_message(resp.to_bytes())
    assert isinstance(back, Response)
    assert back.headers.get_all("Via") == req.headers.get_all("Via")
    assert back.headers.get("To") == "Bob <sip:bob@biloxi.com>;tag=t1"
    assert back.headers.get("Record-Route") == "<sip:p1;lr>"
    assert back.cseq == req.cseq and back.call_id == req.call_id
    assert Response.for_request(req, 100, to_tag="t1").to.tag is None
    assert "Record-Route" not in Response.for_request(req, 486).headers


def test_build_a_request_from_scratch() -> None:
    req = Request(
        "REGISTER",
        "sip:example.com",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={new_branch()};rport"),
            ("From", "<sip:100@example.com>;tag=x"),
            ("To", "<sip:100@example.com>"),
            ("Call-ID", "abc"),
            ("CSeq", "1 REGISTER"),
            ("Contact", "<sip:100@127.0.0.1:5070>;expires=60"),
        ],
    )
    back = parse_message(req.to_bytes(), stream=True)
    assert isinstance(back, Request) and back.method == "REGISTER"
    assert back.contacts[0].params == {"expires": "60"}
    assert back.branch is not None and back.branch.startswith("z9hG4bK")


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    h = Headers([("Route", "<sip:a;lr>"), ("route", "<sip:b;lr>, <sip:c;lr>"), ("X-Y", "1")])
    assert h.get_all("ROUTE") == ["<sip:a;lr>", "<sip:b;lr>, <sip:c;lr>"]
    assert h.get_list("Route") == ["<sip:a;lr>", "<sip:b;lr>", "<sip:c;lr>"]
    h.set("route", "<sip:z>")
    assert h.get_all("Route") == ["<sip:z>"]
    h.remove("x-y")
    assert "X-Y" not in h and len(h) == 1


def test_uri_and_name_addr_forms() -> None:
    uri = SipUri.parse("sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "pw", "[2001:db8::1]", 5061)  # fmt: skip
    assert uri.params == {"transport": "tls", "lr": None} and uri.headers == "subject=x"
    assert str(uri) == "sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x"
    tel = SipUri.parse("tel:+4930123;phone-context=example.com")
    assert tel.user == "+4930123" and str(tel) == "tel:+4930123;phone-context=example.com"
    bare = NameAddr.parse("sip:bob@h;tag=88")  # params of an addr-spec are the header's
    assert bare.tag == "88" and bare.uri.params == {}
    quoted = NameAddr.parse(r'"A \"B\" <C>" <sip:x@y;lr>;tag=1')
    assert quoted.display == 'A "B" <C>' and quoted.uri.params == {"lr": None}
    assert NameAddr.parse(str(quoted)) == quoted
    assert NameAddr.parse("*").wildcard
    via = Via.parse("SIP / 2.0 / tcp host.example:5060 ;branch=z9hG4bKa ;received=1.2.3.4")
    assert via.transport == "TCP" and via.params["received"] == "1.2.3.4"
    for bad in ("sip:", "sip:@h", "sip:h:99999", "mailto:x@y", '"open <sip:a@b>'):
        with pytest.raises(SipParseError):
            NameAddr.parse(bad)


def test_stream_framer_cuts_messages_split_anyhow() -> None:
    one = parse_message(INVITE).to_bytes()
    data = b"\r\n\r\n" + one + b"\r\n" + one
    for step in (1, 7, len(data)):
        framer = StreamFramer()
        out: list[bytes] = []
        for i in range(0, len(data), step):
            out += framer.feed(data[i : i + step])
        assert out == [one, one]
        assert framer.pings == 1 and framer.buffered == 0


def test_stream_framer_errors_are_fatal_and_bounded() -> None:
    with pytest.raises(SipParseError, match="missing Content-Length"):
        StreamFramer().feed(INVITE.replace(b"l: 4\r\n", b""))
    with pytest.raises(SipParseError, match="conflicting Content-Length"):
        StreamFramer().feed(INVITE.replace(b"l: 4\r\n", b"l: 4\r\nContent-Length: 5\r\n"))
    with pytest.raises(SipParseError, match="header section too large"):
        StreamFramer().feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * MAX_MESSAGE)
    with pytest.raises(SipParseError, match="message too large"):
        StreamFramer().feed(INVITE.replace(b"l: 4", b"l: 70000"))


def test_stream_framer_frames_a_message_parse_message_then_rejects() -> None:
    bad = INVITE.replace(b"CSeq: 314159 INVITE\r\n", b"")
    framer = StreamFramer()
    (raw,) = framer.feed(bad)
    with pytest.raises(SipParseError, match="missing CSeq"):
        parse_message(raw, stream=True)


_LINES = st.sampled_from(INVITE.split(b"\r\n"))


@given(st.lists(st.one_of(_LINES, st.binary(max_size=40)), max_size=20), st.binary(max_size=30))
def test_fuzz_parser_raises_only_sip_parse_error(lines: list[bytes], tail: bytes) -> None:
    data = b"\r\n".join(lines) + tail
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    assert len(msg.to_bytes()) <= 2 * MAX_MESSAGE
    parse_message(msg.to_bytes())  # what we print, we read back


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_fuzz_stream_framer_is_bounded(data: bytes, step: int) -> None:
    framer = StreamFramer(max_message=256)
    try:
        for i in range(0, len(data), step):
            for raw in framer.feed(data[i : i + step]):
                assert len(raw) <= 256
                with contextlib.suppress(SipParseError):
                    parse_message(raw, stream=True)
    except SipParseError:
        return
    assert framer.buffered <= 256 + step


def test_a_line_break_in_a_built_header_or_uri_is_refused_not_printed() -> None:
    number = "100\r\nContact: <sip:evil@attacker>"  # e.g. a number typed into the CRM
    ok = [("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"), ("From", "<sip:a@h>;tag=1"),
          ("To", "<sip:b@h>"), ("Call-ID", "c"), ("CSeq", "1 REFER")]  # fmt: skip
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Request("REFER", "sip:b@h", [*ok, ("Refer-To", f"<sip:{number}@h>")]).to_bytes()
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Request("INVITE", SipUri("sip", number, "h"), ok).to_bytes()
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Response(200, "OK\nX: y", ok).to_bytes()


def test_a_lone_cr_or_nul_in_the_head_is_a_parse_error() -> None:
    for bad in (b"X-Note: a\rContact: <sip:evil@h>\r\n", b"X-Note: a\x00b\r\n"):
        data = INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + bad)
        with pytest.raises(SipParseError, match="CR or NUL"):
            parse_message(data)


def test_a_password_in_a_uri_stays_out_of_its_repr() -> None:
    uri = SipUri.parse("sip:100:s3cret@pbx.example")
    assert uri.password == "s3cret" and str(uri) == "sip:100:s3cret@pbx.example"
    assert "s3cret" not in repr(uri) and "s3cret" not in repr(NameAddr(uri))

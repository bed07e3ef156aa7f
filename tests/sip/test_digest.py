"""Digest answers: the RFC vectors, challenge parsing, and the wrong-password rule."""

from __future__ import annotations

import re

import pytest

from sip.address import SipParseError
from sip.digest import (
    Challenge,
    DigestClient,
    DigestError,
    authorization_value,
    challenges,
    digest_response,
    parse_challenge,
)
from sip.message import Request, Response


def test_rfc2617_md5_qop_auth_vector() -> None:
    ch = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    got = digest_response(
        ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", cnonce="0a4f113b", nc=1
    )
    assert got == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    ch = Challenge(
        realm="http-auth@example.org",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        algorithm=algorithm,
        qop=("auth",),
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    )
    got = digest_response(
        ch,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        nc=1,
    )
    assert got == expected


def test_kamailio_accepted_vector() -> None:
    # A REGISTER that kamailio 5.6.3 (auth module, pv_www_authenticate, qop=auth) answered
    # 200 OK, recorded from tests/sip/kamailio.py: user 100, password secret100.
    ch = parse_challenge(
        'Digest realm="127.0.0.1", nonce="aw8hqWsPIH0VW7EP2q3LU1B5OoQ5vREc", qop="auth"'
    )
    got = digest_response(
        ch,
        "100",
        "secret100",
        "REGISTER",
        "sip:127.0.0.1:41003",
        cnonce="183330e0b1fe33aa",
        nc=1,
    )
    assert got == "32f41dcb45d894ee50bcef28c25c9b48"


def test_md5_sess_and_no_qop() -> None:
    sess = Challenge(realm="r", nonce="n", algorithm="MD5-SESS", qop=("auth",))
    plain = Challenge(realm="r", nonce="n", algorithm="MD5", qop=("auth",))
    args = ("u", "p", "REGISTER", "sip:r")
    a = digest_response(sess, *args, cnonce="c", nc=1)
    b = digest_response(plain, *args, cnonce="c", nc=1)
    assert a != b and re.fullmatch(r"[0-9a-f]{32}", a)
    legacy = Challenge(realm="r", nonce="n")
    value = authorization_value(legacy, *args, cnonce="c", nc=1)
    assert "qop" not in value and "nc=" not in value and "algorithm=MD5" in value


def test_challenge_parsing_and_choice() -> None:
    resp = Response(401, headers=[
        ("WWW-Authenticate", 'Digest realm="a", nonce="n1", algorithm=MD5, qop="auth"'),
        ("WWW-Authenticate", 'Digest realm="a", nonce="n2", algorithm=SHA-256, qop="auth"'),
        ("WWW-Authenticate", 'Digest realm="a", nonce="n3", algorithm=SHA-512-256'),
        ("WWW-Authenticate", 'Digest realm="a", nonce="n4", qop="auth-int"'),
        ("WWW-Authenticate", "Basic realm=a"),
    ])  # fmt: skip
    assert [c.nonce for c in challenges(resp)] == ["n2", "n1"]
    proxy = Response(
        407, headers=[("Proxy-Authenticate", 'Digest realm="p", nonce="x", stale=TRUE')]
    )
    (ch,) = challenges(proxy)
    assert ch.proxy and ch.stale and ch.qop == ()
    with pytest.raises(DigestError):
        parse_challenge('Digest realm="a"')
    with pytest.raises(SipParseError):
        parse_challenge("Digest " + "a" * 5000)


def _register() -> Request:
    return Request("REGISTER", "sip:example.com", [("CSeq", "1 REGISTER")])


def test_client_adds_the_right_header_and_counts_nc() -> None:
    client = DigestClient("100", "pw")
    www = Response(401, headers=[("WWW-Authenticate", 'Digest realm="e", nonce="n", qop="auth"')])
    req = _register()
    assert client.authorize(req, www)
    value = req.headers.get("Authorization") or ""
    assert 'username="100"' in value and "nc=00000001" in value and 'uri="sip:example.com"' in value
    req2 = _register()
    client.authorize(req2, www)
    assert "nc=00000002" in (req2.headers.get("Authorization") or "")
    proxy = Response(407, headers=[("Proxy-Authenticate", 'Digest realm="p", nonce="m"')])
    req3 = _register()
    assert client.authorize(req3, proxy)
    # the registrar's challenge of this attempt is answered again too (RFC 3261 §22.3)
    assert "Proxy-Authorization" in req3.headers
    assert "nc=00000003" in (req3.headers.get("Authorization") or "")
    assert "pw" not in repr(client)
    assert not client.authorize(_register(), Response(401))


def test_a_repeated_challenge_is_a_rejection_unless_stale() -> None:
    client = DigestClient("100", "wrong")
    first = Response(401, headers=[("WWW-Authenticate", 'Digest realm="e", nonce="n1"')])
    assert not client.is_rejection(first)
    client.authorize(_register(), first)
    again = Response(401, headers=[("WWW-Authenticate", 'Digest realm="e", nonce="n2"')])
    stale = Response(
        401, headers=[("WWW-Authenticate", 'Digest realm="e", nonce="n3", stale=true')]
    )
    assert client.is_rejection(again)
    assert not client.is_rejection(stale)
    client.forget()
    assert not client.is_rejection(again)


def test_a_proxy_and_a_registrar_challenge_are_both_answered() -> None:
    client = DigestClient("100", "pw")
    first = _register()
    proxy = Response(407, headers=[("Proxy-Authenticate", 'Digest realm="sbc", nonce="p1"')])
    assert client.authorize(first, proxy)
    second = _register()
    registrar = Response(401, headers=[("WWW-Authenticate", 'Digest realm="pbx", nonce="r1"')])
    assert not client.is_rejection(registrar)
    assert client.authorize(second, registrar)
    assert 'realm="sbc"' in (second.headers.get("Proxy-Authorization") or "")
    assert 'realm="pbx"' in (second.headers.get("Authorization") or "")
    client.forget()
    third = _register()
    assert client.authorize(third, registrar) and "Proxy-Authorization" not in third.headers

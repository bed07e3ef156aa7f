"""The line's digest answers for SUBSCRIBE/INVITE/REFER: each request's challenges are its own."""

from __future__ import annotations

import itertools

from sip.message import Request, Response
from sip.sip_line import SipLine, SipLineConfig

_nonces = itertools.count()


class ChallengingPbx:
    """Answers every request without credentials with a fresh 401, and 200 once answered."""

    def __init__(self) -> None:
        self.sent: list[Request] = []

    async def request(self, req: Request, dest=None) -> Response:
        self.sent.append(req)
        if "Authorization" in req.headers:
            return Response.for_request(req, 200)
        return Response.for_request(req, 401, headers=[(
            "WWW-Authenticate", f'Digest realm="pbx", nonce="n{next(_nonces)}", qop="auth"')])


def _subscribe(seq: int) -> Request:
    return Request("SUBSCRIBE", "sip:101@pbx", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx"), ("From", "<sip:crm@pbx>;tag=a"),
        ("To", "<sip:101@pbx>"), ("Call-ID", "c1"), ("CSeq", f"{seq} SUBSCRIBE")])


async def test_a_second_challenged_request_is_answered_not_taken_for_a_wrong_password() -> None:
    line = SipLine(SipLineConfig(name="office", registrar="pbx", secret="pw"), lambda _e: None)
    pbx = ChallengingPbx()
    line.endpoint = pbx  # type: ignore[assignment]
    _, first = await line._authed(_subscribe)
    # a later request of the same realm gets a fresh challenge: answered again, not refused
    _, second = await line._authed(_subscribe)
    assert (first.status, second.status) == (200, 200)
    assert len(pbx.sent) == 4

"""Registration against peers that are not a registrar: silence, a closed port, odd answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from sip.endpoint import IncomingRequest, SipEndpoint
from sip.message import Response
from sip.registration import Registration, RegProblem, RegState


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    async with SipEndpoint("UDP", t1=0.02) as ep:
        yield ep


@pytest.fixture
def silent_port() -> Iterator[int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


def registration(ep: SipEndpoint, port: int, **kw: object) -> Registration:
    return Registration(
        ep,
        registrar=f"sip:127.0.0.1:{port}",
        user="100",
        password="pw",
        backoff_min=0.01,
        backoff_max=0.05,
        **kw,  # type: ignore[arg-type]
    )


async def test_no_answer_is_unreachable_and_retried_with_backoff(
    endpoint: SipEndpoint, silent_port: int
) -> None:
    reg = registration(endpoint, silent_port)
    await reg.start()
    failures = []
    async with asyncio.timeout(20):
        async for status in reg.changes():
            if status.state is RegState.FAILED:
                failures.append(status)
                if len(failures) == 2:
                    break
    assert failures[0].reason == "registrar unreachable (no answer)"
    assert failures[0].problem is RegProblem.UNREACHABLE and failures[0].retry_in
    assert reg.attempts >= 2
    await reg.stop()
    assert reg.status.state is RegState.STOPPED


async def test_closed_port_is_unreachable_at_once(endpoint: SipEndpoint) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    status = await registration(endpoint, port).register_once()
    assert status.state is RegState.FAILED and "port unreachable" in status.reason


async def test_other_errors_and_retry_after() -> None:
    async with SipEndpoint("UDP") as server, SipEndpoint("UDP") as client:
        answers = [(503, [("Retry-After", "7")]), (404, [])]

        def on_register(incoming: IncomingRequest) -> None:
            status, headers = answers.pop(0)
            incoming.respond(status, headers=headers)

        server.on_request("REGISTER", on_register)
        reg = registration(client, server.local_address[1])
        busy = await reg.register_once()
        assert busy.state is RegState.FAILED and busy.retry_in == 7.0
        assert busy.reason == "registrar answered 503 Service Unavailable"
        missing = await reg.register_once()
        assert missing.problem is RegProblem.REJECTED and missing.status_code == 404


async def test_unanswerable_challenge_is_reported_not_looped() -> None:
    async with SipEndpoint("UDP") as server, SipEndpoint("UDP") as client:
        seen = []

        def on_register(incoming: IncomingRequest) -> None:
            seen.append(incoming.request)
            incoming.respond(
                401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n", qop="auth-int"')]
            )

        server.on_request("REGISTER", on_register)
        status = await registration(client, server.local_address[1]).register_once()
        assert status.state is RegState.REFUSED and len(seen) == 1
        assert status.problem is RegProblem.UNSUPPORTED_AUTH
        assert status.reason == "registrar asks for an authentication we do not support"


async def test_granted_expires_is_read_for_the_contact_sent_behind_nat() -> None:
    async with SipEndpoint("UDP") as server, SipEndpoint("UDP") as client:

        def on_register(incoming: IncomingRequest) -> None:
            req = incoming.request
            sent = req.headers.get("Contact") or ""
            resp = Response.for_request(
                req, 200, to_tag="r", headers=[("Contact", sent.split(";")[0] + ";expires=60")]
            )
            # the registrar saw us behind a NAT: the client learns a public address from this
            via = req.headers.get_list("Via")[0].split(";")[0]
            resp.headers.set("Via", f"{via};branch={req.branch};received=192.0.2.7;rport=4000")
            incoming.send_response(resp)

        server.on_request("REGISTER", on_register)
        status = await registration(client, server.local_address[1]).register_once()
        assert client.public_address == ("192.0.2.7", 4000)
        assert status.state is RegState.REGISTERED and status.expires == 60


async def test_settings_that_cannot_be_sent_are_a_status_not_a_dead_task(
    endpoint: SipEndpoint, silent_port: int
) -> None:
    reg = registration(endpoint, silent_port, display="Reception\r\nContact: *")
    assert (await reg.register_once()).state is RegState.REFUSED
    await reg.start()
    async with asyncio.timeout(10):
        async for status in reg.changes():
            if status.state is RegState.REFUSED:
                break
    assert "CR, LF or NUL" in status.reason and status.problem is RegProblem.REJECTED
    await reg.stop()


async def test_an_unexpected_error_is_a_failure_retried_not_a_dead_task(
    endpoint: SipEndpoint, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = registration(endpoint, silent_port)
    calls = []

    async def broken(expires: int) -> None:
        calls.append(expires)
        raise RuntimeError("a bug")

    monkeypatch.setattr(reg, "_attempt", broken)
    await reg.start()
    failures = []
    async with asyncio.timeout(10):
        async for status in reg.changes():
            if status.state is RegState.FAILED:
                failures.append(status)
                if len(failures) == 2:
                    break
    assert "internal error" in failures[0].reason and len(calls) >= 2
    await reg.stop()

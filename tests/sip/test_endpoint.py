"""SipEndpoint over real loopback sockets: UDP, TCP and TLS, handlers, CANCEL, bad input."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from sip.endpoint import IncomingRequest, SipEndpoint, SipTimeout, SipTransportError
from sip.message import Response, parse_message


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipEndpoint, SipEndpoint]]:
    a = SipEndpoint("UDP", t1=0.02)
    b = SipEndpoint("UDP", t1=0.02)
    async with a, b:
        yield a, b


def options(a: SipEndpoint, b: SipEndpoint, method: str = "OPTIONS"):
    host, port = b.local_address
    return a.new_request(method, f"sip:b@{host}:{port}", "<sip:a@127.0.0.1>")


async def test_options_is_answered_200_without_a_handler(pair) -> None:
    a, b = pair
    resp = await a.request(options(a, b))
    assert resp.status == 200 and "INVITE" in (resp.headers.get("Allow") or "")
    assert resp.to.tag and a.public_address == a.local_address  # rport filled in by b


async def test_handler_answers_and_unknown_method_gets_405(pair) -> None:
    a, b = pair
    seen: list[IncomingRequest] = []

    async def on_notify(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        incoming.respond(200, headers=[("X-Seen", "1")])

    b.on_request("NOTIFY", on_notify)
    resp = await a.request(options(a, b, "NOTIFY"))
    assert resp.status == 200 and resp.headers.get("X-Seen") == "1"
    assert seen[0].request.top_via.params["rport"] == str(a.local_address[1])
    assert (await a.request(options(a, b, "MESSAGE"))).status == 405


async def test_a_handler_that_raises_gets_500(pair) -> None:
    a, b = pair

    def broken(incoming: IncomingRequest) -> None:
        raise RuntimeError("boom")

    b.on_request("INFO", broken)
    assert (await a.request(options(a, b, "INFO"))).status == 500


async def test_invite_rings_then_cancel_gives_487_with_the_reason(pair) -> None:
    a, b = pair
    ringing = asyncio.Event()
    got: list[IncomingRequest] = []

    def on_invite(incoming: IncomingRequest) -> None:
        got.append(incoming)
        incoming.respond(180)

    b.on_request("INVITE", on_invite)
    invite = options(a, b, "INVITE")
    provisional: list[int] = []

    def on_1xx(resp: Response) -> None:
        provisional.append(resp.status)
        if resp.status == 180:
            ringing.set()

    call = asyncio.create_task(a.request(invite, on_provisional=on_1xx))
    await ringing.wait()
    invite_cancel = invite  # the Via with its branch was added by request()
    cancel_resp = await a.cancel(invite_cancel)
    final = await call
    assert cancel_resp.status == 200 and final.status == 487
    assert provisional == [100, 180]
    assert got[0].cancelled.is_set() and got[0].cancel_request is not None


async def test_no_answer_times_out(pair) -> None:
    a, _ = pair
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        req = a.new_request("OPTIONS", f"sip:x@127.0.0.1:{port}", "<sip:a@127.0.0.1>")
        with pytest.raises(SipTimeout, match="timer F"):
            await a.request(req)
    finally:
        silent.close()


async def test_malformed_datagrams_are_survived_and_answered_400_when_possible(pair) -> None:
    _, b = pair
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Raw(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Raw, local_addr=("127.0.0.1", 0))
    try:
        cut_short = (
            b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq\r\n"
            b"From: <sip:x@y>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: m1\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 200\r\n\r\nv=0\r\n"
        )
        for junk in (b"\x00\xff" * 50, b"INVITE garbage\r\n\r\n", b"x" * 65000, cut_short):
            transport.sendto(junk, b.local_address)
        reply = parse_message(await replies.get())
        assert isinstance(reply, Response) and reply.status == 400
        assert "cut short" in reply.reason and reply.call_id == "m1" and reply.to.tag
        assert b.stats.malformed == 4 and b.stats.answered_400 == 1
        # still alive
        a = SipEndpoint("UDP")
        async with a:
            assert (await a.request(options(a, b))).status == 200
    finally:
        transport.close()


async def test_tcp_request_and_refused_connection() -> None:
    a = SipEndpoint("TCP")
    b = SipEndpoint("TCP")
    async with a, b:
        req = options(a, b)
        resp = await a.request(req)
        assert resp.status == 200 and "SIP/2.0/TCP" in (resp.headers.get("Via") or "")
        # a stream out of step (no Content-Length) is closed, the endpoint lives on
        reader, writer = await asyncio.open_connection(*b.local_address)
        writer.write(b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\n\r\n")
        assert await reader.read() == b""
        writer.close()
        assert b.transport.stats.broken_streams == 1
        reader, writer = await asyncio.open_connection(*b.local_address)
        writer.write(b"x" * 70000)
        assert await reader.read() == b""
        writer.close()
        assert b.transport.stats.broken_streams == 2
        assert (await a.request(options(a, b))).status == 200
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        refused = a.new_request("OPTIONS", f"sip:x@127.0.0.1:{port}", "<sip:a@127.0.0.1>")
        with pytest.raises(SipTransportError, match="cannot connect"):
            await a.request(refused)


async def test_tls_request() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    b = SipEndpoint("TLS", server_ssl=server_ctx)
    a = SipEndpoint("TLS", client_ssl=client_ctx)
    async with a, b:
        resp = await a.request(options(a, b))
        assert resp.status == 200 and "SIP/2.0/TLS" in (resp.headers.get("Via") or "")
        untrusting = SipEndpoint("TLS", client_ssl=ssl.create_default_context())
        async with untrusting:
            with pytest.raises(SipTransportError, match="cannot connect"):
                await untrusting.request(options(untrusting, b))

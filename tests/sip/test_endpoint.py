"""SipEndpoint over real loopback sockets: UDP, TCP and TLS, handlers, CANCEL, bad input."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from sip import incoming as incoming_module
from sip.endpoint import IncomingRequest, SipEndpoint, SipTimeout, SipTransportError
from sip.message import Response, parse_message
from sip.transport import TcpTransport


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
    assert seen[0].request.top_via.params["received"] == "127.0.0.1"  # RFC 3581 §4, always
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
    assert cancel_resp.to.tag == final.to.tag  # RFC 3261 §9.2
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


_VALID = (
    b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKf;rport\r\n"
    b"From: <sip:c@127.0.0.1>;tag=f1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: fz\r\n"
    b"CSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:5099>\r\nContent-Length: 3\r\n\r\nv=0"
)


@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.binary(max_size=3)), max_size=8))
def test_fuzz_endpoint_survives_mutated_messages(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(_VALID)
    for pos, new in edits:
        data[pos : pos + len(new)] = new
    sent: list[bytes] = []

    async def main() -> None:
        ep = SipEndpoint("UDP")
        ep.transport.send = lambda payload, peer: sent.append(payload)  # type: ignore[method-assign]
        ep._open = True
        ep._on_message(bytes(data), ("127.0.0.1", 5099))
        await ep.close()

    asyncio.run(main())  # raised nothing
    for payload in sent:  # and whatever went out is a response we can read back
        assert isinstance(parse_message(payload), Response)


async def test_icmp_port_unreachable_fails_the_request_at_once(pair) -> None:
    a, _ = pair
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    req = a.new_request("OPTIONS", f"sip:x@127.0.0.1:{port}", "<sip:a@127.0.0.1>")
    with pytest.raises(SipTransportError, match="port unreachable"):
        await a.request(req)


async def test_cancel_of_an_unknown_invite_gets_481(pair) -> None:
    a, b = pair
    invite = options(a, b, "INVITE")
    a._add_via(invite, b.local_address)  # an INVITE b never saw: the CANCEL matches nothing there
    assert (await a.cancel(invite, b.local_address)).status == 481


async def test_an_unresolvable_host_is_a_transport_error(pair) -> None:
    a, _ = pair
    req = a.new_request("OPTIONS", "sip:x@no-such-host.invalid", "<sip:a@127.0.0.1>")
    with pytest.raises(SipTransportError, match=r"cannot resolve no-such-host\.invalid"):
        await a.request(req)


async def test_bound_to_all_interfaces_it_advertises_the_routed_address() -> None:
    async with SipEndpoint("UDP", host="0.0.0.0") as a, SipEndpoint("UDP") as b:
        resp = await a.request(options(a, b), b.local_address)
        assert resp.status == 200
        assert resp.top_via.host == "127.0.0.1" and a.advertised_host == "127.0.0.1"
        assert a.contact("u").host == "127.0.0.1"


async def test_a_request_behind_nat_is_answered_at_its_source_with_received_and_rport(
    pair,
) -> None:
    _, b = pair
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Raw(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Raw, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        natted = (
            b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.9.9.9:5060;rport;branch=z9hG4bKnat\r\n"
            b"From: <sip:x@10.9.9.9>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: nat1\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        transport.sendto(natted, b.local_address)
        reply = parse_message(await replies.get())
        assert isinstance(reply, Response) and reply.status == 200
        via = reply.top_via
        assert via.params["received"] == "127.0.0.1" and via.params["rport"] == str(port)
        assert via.host == "10.9.9.9"
    finally:
        transport.close()


async def test_a_malformed_via_is_counted_once_and_logs_no_traceback(pair, caplog) -> None:
    _, b = pair
    bad = (
        b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\n"
        b'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq;x="unterminated\r\n'
        b"From: <sip:x@y>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: m2\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    b._on_message(bad, ("127.0.0.1", 9))
    assert b.stats.malformed == 1 and b.stats.answered_400 == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


async def test_cancel_goes_where_the_invite_went(pair) -> None:
    a, b = pair
    ringing = asyncio.Event()
    b.on_request("INVITE", lambda incoming: incoming.respond(180))
    # a Request-URI that does not resolve: only the dest given to request() reaches b
    invite = a.new_request("INVITE", "sip:b@no-such-host.invalid", "<sip:a@127.0.0.1>")
    call = asyncio.create_task(
        a.request(invite, b.local_address, on_provisional=lambda r: ringing.set())
    )
    await ringing.wait()
    assert (await a.cancel(invite)).status == 200
    assert (await call).status == 487


async def test_inbound_connections_at_the_limit_do_not_block_our_own() -> None:
    async with SipEndpoint("TCP", t1=0.02) as a, SipEndpoint("TCP") as c:
        assert isinstance(a.transport, TcpTransport)
        a.transport.max_connections = 2
        held = [await asyncio.open_connection(*a.local_address) for _ in range(2)]
        for reader, writer in held:  # each is accepted: a ping comes back as a pong
            writer.write(b"\r\n\r\n")
            assert await reader.readexactly(2) == b"\r\n"
        reader, writer = await asyncio.open_connection(*a.local_address)
        assert await reader.read() == b""  # a third stranger is turned away
        writer.close()
        assert (await a.request(options(a, c))).status == 200
        for _, writer in held:
            writer.close()


async def test_answered_transactions_make_room_pending_ones_get_503(pair, monkeypatch) -> None:
    a, b = pair
    monkeypatch.setattr(incoming_module, "MAX_SERVER_TRANSACTIONS", 3)
    # answered OPTIONS wait for timer J (64*T1) in the table: they must not crowd out new work
    for _ in range(5):
        assert (await a.request(options(a, b))).status == 200
    assert b.stats.overload_503 == 0
    release, held = asyncio.Event(), asyncio.Event()
    pending: list[IncomingRequest] = []

    async def on_info(incoming: IncomingRequest) -> None:
        pending.append(incoming)
        if len(pending) == 3:
            held.set()
        await release.wait()
        incoming.respond(200)

    b.on_request("INFO", on_info)
    infos = [asyncio.create_task(a.request(options(a, b, "INFO"))) for _ in range(3)]
    await held.wait()
    assert (await a.request(options(a, b))).status == 503  # all three still being handled
    release.set()
    assert [(await t).status for t in infos] == [200, 200, 200]


async def test_an_abandoned_invite_is_cancelled_and_its_487_acked(pair) -> None:
    a, b = pair
    ringing = asyncio.Event()
    got: list[IncomingRequest] = []

    def on_invite(incoming: IncomingRequest) -> None:
        got.append(incoming)
        incoming.respond(180)

    b.on_request("INVITE", on_invite)
    call = asyncio.create_task(
        a.request(options(a, b, "INVITE"), on_provisional=lambda r: ringing.set())
    )
    await ringing.wait()
    call.cancel()  # the caller of request() gives up while the phone rings
    async with asyncio.timeout(10):
        await got[0].cancelled.wait()
        await got[0].acked.wait()  # the 487 came back to a transaction that ACKed it
    assert got[0].tx is not None and got[0].tx.last_response is not None
    assert got[0].tx.last_response.status == 487
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_2xx_for_an_abandoned_invite_is_acked_and_hung_up(pair) -> None:
    a, b = pair
    acked, hung_up = asyncio.Event(), asyncio.Event()

    def pick_up(incoming: IncomingRequest) -> None:  # as the CANCEL comes: a race we lose
        incoming.respond(200, headers=[("Contact", f"<sip:b@127.0.0.1:{b.local_address[1]}>")])

    def on_bye(incoming: IncomingRequest) -> None:
        incoming.respond(200)
        hung_up.set()

    b.on_request("INVITE", lambda incoming: incoming.respond(180))
    b.on_request("CANCEL", pick_up)
    b.on_request("ACK", lambda incoming: acked.set())
    b.on_request("BYE", on_bye)
    ringing = asyncio.Event()
    call = asyncio.create_task(
        a.request(options(a, b, "INVITE"), on_provisional=lambda r: ringing.set())
    )
    await ringing.wait()
    call.cancel()
    async with asyncio.timeout(10):
        await acked.wait()
        await hung_up.wait()


async def test_a_phone_that_never_sends_487_after_cancel_does_not_hold_the_invite(pair) -> None:
    a, _ = pair
    loop = asyncio.get_running_loop()
    answered: list[bytes] = []

    class Phone(asyncio.DatagramProtocol):
        """Rings, answers the CANCEL 200, and then never sends the INVITE's 487."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            req = parse_message(data)
            if req.method == "INVITE" and not answered:  # type: ignore[union-attr]
                answered.append(data)
                resp = Response.for_request(req, 180, to_tag="p")  # type: ignore[arg-type]
                self.transport.sendto(resp.to_bytes(), addr)  # type: ignore[attr-defined]
            elif req.method == "CANCEL":  # type: ignore[union-attr]
                resp = Response.for_request(req, 200, to_tag="p")  # type: ignore[arg-type]
                self.transport.sendto(resp.to_bytes(), addr)  # type: ignore[attr-defined]

    transport, _ = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        invite = a.new_request("INVITE", f"sip:p@127.0.0.1:{port}", "<sip:a@127.0.0.1>")
        ringing = asyncio.Event()
        call = asyncio.create_task(a.request(invite, on_provisional=lambda r: ringing.set()))
        async with asyncio.timeout(10):
            await ringing.wait()
            assert (await a.cancel(invite)).status == 200
            with pytest.raises(SipTimeout):
                await call
        assert (invite.branch, "INVITE") not in a._clients
    finally:
        transport.close()


async def test_a_request_that_cannot_be_printed_raises_and_leaves_nothing_behind(pair) -> None:
    a, b = pair
    req = options(a, b)
    req.headers.add("Subject", "hello\r\nContact: <sip:evil@h>")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        await a.request(req)
    assert not a._clients and not a._timers


async def test_a_name_with_an_ipv6_address_first_resolves_to_the_family_of_our_socket(
    pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    loop = asyncio.get_running_loop()
    port = b.local_address[1]

    async def getaddrinfo(host: str, port_: int, *, family: int = 0, **kw: object) -> list:
        infos = [
            (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("::1", port_, 0, 0)),
            (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port_)),
        ]
        return [i for i in infos if family in (0, i[0])]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    req = a.new_request("OPTIONS", f"sip:b@dual.example:{port}", "<sip:a@127.0.0.1>")
    assert await a.resolve(req) == ("127.0.0.1", port)


async def test_a_send_that_fails_at_once_fails_the_request_at_once(pair) -> None:
    a, _ = pair
    req = a.new_request("OPTIONS", "sip:x@127.0.0.1", "<sip:a@127.0.0.1>")
    # an IPv6 destination for an IPv4 socket: sendto fails locally, no ICMP ever comes
    with pytest.raises(SipTransportError):
        async with asyncio.timeout(10):
            await a.request(req, ("::1", 5060))
    assert not a._clients and not a._timers


async def test_an_answer_after_the_peer_went_away_is_dropped_not_raised() -> None:
    a = SipEndpoint("TCP")
    async with SipEndpoint("TCP") as b:
        seen, release, lost = asyncio.Event(), asyncio.Event(), asyncio.Event()
        finished = asyncio.Event()
        outcome: list[object] = []

        async def on_info(incoming: IncomingRequest) -> None:
            seen.set()
            await release.wait()
            try:
                incoming.respond(180)
                incoming.respond(200)
                outcome.append("dropped")
            except Exception as exc:
                outcome.append(exc)
            finished.set()

        b.on_request("INFO", on_info)
        b.on_lost(lambda peer, reason: lost.set())
        await a.start()
        call = asyncio.create_task(a.request(options(a, b, "INFO")))
        async with asyncio.timeout(10):
            await seen.wait()
            await a.close()  # the PBX's connection goes away while we work on its request
            await lost.wait()
            release.set()
            await finished.wait()
        assert outcome == ["dropped"] and not b._servers
        with pytest.raises(SipTransportError):
            await call


async def test_tls_checks_the_certificate_for_the_host_name_we_resolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("pbx.example.test").configure_cert(server_ctx)  # names its host, not an IP
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **kw: object) -> list:
        assert host == "pbx.example.test"
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]

    async with SipEndpoint("TLS", server_ssl=server_ctx) as b, SipEndpoint(
        "TLS", client_ssl=client_ctx
    ) as a:
        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
        port = b.local_address[1]
        req = a.new_request("OPTIONS", f"sip:b@pbx.example.test:{port}", "<sip:a@127.0.0.1>")
        assert (await a.request(req)).status == 200


async def test_a_cancel_after_the_final_answer_has_no_effect(pair) -> None:
    a, b = pair
    got: list[IncomingRequest] = []
    cancels: list[IncomingRequest] = []

    def on_invite(incoming: IncomingRequest) -> None:
        got.append(incoming)
        incoming.respond(486)

    b.on_request("INVITE", on_invite)
    b.on_request("CANCEL", cancels.append)
    invite = options(a, b, "INVITE")
    assert (await a.request(invite)).status == 486
    assert (await a.cancel(invite, b.local_address)).status == 200  # crossed on the wire
    assert not got[0].cancelled.is_set() and not cancels

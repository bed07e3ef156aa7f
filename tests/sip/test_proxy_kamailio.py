"""Our endpoint behind a real kamailio proxy: an INVITE relayed to our registered Contact,
CANCEL through the proxy, and OPTIONS keep-alives — over UDP and TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sip.endpoint import IncomingRequest, SipEndpoint
from sip.message import Response
from sip.registration import Registration, RegState
from tests.sip.kamailio import PROXY_TO_REGISTERED, Kamailio, KamailioConfig

WAIT = 20.0


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    cfg = KamailioConfig(users={"100": "secret100"}, other_requests=PROXY_TO_REGISTERED)
    with Kamailio(cfg, tmp_path / "kamailio") as k:
        yield k


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_relayed_invite_rings_and_a_cancel_through_the_proxy_ends_it(
    kamailio: Kamailio, transport: str
) -> None:
    dest = kamailio.tcp if transport == "TCP" else kamailio.udp
    observer = SipEndpoint(transport, t1=0.05)
    caller = SipEndpoint(transport, t1=0.05)
    async with observer, caller:
        reg = Registration(
            observer,
            registrar=f"sip:127.0.0.1:{dest[1]}",
            user="100",
            password="secret100",
            domain="127.0.0.1",
            dest=dest,
        )
        assert (await reg.register_once()).state is RegState.REGISTERED
        invites: list[IncomingRequest] = []

        def on_invite(incoming: IncomingRequest) -> None:
            invites.append(incoming)
            incoming.respond(180)

        observer.on_request("INVITE", on_invite)
        ringing = asyncio.Event()

        def on_1xx(resp: Response) -> None:
            if resp.status == 180:
                ringing.set()

        invite = caller.new_request(
            "INVITE", f"sip:100@127.0.0.1:{dest[1]}", '"Client" <sip:+4930123@127.0.0.1>'
        )
        call = asyncio.create_task(caller.request(invite, dest, on_provisional=on_1xx))
        async with asyncio.timeout(WAIT):
            await ringing.wait()
        got = invites[0].request
        assert got.from_.display == "Client" and got.from_.uri.user == "+4930123"
        assert len(got.vias) == 2 and got.record_route  # relayed by kamailio
        assert (await caller.cancel(invite, dest)).status == 200
        final = await asyncio.wait_for(call, WAIT)
        assert final.status == 487
        async with asyncio.timeout(WAIT):
            await invites[0].cancelled.wait()
        # kamailio ACKs our 487 hop by hop: the server transaction is confirmed
        async with asyncio.timeout(WAIT):
            await invites[0].acked.wait()
        await reg.stop()

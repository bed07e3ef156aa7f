"""A registrar that answers one refresh with an error (500) puts the line DOWN, retrying, but
does not end the calls ringing at the observer: the PBX still answers, their CANCEL will
come. Only an unreachable PBX closes them."""

from __future__ import annotations

import asyncio

from callcenter.line_events import CallEnded, CallStarted
from callcenter.lines.lifecycle import LineState
from sip.endpoint import IncomingRequest, SipEndpoint
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.baresip import free_port
from tests.sip.kamailio_env import Recorder, wait_until


async def test_a_refresh_answered_500_keeps_the_ringing_calls() -> None:
    pbx = SipEndpoint("UDP", "127.0.0.1", 0)
    await pbx.start()
    registers: list[IncomingRequest] = []

    def register(incoming: IncomingRequest) -> None:
        registers.append(incoming)
        if len(registers) > 1:
            incoming.respond(500, "Database Gone")
            return
        ours = incoming.request.contacts[0].uri
        incoming.respond(200, headers=[("Contact", f"<{ours}>;expires=2")])

    pbx.on_request("REGISTER", register)
    host, port = pbx.local_address
    rec = Recorder()
    line = SipLine(SipLineConfig(name="office", registrar=f"{host}:{port}", username="crm",
                                 listen_host="127.0.0.1", listen_port=free_port(),
                                 keepalive=30, retry_max=30), rec)
    await line.start()
    ring = None
    try:
        await wait_until(lambda: line.status().state is LineState.UP, line.state_changed)
        invite = pbx.new_request("INVITE", f"sip:crm@127.0.0.1:{line.local[1]}",
                                 "<sip:+79161234567@pbx>", "<sip:crm@pbx>")
        ring = asyncio.create_task(pbx.request(invite, line.local))
        await rec.wait_for(lambda e: isinstance(e, CallStarted))
        # the refresh (at half of 2 s) is answered 500
        await wait_until(lambda: line.status().state is LineState.DOWN, line.state_changed)
        assert "500" in line.status().detail
        assert not [e for e in rec.events if isinstance(e, CallEnded)]
    finally:
        if ring is not None:
            ring.cancel()
            await asyncio.gather(ring, return_exceptions=True)
        await line.stop()
        await pbx.close()

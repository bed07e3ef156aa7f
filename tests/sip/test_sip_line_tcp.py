"""The SIP line over TCP: the kind offers it, the live check and the running line register at
a real kamailio's TCP port (the UDP port is not used at all)."""

from __future__ import annotations

import asyncio

from callcenter.lines.lifecycle import LineState
from sip.sip_kind import TRANSPORTS
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.kamailio import Kamailio, KamailioConfig, free_port
from tests.sip.kamailio_env import Recorder, wait_until


async def test_the_line_registers_over_tcp(tmp_path) -> None:
    assert "tcp" in TRANSPORTS
    k = Kamailio(KamailioConfig(users={"crm": "crm-secret"}), tmp_path / "kamailio")
    await asyncio.to_thread(k.start)
    try:
        cfg = SipLineConfig(name="office", registrar=f"127.0.0.1:{k.tcp_port}", username="crm",
                            secret="crm-secret", transport="tcp", listen_host="127.0.0.1",
                            listen_port=free_port(), keepalive=30)
        line = SipLine(cfg, Recorder())
        result = await line.check()
        assert result.ok, result.error
        await line.start()
        try:
            assert line.endpoint is not None and line.endpoint.transport_name == "TCP"
            await wait_until(lambda: line.status().state is LineState.UP, line.state_changed)
            assert "registered as crm" in line.status().detail
        finally:
            await line.stop()
    finally:
        await asyncio.to_thread(k.stop)

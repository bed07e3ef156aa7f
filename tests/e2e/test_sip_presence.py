"""A call to a manager's own phone, seen only through the dialog watcher, in Chromium: kamailio
publishes the ringing dialog of baresip phone 102 (Maria's), the SIP line's NOTIFY pops the
client's card in Maria's console; the caller gives up and the card ends missed. A watched
extension with no phone registered shows as offline in the console's presence."""

from __future__ import annotations

import asyncio
import re

from playwright.sync_api import expect

from callcenter.audit.model import CLI
from callcenter.lines.records import LineRecord
from tests.e2e.server import LiveServer
from tests.sip.baresip import Baresip, free_port
from tests.sip.kamailio_env import PASSWORDS
from tests.sip.kamailio_pbx import Kamailio
from tests.sip.sipp import cue, free_udp_port, run_sipp


def test_a_dialog_notify_pops_the_card_at_the_manager(live_server, console, tmp_path) -> None:
    server = live_server()
    pbx = Kamailio(tmp_path / "kamailio", dict(PASSWORDS))
    desk = Baresip(tmp_path, "102", PASSWORDS["102"], "", answer="manual")
    sipp_port = free_udp_port()
    held: dict[str, asyncio.Task] = {}

    async def start(server: LiveServer) -> None:
        await pbx.start()
        desk.registrar = pbx.address
        await desk.start()
        manager = server.services.extra["lines"]
        await manager.add(LineRecord("office-sip", "sip", True, {
            "registrar": pbx.address, "username": "crm", "listen_host": "127.0.0.1",
            "listen_port": free_port(), "watch_extensions": ["102", "103"]},
            {"secret": PASSWORDS["crm"]}), CLI)
        line = manager.running["office-sip"]
        await asyncio.wait_for(line.registered.wait(), 20)
        await asyncio.wait_for(line.watcher.established.wait(), 20)

    async def ring(server: LiveServer) -> None:
        held["run"] = asyncio.create_task(run_sipp(
            "carrier_cancel_on_cue.xml", pbx.address,
            {"caller": "+79161234567", "caller_name": "Ivan Petrov", "called": "102",
             "reason": "Subject: gave up"},
            port=sipp_port, service="102", extra=("-cid_str", "mgr%u"), timeout=60))

    async def finished(server: LiveServer) -> tuple[int, str]:
        run = await held["run"]
        return run.rc, run.output

    async def stop(server: LiveServer) -> None:
        await desk.stop()
        await pbx.stop()

    server.call(start, server, timeout=60)
    try:
        tab = console(server, "maria")
        tab.wait_online()
        page = tab.page
        # 103 has no phone registered: offline, not free; 102 is free (not listed)
        presence = page.evaluate("fetch('/api/presence').then((r) => r.json())")
        assert presence == {"103": "offline"}
        server.call(ring, server)
        card = page.locator('.card[data-call-id^="sip:office-sip:d:"]')
        expect(card).to_have_attribute("data-state", "ringing", timeout=20_000)
        expect(card.locator(".client-link")).to_have_text("ООО «Ромашка»")
        expect(card.locator(".caller-number")).to_have_text(re.compile(r"916"))
        cue(sipp_port, "mgr1")
        rc, output = server.call(finished, server, timeout=60)
        assert rc == 0, output
        expect(card).to_have_attribute("data-state", "missed", timeout=20_000)
    finally:
        server.call(stop, server, timeout=30)

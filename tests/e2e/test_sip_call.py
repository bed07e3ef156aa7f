"""An inbound call forked to the SIP observer extension, in real Chromium: sipp plays the PBX
ringing the observer with a demo client's number in P-Asserted-Identity; the secretary's
console pops that client's card. A plain CANCEL (the caller gave up) ends it missed; a CANCEL
with ``Reason: SIP;cause=200`` (answered elsewhere) ends it answered -- in the card and in the
call log. The SIP line is added through the line manager, as the lines page does."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.sync_api import expect

from callcenter.audit.model import CLI
from callcenter.lines.records import LineRecord
from tests.e2e.server import LiveServer
from tests.sip.sipp import cue, free_udp_port, run_sipp

REASONS = {"missed": "Subject: plain CANCEL",
           "ended": 'Reason: SIP;cause=200;text="Call completed elsewhere"'}


@pytest.mark.parametrize("outcome", ["missed", "ended"])
def test_a_call_to_the_observer_pops_the_card(live_server, console, outcome) -> None:
    server = live_server()
    sip_port, sipp_port = free_udp_port(), free_udp_port()

    async def add_line(server: LiveServer) -> None:
        manager = server.services.extra["lines"]
        await manager.add(LineRecord("office-sip", "sip", True, {
            "listen_host": "127.0.0.1", "listen_port": sip_port,
            "ring_extensions": ["101"]}), CLI)

    server.call(add_line, server)
    tab = console(server, "secretary")
    tab.wait_online()
    page = tab.page
    holder: dict[str, asyncio.Task] = {}

    async def ring(server: LiveServer) -> None:
        holder["run"] = asyncio.create_task(run_sipp(
            "carrier_cancel_on_cue.xml", f"127.0.0.1:{sip_port}",
            {"reason": REASONS[outcome], "caller": "+79161234567", "caller_name": "Romashka",
             "called": "74951234567"}, port=sipp_port, extra=("-cid_str", "e2e%u"),
            timeout=60))

    server.call(ring, server)
    card = page.locator('.card[data-call-id^="sip:office-sip:"]')
    expect(card).to_have_attribute("data-state", "ringing", timeout=20_000)
    expect(card.locator(".caller-number")).to_have_text(re.compile(r"8 \(916\) 123-45-67"))
    expect(card.locator(".client-link")).to_have_text("ООО «Ромашка»")
    cue(sipp_port, "e2e1")

    async def finished(server: LiveServer) -> tuple[int, str]:
        run = await holder["run"]
        return run.rc, run.output

    rc, output = server.call(finished, server, timeout=60)
    assert rc == 0, output
    expect(card).to_have_attribute("data-state", outcome, timeout=20_000)
    call_id = card.get_attribute("data-call-id")
    page.goto(f"{server.url}/calls")
    row = page.locator(f'[data-role=call-log] tr.call-row[data-call-id="{call_id}"]')
    log_state = "missed" if outcome == "missed" else "answered"
    expect(row).to_have_class(re.compile(rf"\bstate-{log_state}\b"))
    expect(row).to_contain_text("ООО «Ромашка»")

"""An incoming GSM call in real Chromium: the emulated modem on a pseudo-terminal rings with
the +CLIP of a demo client's number, the secretary's console pops that client's card, and when
the caller hangs up the call is missed, in the card and in the call log."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.modem import server_with_modem
from tests.e2e.server import LiveServer


def test_an_incoming_gsm_call_pops_the_card_and_ends_missed(live_server, config, tmp_path,
                                                            console) -> None:
    server, emulators = server_with_modem(live_server, config, tmp_path)
    tab = console(server, "secretary")  # Russian
    page = tab.page
    page.goto(f"{server.url}/sms")
    # the modem is up (its status is shown) before the call: RING reaches a ready line
    expect(page.locator("[data-role=sms-pool] .modem-row[data-modem=gsm1]")).to_contain_text(
        "MTS RUS", timeout=20_000)
    emu = emulators[0]

    async def ring(server: LiveServer) -> None:
        emu.ring("+79161234567", rings=1000)  # rings until the caller hangs up

    server.call(ring, server)
    card = page.locator('.card[data-call-id^="gsm:gsm1:"]')
    expect(card).to_have_attribute("data-state", "ringing", timeout=20_000)
    expect(card.locator(".caller-number")).to_have_text(re.compile(r"8 \(916\) 123-45-67"))
    expect(card.locator(".client-link")).to_have_text("ООО «Ромашка»")

    async def hang_up(server: LiveServer) -> None:
        emu.caller_hangs_up()

    server.call(hang_up, server)
    expect(card).to_have_attribute("data-state", "missed", timeout=20_000)
    call_id = card.get_attribute("data-call-id")
    page.goto(f"{server.url}/calls")
    row = page.locator(f'[data-role=call-log] tr.call-row[data-call-id="{call_id}"]')
    expect(row).to_have_class(re.compile(r"\bstate-missed\b"))
    expect(row).to_contain_text("ООО «Ромашка»")

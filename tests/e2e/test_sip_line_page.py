"""The SIP line kind on the lines page in Chromium, against a real kamailio: the admin picks
"SIP", the fields say what a SIP line needs (not an AMI user), the extensions to watch are
pasted as CSV rows, "Test connection" registers (a wrong password is refused in words), and
the saved line registers and subscribes."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.server import LiveServer
from tests.e2e.test_lines_page import open_lines
from tests.sip.baresip import free_port
from tests.sip.kamailio_env import PASSWORDS
from tests.sip.kamailio_pbx import Kamailio


def test_admin_adds_a_sip_line_checked_live(live_server, console, tmp_path) -> None:
    server = live_server()
    pbx = Kamailio(tmp_path / "kamailio", dict(PASSWORDS))

    async def start(server: LiveServer) -> None:
        await pbx.start()

    async def stop(server: LiveServer) -> None:
        await pbx.stop()

    server.call(start, server, timeout=30)
    try:
        c = console(server, "admin")
        page = open_lines(c)
        page.click("[data-action=add]")
        page.select_option("[name=kind]", "sip")
        expect(page.locator("label.field", has=page.locator("[name=f-username]"))).to_contain_text(
            re.compile("Observer extension|Добавочный наблюдателя"))
        page.fill("[name=name]", "office-sip")
        page.fill("[name=f-registrar]", pbx.address)
        page.fill("[name=f-username]", "crm")
        page.fill("[name=f-secret]", "not-the-password")
        page.fill("[name=f-listen_host]", "127.0.0.1")
        page.fill("[name=f-listen_port]", str(free_port()))
        page.fill("[name=f-watch_extensions]", "extension;name\n101;Anna\n102;Boris\n")
        result = page.locator("[data-role=check-result]")
        page.click("[data-action=test]")
        expect(result).to_have_attribute("data-ok", "false", timeout=20_000)
        expect(result).to_contain_text("wrong user or password")
        page.fill("[name=f-secret]", PASSWORDS["crm"])
        page.click("[data-action=test]")
        expect(result).to_have_attribute("data-ok", "true", timeout=20_000)
        expect(result).to_contain_text("registered as crm")
        page.click("[data-action=save]")
        row = page.locator("[data-role=lines] tr", has_text="office-sip")
        expect(row.locator("[data-role=line-state]")).to_have_attribute("data-state", "up",
                                                                         timeout=20_000)
        record = server.services.extra["lines"].records["office-sip"]
        assert record.settings["watch_extensions"] == ["101", "102"]
        assert "not-the-password" not in page.content()
    finally:
        server.call(stop, server, timeout=30)

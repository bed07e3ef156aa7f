"""The lines page in Chromium against the AMI emulator: an admin adds an Asterisk line
("Test connection" shows the PBX version, a wrong secret is refused in words and not saved),
edits it without a restart while a call is in progress (the emulator sees the new login and
the old socket closed; the call stays in the log), and adds a SIP trunk whose registration
result is shown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from callcenter.lines.audit import CLI_ACTOR
from callcenter.lines.records import LineRecord
from pbx.ami.emulator import AmiEmulator
from pbx.ami.trace import load_trace
from tests.conftest import FIXTURES
from tests.e2e.conftest import Console
from tests.e2e.server import LiveServer
from tests.lines.recorded import answer_of, list_answer, replaying
from tests.lines.trunk_trace import trunk_admin_segments


def start_emulator(server: LiveServer, make: Callable[[], AmiEmulator]) -> AmiEmulator:
    async def start() -> AmiEmulator:
        return await make().start()

    emulator = server.call(start)
    server.state["emulator"] = emulator
    return emulator


def stop_emulator(server: LiveServer) -> None:
    emulator = server.state.get("emulator")
    if emulator is not None:
        server.call(emulator.close)


def wait_until(server: LiveServer, check: Callable[[], bool], timeout: float = 10.0) -> None:
    async def wait() -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)

    server.call(wait, timeout=timeout + 5)


def open_lines(c: Console) -> Any:
    c.page.click("a[data-nav=lines]")
    c.page.wait_for_selector("[data-role=lines]")
    return c.page


def test_admin_adds_tests_and_edits_a_line_while_a_call_goes_on(
        live_server: Callable[..., LiveServer], console: Callable[..., Console]) -> None:
    server = live_server()
    trace = load_trace(FIXTURES / "01_inbound_answered.log")
    recorded, blocks, last = list_answer(trace, "CoreShowChannels")
    emulator = start_emulator(server, lambda: AmiEmulator(
        trace, speed=0, action_wait=30, auth_failure_delay=0,
        responders={"coreshowchannels": replaying(recorded, blocks)}))
    emulator.pause_after_block(last)  # the call is answered and talking here
    try:
        c = console(server, "admin")
        page = open_lines(c)
        expect(page.locator("[data-role=lines]")).to_contain_text("No lines yet")
        page.click("[data-action=add]")
        page.fill("[name=name]", "office")
        page.fill("[name=f-host]", "127.0.0.1")
        page.fill("[name=f-port]", str(emulator.port))
        page.fill("[name=f-username]", "crm")
        page.fill("[name=f-secret]", "not-the-secret")
        result = page.locator("[data-role=check-result]")
        page.click("[data-action=test]")
        expect(result).to_have_attribute("data-ok", "false")
        expect(result).to_contain_text("refused the login of AMI user 'crm'")
        expect(result).to_contain_text("manager.conf")
        page.click("[data-action=save]")
        expect(result).to_contain_text("nothing was saved")
        expect(page.locator("[data-role=lines]")).to_contain_text("No lines yet")
        assert server.call(lambda: list(server.services.extra["lines"].records)) == []

        page.fill("[name=f-secret]", "crm-secret")
        page.click("[data-action=test]")
        expect(result).to_contain_text("Connection works: Asterisk 22.10.1, AMI 11.0.0")
        expect(result).to_have_attribute("data-ok", "true")
        page.click("[data-action=save]")
        expect(result).to_contain_text("Line office saved and started")
        row = page.locator("tr[data-line=office]")
        expect(row.locator("[data-role=line-state]")).to_have_attribute(
            "data-state", "up", timeout=10_000)
        wait_until(server, emulator.paused.is_set)
        registry = server.services.extra["calls"].registry
        wait_until(server, lambda: len(registry.live()) == 1)
        call_id = server.call(lambda: registry.live()[0].id)
        logins = emulator.logins

        # edit: the form never holds the secret; an empty secret keeps the stored one
        row.locator("[data-action=edit]").click()
        assert page.input_value("[name=f-secret]") == ""
        assert "crm-secret" not in page.content()
        page.fill("[name=f-ping_interval]", "15")
        page.click("[data-action=save]")
        expect(result).to_contain_text("Line office saved and started")
        manager = server.services.extra["lines"]
        wait_until(server, lambda: manager.running["office"].synced.is_set()
                   and emulator.logins == logins + 2 and emulator.open_connections == 1)
        assert server.call(lambda: manager.running["office"].config.ping_interval) == 15.0
        # the call is still live: re-adopted by the new line's resync
        assert server.call(lambda: [call.id for call in registry.live()]) == [call_id]
        emulator.resume()
        wait_until(server, lambda: not registry.live())
        server.call(server.services.extra["call_log"].drained)
        row_of_call = server.call(server.services.store.get_call, call_id)
        assert row_of_call["state"] == "answered"
        expect(row.locator("[data-role=line-state]")).to_have_attribute("data-state", "up")
    finally:
        stop_emulator(server)


def test_a_trunk_is_added_and_its_registration_shown(
        live_server: Callable[..., LiveServer], console: Callable[..., Console]) -> None:
    server = live_server()
    trace = load_trace(FIXTURES / "14_pjsip_trunk_admin.log")
    # Asked again after the recording ends: the PBX's answers to the same questions.
    again = {name: replaying(action_id, answer_of(trace, action_id)) for name, action_id in (
        ("pjsipshowendpoints", "14-2"), ("pjsipshowregistrationsoutbound", "14-12"),
        ("pjsipshowcontacts", "14-4"))}
    emulator = start_emulator(server, lambda: AmiEmulator(
        trunk_admin_segments(cut_after="14-12"), speed=0, action_wait=30,
        auth_failure_delay=0, responders=again))
    try:
        manager = server.services.extra["lines"]
        server.call(manager.add, LineRecord("office", "asterisk", True, {
            "host": "127.0.0.1", "port": emulator.port, "username": "crm",
            "withheld_getvar": False}, {"secret": "crm-secret"}), CLI_ACTOR)
        wait_until(server, lambda: manager.status("office").connected)
        c = console(server, "admin")
        page = open_lines(c)
        page.locator("tr[data-line=office] [data-action=trunks]").click()
        expect(page.locator("tr[data-endpoint=trunk]")).to_contain_text("sip:127.0.0.1:5191")
        page.fill("[name=t-name]", "crm-trunk2")
        page.fill("[name=t-host]", "127.0.0.1")
        page.fill("[name=t-port]", "5195")
        page.fill("[name=t-username]", "74951110077")
        page.fill("[name=t-password]", "prov1der-secret")
        page.click("[data-action=save-trunk]")
        result = page.locator("[data-role=trunk-result]")
        expect(result).to_contain_text(
            "sip:74951110077@127.0.0.1:5195 registered at sip:127.0.0.1:5195", timeout=20_000)
        expect(result).to_have_attribute("data-ok", "true")
        expect(page.locator("tr[data-registration=crm-trunk2-reg] "
                            "[data-role=registration-status]")).to_have_text("Registered")
        assert page.input_value("[name=t-password]") == ""
        # an edit starts from what the PBX has (the password is never shown)
        page.locator("tr[data-registration=crm-trunk2-reg] [data-action=edit-trunk]").click()
        assert page.input_value("[name=t-name]") == "crm-trunk2"
        assert page.input_value("[name=t-username]") == "74951110077"
        assert (page.input_value("[name=t-host]"), page.input_value("[name=t-port]")) == (
            "127.0.0.1", "5195")
        assert "prov1der-secret" not in page.content()
        assert [a["Module"] for a in emulator.actions_named("ModuleLoad")] == ["res_pjsip.so"]
    finally:
        stop_emulator(server)

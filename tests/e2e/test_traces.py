"""The console in Chromium, fed by the real Asterisk line replaying recorded AMI traces.

The app starts with a PBX line pointing at a port where nothing listens yet; the browser logs
in; then the AMI emulator starts there and the line's reconnect finds it. So the recorded call
begins only once the console is watching.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from callcenter.config import Config, PbxLineConfig
from pbx.ami.emulator import AmiEmulator
from pbx.ami.trace import Trace, load_trace
from tests.calls.synth import RINGGROUP, ivr_only, ringgroup_then_voicemail
from tests.conftest import FIXTURES
from tests.e2e.conftest import DOCS, Console
from tests.e2e.server import LiveServer

if not FIXTURES.exists():  # the recorded traces live in tests/fixtures/ami; never skip
    raise FileNotFoundError(f"AMI fixtures missing: {FIXTURES}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Replay:
    server: LiveServer
    emulator: AmiEmulator | None = None

    def start(self, scenario: str, *, speed: float, max_gap: float | None,
              action_wait: float = 5.0, trace: Trace | None = None) -> AmiEmulator:
        port = self.server.config.pbx[0].port

        async def start() -> AmiEmulator:
            emulator = AmiEmulator(trace or load_trace(FIXTURES / f"{scenario}.log"), port=port,
                                   speed=speed, max_gap=max_gap, action_wait=action_wait)
            return await emulator.start()

        self.emulator = self.server.call(start)
        # The line retries with backoff (0.5, 1, 2, 4 s): it finds the emulator soon.
        self.server.call(self.emulator.wait_for_client, 12.0, timeout=15)
        return self.emulator

    def finished(self, timeout: float = 30.0) -> None:
        assert self.emulator is not None

        async def wait() -> None:
            assert self.emulator is not None
            await asyncio.wait_for(self.emulator.finished.wait(), timeout)

        self.server.call(wait, timeout=timeout + 5)

    def wait_for_action(self, name: str, timeout: float = 10.0) -> Any:
        assert self.emulator is not None
        return self.server.call(self.emulator.wait_for_action, name, 1, timeout,
                                timeout=timeout + 5)


@pytest.fixture
def replay(config: Config, live_server: Callable[..., LiveServer]) -> Any:
    replays: list[Replay] = []

    def make() -> Replay:
        config.pbx = [PbxLineConfig(name="office", host="127.0.0.1", port=free_port(),
                                    username="crm", secret="crm-secret")]
        r = Replay(live_server())
        replays.append(r)
        return r

    yield make
    for r in replays:
        if r.emulator is not None:
            r.server.call(r.emulator.close)


def only_card(tab: Console) -> Any:
    cards = tab.page.locator(".card")
    expect(cards).to_have_count(1, timeout=15_000)
    return cards.first


def test_01_answered_screen_pop_with_client_and_manager(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")
    maria = console(r.server, "maria")
    dmitry = console(r.server, "dmitry")
    r.start("01_inbound_answered", speed=1.0, max_gap=2.5)
    card = only_card(tab)
    expect(card).to_have_attribute("data-state", "ringing")
    expect(card).to_have_class(re.compile(r"\bpop\b"))
    expect(card.locator(".caller-number")).to_have_text(re.compile(r"916.*123.*45.*67"))
    expect(card.locator("[data-role=caller-name]")).to_have_text("Ivan Petrov")
    expect(card.locator(".client-link")).to_have_text("ООО «Ромашка»")
    expect(card.locator("[data-role=manager]")).to_contain_text("Maria Ivanova")
    tab.page.screenshot(path=str(DOCS / "screenshot-console.png"))
    # Maria (the client's manager) gets the card too; Dmitry does not.
    expect(only_card(maria).locator(".client-link")).to_have_text("ООО «Ромашка»")
    expect(card).to_have_attribute("data-state", "answered", timeout=10_000)
    expect(card.locator("[data-role=answered-by]")).to_contain_text("Svetlana Orlova")
    expect(card).to_have_attribute("data-state", "ended", timeout=15_000)
    call_id = card.get_attribute("data-call-id")
    types = tab.entry_types(call_id)
    assert types[0] in ("call.updated", "call.ringing") and "call.ringing" in types
    assert types.index("call.answered") < types.index("call.ended")
    expect(dmitry.page.locator(".card")).to_have_count(0)
    # the call is on the client card, told in the user's language (the secretary: Russian)
    card.locator(".client-link").click()
    expect(tab.page.locator(".history .interaction.kind-call").first).to_contain_text(
        "Звонок от Ivan Petrov, ответил(а) Svetlana Orlova", timeout=10_000)


def test_02_missed_call_card_and_callback_task(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")
    r.start("02_inbound_missed", speed=4.0, max_gap=1.0)
    card = only_card(tab)
    expect(card.locator(".client-link")).to_have_text("Olga Sokolova")
    expect(card.locator("[data-role=manager]")).to_contain_text("Dmitry Volkov")
    expect(card).to_have_attribute("data-state", "missed", timeout=20_000)
    expect(card.locator(".card-status .missed")).to_be_visible()
    tab.page.click("nav a[data-nav=tasks]")
    tab.page.select_option("select[name=show]", "all")
    tab.page.uncheck("input[name=mine]")
    expect(tab.page.locator(".task-row").first).to_be_visible(timeout=10_000)


def test_08a_cyrillic_caller_name_is_intact(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")
    r.start("08a_callerid_cyrillic", speed=4.0, max_gap=1.0)
    card = only_card(tab)
    expect(card.locator("[data-role=caller-name]")).to_have_text(
        'Иван Петров (ООО "Ромашка") №5')
    expect(card.locator(".client-link")).to_have_text("ООО «Ромашка»")
    expect(card).to_have_attribute("data-state", "ended", timeout=15_000)


def test_08b_anonymous_caller_is_shown_as_withheld(replay, console) -> None:
    r = replay()
    tab = console(r.server, "maria")  # English
    secretary = console(r.server, "secretary")
    r.start("08b_callerid_anonymous", speed=4.0, max_gap=1.0)
    card = only_card(secretary)
    expect(card.locator(".caller-number")).to_have_text("Номер скрыт")
    expect(card.locator(".card-match")).to_have_attribute("data-kind", "withheld")
    expect(card).to_have_attribute("data-state", "ended", timeout=15_000)
    expect(tab.page.locator(".card")).to_have_count(0)  # no client: not Maria's business


def test_03_transfer_button_sends_blind_transfer_of_the_answering_channel(replay,
                                                                           console) -> None:
    r = replay()
    tab = console(r.server, "secretary")
    # The recorded BlindTransfer answer (and all after it) waits until the console sends it.
    emulator = r.start("03_blind_transfer", speed=2.0, max_gap=1.0, action_wait=60.0)
    card = only_card(tab)
    expect(card).to_have_attribute("data-state", "answered", timeout=15_000)
    button = card.locator("[data-action=transfer-manager]")
    expect(button).to_have_text("Перевести на Maria Ivanova")
    button.click()
    action = r.wait_for_action("BlindTransfer")
    assert re.fullmatch(r"PJSIP/101-[0-9a-f]{8}", action.get("Channel") or ""), action
    assert action.get("Exten") == "102"
    expect(card.locator("[data-role=transfer-result]")).to_be_visible()
    expect(card.locator("[data-role=transfer]")).to_contain_text("102", timeout=15_000)
    expect(card).to_have_attribute("data-state", "ended", timeout=20_000)
    assert len(emulator.actions_named("BlindTransfer")) == 1  # one click, one action


def test_05_click_to_call_rings_the_users_own_phone_first(replay, console) -> None:
    r = replay()
    tab = console(r.server, "maria")
    page = tab.page
    emulator = r.start("05_click_to_call", speed=2.0, max_gap=1.0, action_wait=60.0)
    page.fill("input[name=search]", "Vector")
    phone = page.locator(".client-result button.phone").first
    expect(phone).to_have_text(re.compile(r"903.*123-45-67"))
    phone.click()
    action = r.wait_for_action("Originate")
    assert action.get("Channel") == "PJSIP/102"
    assert "9031234567" in (action.get("Exten") or "")
    # The replayed call carries the recorded ChannelId, not the one the line generated, so
    # the registry cannot tie it to Maria's click (originated_by stays None): the console
    # shows it as her outbound call. The click-to-call progress texts are covered with bus
    # events in test_console.py.
    card = page.locator(".card.dir-outbound")
    expect(card).to_have_count(1, timeout=15_000)
    expect(card.locator(".caller-number")).to_contain_text("89031234567")
    expect(card).to_have_attribute("data-state", "ended", timeout=20_000)
    assert len(emulator.actions_named("Originate")) == 1


def test_calls_page_filters_by_a_typed_client_name(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")
    r.start("01_inbound_answered", speed=0, max_gap=None, action_wait=0.3)
    r.finished()
    card = only_card(tab)
    expect(card).to_have_attribute("data-state", "ended", timeout=15_000)
    tab.page.click("nav a[data-nav=calls]")
    log = tab.page.locator("[data-role=call-log]")
    expect(log.locator("tr.call-row")).to_have_count(1, timeout=10_000)
    expect(log).to_contain_text("ООО «Ромашка»")  # the client's name, not its id
    tab.page.fill("input[name=client]", "nobody-like-this")
    tab.page.click("form.filters button[type=submit]")
    expect(log).to_contain_text("Нет клиента «nobody-like-this»")
    expect(log.locator("tr.call-row")).to_have_count(0)
    tab.page.fill("input[name=client]", "ромашка")  # typed in lower case, never picked
    tab.page.click("form.filters button[type=submit]")
    expect(log.locator("tr.call-row")).to_have_count(1)
    tab.page.fill("input[name=client]", "Olga")  # a client without calls
    tab.page.click("form.filters button[type=submit]")
    expect(log).to_contain_text("Звонков нет")  # the filtered log, now empty
    expect(log.locator("tr.call-row")).to_have_count(0)


def test_07_record_and_stop_from_the_card(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")
    emulator = r.start("07_mixmonitor_recording", speed=1.0, max_gap=1.0, action_wait=8.0)
    card = only_card(tab)
    expect(card).to_have_attribute("data-state", "answered", timeout=15_000)
    card.locator("[data-action=record]").click()
    start = r.wait_for_action("MixMonitor")
    assert start.get("Channel") == "PJSIP/trunk-00000017"  # the caller's leg: the whole call
    expect(card.locator("[data-action=record]")).to_have_text("Остановить запись")
    card.locator("[data-action=record]").click()
    stop = r.wait_for_action("StopMixMonitor")
    assert stop.get("Channel") == "PJSIP/trunk-00000017"
    assert stop.get("MixMonitorID") == "0x7fdfa8001cd0"  # from the MixMonitor response
    assert len(emulator.actions_named("MixMonitor")) == 1
    # hang-up: the recording has no answer for it, so the card shows the PBX's refusal
    card.locator("[data-action=hangup]").click()
    assert r.wait_for_action("Hangup").get("Channel") == "PJSIP/trunk-00000017"
    expect(card.locator("[data-role=transfer-result]")).to_contain_text("Не получилось")
    expect(card).to_have_attribute("data-state", "ended", timeout=20_000)


def test_voicemail_on_the_card_the_call_log_and_the_task(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")  # Russian
    maria = console(r.server, "maria")  # English
    r.start(RINGGROUP, speed=0, max_gap=None, action_wait=0.3,
            trace=ringgroup_then_voicemail())
    r.finished()
    card = only_card(tab)
    expect(card).to_have_attribute("data-state", "missed", timeout=15_000)
    expect(card.locator("[data-role=voicemail]")).to_have_text("Оставил голосовое сообщение")
    expect(only_card(maria).locator("[data-role=voicemail]")).to_have_text("Left a voicemail")
    tab.page.click("nav a[data-nav=calls]")
    log = tab.page.locator("[data-role=call-log]")
    expect(log.locator("tr.call-row")).to_have_count(1, timeout=10_000)
    expect(log.locator("tr.call-row [data-role=voicemail]")).to_have_text(
        "оставил голосовое сообщение")
    tab.page.click("nav a[data-nav=tasks]")
    tab.page.select_option("select[name=show]", "all")
    tab.page.uncheck("input[name=mine]")
    expect(tab.page.locator(".task-row [data-role=voicemail]")).to_have_text(
        "оставил голосовое сообщение", timeout=10_000)
    # and on the client card's history, in the user's language
    tab.page.locator(".card .client-link").click()
    expect(tab.page.locator(".history .interaction.kind-call").first).to_contain_text(
        "Пропущенный звонок от Pavel Sidorov · оставил голосовое сообщение", timeout=10_000)


def test_a_call_the_pbx_answered_alone_says_so(replay, console) -> None:
    r = replay()
    tab = console(r.server, "secretary")  # Russian
    r.start(RINGGROUP, speed=0, max_gap=None, action_wait=0.3, trace=ivr_only())
    r.finished()
    card = only_card(tab)
    expect(card).to_have_attribute("data-state", "ended", timeout=15_000)
    expect(card.locator("[data-role=pbx-answered]")).to_have_text(
        re.compile(r"Ответила АТС, 0:0[78] в меню"))
    tab.page.click("nav a[data-nav=calls]")
    log = tab.page.locator("[data-role=call-log]")
    expect(log.locator("tr.call-row")).to_have_count(1, timeout=10_000)
    expect(log.locator("tr.call-row")).to_contain_text("АТС")
    log.locator("tr.call-row a").first.click()  # the client: the call in its history
    expect(tab.page.locator(".history .interaction.kind-call").first).to_contain_text(
        re.compile(r"Звонок от Pavel Sidorov, ответила АТС, 0:0[78] в меню"), timeout=10_000)

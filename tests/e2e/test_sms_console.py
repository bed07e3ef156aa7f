"""SMS in the console, in real Chromium: the client card's compose box and its counter, the
SMS page, live inbound SMS, and stranger texts shown as text."""

from __future__ import annotations

from playwright.sync_api import expect

from callcenter.sms.events import Address, AddressKind, SmsEncoding, SmsPartReceived
from tests.e2e.modem import server_with_modem
from tests.e2e.server import LiveServer
from tests.e2e.test_console import XSS, demo


def inbound(server: LiveServer, sender: str, text: str) -> None:
    part = SmsPartReceived("gsm1", Address(AddressKind.INTERNATIONAL, sender), text,
                           SmsEncoding.UCS2, 1_780_000_000.0, None, f"00{abs(hash(text)):x}")
    server.call(server.services.extra["sms"].handle, part)


def test_write_from_the_client_card_with_a_live_counter(live_server, config, console) -> None:
    config.sms.templates = ["Hello {contact.first_name}, your order for {client.name} is ready"]
    server = live_server()
    d = demo(server)
    ivan = d.clients["ООО «Ромашка»"]
    tab = console(server, "maria")
    page = tab.page
    page.goto(f"{server.url}/clients/{ivan.id}")
    compose = page.locator("[data-role=sms-compose]")
    counter = compose.locator("[data-role=sms-counter]")
    compose.locator("[data-role=sms-template]").select_option("0")
    expect(compose.locator("textarea")).to_have_value(
        "Hello Ivan, your order for ООО «Ромашка» is ready")
    expect(counter).to_have_attribute("data-encoding", "ucs2")
    compose.locator("textarea").fill("a" * 161)
    expect(counter).to_have_attribute("data-parts", "2")
    expect(counter).to_have_attribute("data-encoding", "gsm7")
    compose.locator("textarea").fill("ж" * 70)
    expect(counter).to_have_attribute("data-encoding", "ucs2")
    expect(counter).to_have_attribute("data-parts", "1")
    compose.locator("textarea").fill("Добрый день! " * 10)
    expect(counter).to_have_attribute("data-parts", "2")
    compose.locator("button[type=submit]").click()
    rows = page.locator("[data-role=client-sms] .sms-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("[data-role=sms-state]")).to_have_text("Queued")
    rows.first.locator("[data-action=sms-detail]").click()
    expect(page.locator("[data-role=sms-detail] [data-role=sms-parts] li")).to_have_count(2)

    # a reply arrives live on the card, its text shown as text
    page.evaluate("window.__xss = false")
    inbound(server, "+79161234567", XSS + "<script>window.__xss=true</script>")
    expect(rows).to_have_count(2)
    expect(page.locator("[data-role=client-sms] .sms-row.dir-in .sms-text")).to_have_text(
        XSS + "<script>window.__xss=true</script>")
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") in (False, None)

    # a failed SMS is sent again only when the manager asks
    expect(page.locator("[data-action=sms-resend]")).to_have_count(0)
    services = server.services
    sent_id = int(page.locator("[data-role=client-sms] .sms-row.dir-out").first
                  .get_attribute("data-sms-id"))

    async def fail_it() -> None:
        for p in (await services.store.sms_get(sent_id))["parts"]:
            await services.store.sms_update_part(p["id"], state="failed", error="barred")
        await services.extra["sms"].publish_status(sent_id)

    server.call(fail_it)
    page.locator(f'.sms-row[data-sms-id="{sent_id}"] [data-action=sms-detail]').click()
    page.locator("[data-action=sms-resend]").click()
    expect(rows).to_have_count(3)


def test_sms_page_lists_only_a_managers_own_sms(server: LiveServer, console) -> None:
    inbound(server, "+79035556677", "Olga (Dmitry's client)")
    inbound(server, "+79161234567", "Ivan (Maria's client)")
    tab = console(server, "maria")
    page = tab.page
    page.goto(f"{server.url}/sms")
    rows = page.locator("[data-role=sms-list] .sms-row")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".sms-text")).to_have_text("Ivan (Maria's client)")
    expect(page.locator("[data-role=sms-pool]")).to_contain_text("No GSM modem is configured")
    inbound(server, "+79161234567", "again")
    expect(rows).to_have_count(2)
    admin = console(server, "admin").page
    admin.goto(f"{server.url}/sms")
    expect(admin.locator("[data-role=sms-list] .sms-row")).to_have_count(3)
    expect(admin.locator("[data-role=sms-optout]")).to_contain_text("Nobody opted out")


def test_an_sms_through_an_emulated_modem_turns_delivered_live(live_server, config, tmp_path,
                                                               console) -> None:
    server, _emulators = server_with_modem(live_server, config, tmp_path)
    d = demo(server)
    tab = console(server, "maria")
    page = tab.page
    page.goto(f"{server.url}/sms")
    modem = page.locator("[data-role=sms-pool] .modem-row[data-modem=gsm1]")
    expect(modem).to_contain_text("MTS RUS")
    page.goto(f"{server.url}/clients/{d.clients['ООО «Ромашка»'].id}")
    compose = page.locator("[data-role=sms-compose]")
    compose.locator("textarea").fill("Ваш заказ готов, забирайте в любое время 🙂 " * 2)
    expect(compose.locator("[data-role=sms-counter]")).to_have_attribute("data-parts", "2")
    compose.locator("button[type=submit]").click()
    row = page.locator("[data-role=client-sms] .sms-row").first
    expect(row.locator("[data-role=sms-state]")).to_have_text("Delivered", timeout=20_000)
    row.locator("[data-action=sms-detail]").click()
    parts = page.locator("[data-role=sms-detail] [data-role=sms-parts] li")
    expect(parts).to_have_count(2)
    expect(parts.nth(1)).to_contain_text("Delivered")

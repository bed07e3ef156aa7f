"""The campaigns page in real Chromium: a draft from the form, its preview, start and progress,
pause and cancel, the CSV link; a secretary does not see the page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.server import LiveServer
from tests.e2e.test_console import demo


def test_campaign_from_form_to_report(server: LiveServer, console) -> None:
    demo(server)
    tab = console(server, "admin")
    page = tab.page
    page.click("[data-nav=campaigns]")
    form = page.locator("[data-role=camp-form]")
    form.locator("input[name=name]").fill("Winter <b>offer</b>")
    form.locator("textarea[name=template]").fill("Hi ")
    form.locator("button", has_text="{contact.first_name}").click()
    form.locator("textarea[name=template]").press("End")
    form.locator("textarea[name=template]").type(", 10% off at {client.name}")
    form.locator("select[name=custom_field]").select_option("segment")
    form.locator("input[name=custom_value]").fill("demo")
    form.locator("input[name=window_start]").fill("00:00")
    form.locator("input[name=window_end]").fill("23:59")
    form.locator("[data-action=camp-preview]").click()
    preview = page.locator("[data-role=camp-preview]")
    expect(preview.locator("[data-role=camp-count]")).to_have_attribute("data-count", "7")
    expect(preview.locator("li")).to_have_count(5)  # a few, rendered for their recipients
    expect(preview.locator("li").first).to_contain_text("Hi Boris, 10% off at Boris Kozlov")
    expect(preview.locator("li").first).to_have_attribute("data-encoding", "gsm7")
    form.locator("button[type=submit]").click()
    detail = page.locator("[data-role=camp-detail]")
    expect(detail.locator("[data-role=camp-state]")).to_have_attribute("data-state", "draft")
    expect(detail.locator("h3")).to_contain_text("Winter <b>offer</b>")  # text, never HTML
    detail.locator("[data-action=camp-start]").click()
    expect(detail.locator("[data-role=camp-state]")).to_have_attribute("data-state", "running")
    expect(detail.locator("[data-role=camp-report] dd[data-key=recipients]")).to_have_text("7")
    expect(detail.locator("tr.camp-recipient")).to_have_count(7)
    detail.locator("[data-action=camp-pause]").click()
    expect(detail.locator("[data-role=camp-state]")).to_have_attribute("data-state", "paused")
    detail.locator("[data-action=camp-cancel]").click()
    expect(detail.locator("[data-role=camp-state]")).to_have_attribute("data-state", "cancelled")
    expect(detail.locator("[data-role=camp-report] dd[data-key=cancelled]")).to_have_text("7")
    csv = detail.locator("[data-role=camp-csv]")
    href = csv.get_attribute("href")
    assert href is not None and href.endswith("/report.csv")
    assert page.locator("main b").count() == 0
    assert tab.errors == []


def test_secretary_has_no_campaigns_page(server: LiveServer, console) -> None:
    tab = console(server, "secretary")
    expect(tab.page.locator("[data-nav=campaigns]")).to_be_hidden()
    tab.page.goto(server.url + "/campaigns")
    tab.page.wait_for_selector("body[data-ready=true]")
    # the API's 403, in the secretary's language (ru): "Недостаточно прав"
    expect(tab.page.locator("main .error").first).to_have_text("Недостаточно прав")

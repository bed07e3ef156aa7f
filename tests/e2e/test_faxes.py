"""Faxes in real Chromium: send a PDF from the client card over the loopback fax line, watch
it go page by page, and see it arrive in the inbox with its PDF."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from callcenter.config import Config, FaxLineConfig
from tests.e2e.conftest import Console
from tests.fax.documents_fixtures import make_encrypted_pdf, make_pdf


def test_send_a_fax_from_the_client_card_and_see_it_in_the_inbox(
        config: Config, live_server: Any, console: Any, tmp_path: Path) -> None:
    config.fax = [FaxLineConfig(name="fax", kind="loopback", page_seconds=0.4,
                                local_station_id="+7 495 111-00-00")]
    server = live_server()
    clients = server.call(lambda: server.services.store.list_clients(limit=100))
    romashka = next(c for c in clients if c.name == "ООО «Ромашка»")
    tab: Console = console(server, "admin")
    page = tab.page
    page.goto(f"{server.url}/clients/{romashka.id}")
    form = page.locator("[data-role=fax-form]")
    expect(form).to_be_visible()
    # The client's number is offered; a bad document is refused with its reason.
    expect(page.locator("[data-role=fax-number]")).to_have_value("+79161234567")
    page.set_input_files("[data-role=fax-file]", str(make_encrypted_pdf(tmp_path / "x.pdf")))
    expect(page.locator("[data-role=fax-rejected]")).to_contain_text("cannot be faxed")
    expect(page.locator("[data-action=send-fax]")).to_be_disabled()

    page.set_input_files("[data-role=fax-file]", str(make_pdf(tmp_path / "invoice.pdf", 3)))
    # the upload is converted (ghostscript in a worker process) before its pages show; on a
    # loaded machine that takes longer than the default 5 s wait
    expect(page.locator("[data-role=fax-doc-pages]")).to_contain_text("3 page(s)",
                                                                      timeout=30_000)
    expect(page.locator("[data-role=fax-preview] img")).to_have_js_property("naturalWidth", 240)
    page.click("[data-action=send-fax]")
    row = page.locator("[data-role=client-faxes] tr[data-fax-job]").first
    # Progress per page, then sent with every page confirmed.
    expect(row.locator("[data-role=fax-state]")).to_contain_text(
        re.compile(r"sending page [23] of 3"))
    expect(row).to_have_attribute("data-state", "sent", timeout=15_000)
    expect(row.locator("[data-role=fax-pages]")).to_have_text("3 of 3")
    expect(row.locator("[data-role=fax-result]")).to_contain_text("all 3 pages confirmed")

    page.click("a[data-nav=faxes]")
    inbox = page.locator("[data-role=fax-inbox] tr[data-fax-in]")
    expect(inbox).to_have_count(1)  # the page reloads on the fax.received event
    expect(inbox.first.locator("[data-role=fax-pages]")).to_have_text("3")
    expect(inbox.first).to_contain_text("ООО «Ромашка»")
    link = inbox.first.locator("[data-role=fax-pdf]")
    href = link.get_attribute("href")
    assert href is not None
    response = page.request.get(server.url + href)
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF")

    # The client's history has both faxes, in words.
    page.goto(f"{server.url}/clients/{romashka.id}")
    faxes = page.locator(".interaction.kind-fax")
    expect(faxes.filter(has_text="Fax to")).to_contain_text(
        "Fax to +79161234567: sent: all 3 pages confirmed")
    expect(faxes.filter(has_text="Fax received")).to_contain_text(
        "Fax received from +79161234567, 3 page(s)")

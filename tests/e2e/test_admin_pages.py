"""The administration pages in real Chromium: users (add, role, disable, password reset,
hand-over, the last admin) and the audit log (filters and the CSV link)."""

from __future__ import annotations

import csv
import io
import re

from playwright.sync_api import expect

from tests.e2e.conftest import Console
from tests.e2e.server import LiveServer


def test_users_page(server: LiveServer, console) -> None:
    tab: Console = console(server, "admin")
    page = tab.page
    page.locator("a[data-nav=users]").click()
    expect(page.locator("h1")).to_have_text("Users")
    form = page.locator("form[data-role=add-user]")
    form.locator("input[name=login]").fill("olga")
    form.locator("input[name=name]").fill("Olga <b>P</b>")
    form.locator("select[name=role]").select_option("secretary")
    form.locator("input[name=extension]").fill("155")
    form.locator("[data-action=generate]").click()
    password = form.locator("input[name=password]").input_value()
    assert len(password) >= 12
    form.locator("button[type=submit]").click()
    row = page.locator('.user-row[data-login="olga"]')
    expect(row).to_have_count(1)
    expect(row.locator("input[name=name]")).to_have_value("Olga <b>P</b>")  # text, not HTML
    # role and extension
    row.locator("select[name=role]").select_option("manager")
    row.locator("input[name=extension]").fill("156")
    row.locator("[data-action=save]").click()
    expect(page.locator(".toast").last).to_contain_text("olga saved")
    # disable, then enable
    row.locator("[data-action=disable]").click()
    expect(row.locator("[data-role=state]")).to_have_text("disabled")
    row.locator("[data-action=enable]").click()
    expect(row.locator("[data-role=state]")).to_have_text("enabled")
    # password reset with a generated one-time password
    row.locator("[data-action=reset]").click()
    reset = row.locator("form[data-role=reset-form]")
    reset.locator("[data-action=generate]").click()
    reset.locator("button[type=submit]").click()
    expect(page.locator(".toast").last).to_contain_text("Password of olga reset")
    # the last admin cannot be disabled: the reason is shown, nothing changes
    admin_row = page.locator('.user-row[data-login="admin"]')
    admin_row.locator("[data-action=disable]").click()
    expect(page.locator(".toast-error")).to_contain_text("last enabled admin")
    expect(admin_row.locator("[data-role=state]")).to_have_text("enabled")
    # hand-over of Maria's clients and open tasks to Dmitry
    maria_row = page.locator('.user-row[data-login="maria"]')
    maria_row.locator("[data-action=handover]").click()
    handover = maria_row.locator("form[data-role=handover-form]")
    handover.locator("select[name=to_user]").select_option(label="Dmitry Volkov (dmitry)")
    handover.locator("button[type=submit]").click()
    expect(page.locator(".toast").last).to_contain_text(
        re.compile(r"\d+ open tasks and [1-9]\d* clients handed over"))
    store = server.services.store
    users = {u.login: u for u in server.call(store.list_users)}
    assert users["olga"].role.value == "manager" and users["olga"].extension == "156"
    assert server.call(lambda: store.list_clients(manager_id=users["maria"].id)) == []


def test_audit_page_filters_and_csv(server: LiveServer, console) -> None:
    tab: Console = console(server, "admin")
    page = tab.page
    # a few changes to look at: a client renamed by the admin, a user created
    csrf = page.evaluate("() => fetch('/api/session').then((r) => r.json())")["csrf_token"]
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    created = page.request.post(server.url + "/api/users", headers=headers, data={
        "login": "=cmd", "name": "Formula", "role": "secretary", "password": "Long-enough-1"})
    assert created.status == 201, created.text()
    client = page.request.get(server.url + "/api/clients").json()[0]
    page.request.patch(server.url + f"/api/clients/{client['id']}", headers=headers,
                       data={"notes": "audited note"})
    page.locator("a[data-nav=audit]").click()
    expect(page.locator("h1")).to_have_text("Audit log")
    rows = page.locator(".audit-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("audited note")
    expect(rows.first).to_contain_text("admin")
    # filter: kind "user"
    page.locator("select[name=kind]").select_option("user")
    page.locator("form.filters button[type=submit]").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-kind", "user")
    expect(rows.first).to_contain_text("••••")  # the password is masked
    link = page.locator("a[data-role=csv]")
    expect(link).to_have_attribute("href", re.compile(r"^/api/audit\.csv\?target_kind=user$"))
    text = page.request.get(server.url + link.get_attribute("href")).text()
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["target_kind"] for r in table] == ["user"]
    assert '"login": "\'=cmd"' not in table[0]["after"] and "=cmd" in table[0]["after"]
    assert "Long-enough-1" not in text
    # a period with nothing in it
    page.locator("input[name=until]").fill("2000-01-01")
    page.locator("form.filters button[type=submit]").click()
    expect(page.locator("[data-role=audit]")).to_contain_text("No changes found")


def test_admin_pages_are_not_offered_to_others(server: LiveServer, console) -> None:
    tab: Console = console(server, "maria")
    page = tab.page
    expect(page.locator("a[data-nav=users]")).to_be_hidden()
    expect(page.locator("a[data-nav=audit]")).to_be_hidden()
    page.goto(server.url + "/admin/audit")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator(".error, .toast-error").first).to_contain_text("not allowed")


def test_one_time_password_leads_to_choosing_ones_own(server: LiveServer, console,
                                                      browser) -> None:
    tab: Console = console(server, "admin")
    page = tab.page
    page.locator("a[data-nav=users]").click()
    row = page.locator('.user-row[data-login="dmitry"]')
    row.locator("[data-action=reset]").click()
    reset = row.locator("form[data-role=reset-form]")
    expect(reset.locator("input[name=one_time]")).to_be_checked()
    reset.locator("[data-action=generate]").click()
    once = reset.locator("input[name=password]").input_value()
    reset.locator("button[type=submit]").click()
    expect(page.locator(".toast").last).to_contain_text("Password of dmitry reset")

    context = browser.new_context(locale="en-US")
    try:
        other = context.new_page()
        other.goto(server.url + "/login")
        other.fill("#login", "dmitry")
        other.fill("#password", once)
        other.click("#login-form button[type=submit]")
        other.wait_for_selector("body[data-ready=true]")
        form = other.locator("form[data-role=password-change]")
        expect(form).to_be_visible()
        expect(other.locator(".dock .card")).to_have_count(0)
        form.locator("input[name=current]").fill(once)
        form.locator("input[name=new]").fill("Dmitry-own-pass-1")
        form.locator("input[name=repeat]").fill("Dmitry-own-pass-2")
        form.locator("button[type=submit]").click()
        expect(other.locator("[data-role=password-error]")).to_have_text(
            "Новые пароли не совпадают")  # Dmitry reads Russian
        form.locator("input[name=repeat]").fill("Dmitry-own-pass-1")
        form.locator("button[type=submit]").click()
        other.wait_for_selector("#conn[data-state=online]", timeout=10_000)
        expect(other.locator("form[data-role=password-change]")).to_have_count(0)
    finally:
        context.close()


class _Endpoints:
    async def endpoints(self) -> list[tuple[str, str]]:
        return [("101", "Not in use"), ("150", "Unavailable"), ("trunk", "Not in use")]


def test_routing_page(server: LiveServer, console) -> None:
    routing = server.services.routing
    server.call(lambda: setattr(routing, "sources", lambda: {"office": _Endpoints()}))
    tab: Console = console(server, "admin")
    page = tab.page
    page.locator("a[data-nav=routing]").click()
    expect(page.locator("h1")).to_have_text("Routing")
    new = page.locator('form.group-form[data-group="new"]')
    new.locator("input[name=name]").fill("Front desk")
    new.locator("input[name=dids]").fill("+7 495 111-00-00, 74952220000")
    new.locator("label", has_text="Svetlana Orlova").locator("input").check()
    new.locator("button[type=submit]").click()
    expect(page.locator(".toast", has_text="Group Front desk saved")).to_have_count(1)
    saved = page.locator('form.group-form:not([data-group="new"])')
    expect(saved).to_have_count(1)
    expect(saved.locator("input[name=name]")).to_have_value("Front desk")
    expect(saved.locator("input[name=dids]")).to_have_value("+7 495 111-00-00, 74952220000")
    # office hours and the region
    settings = page.locator("form[data-role=routing-settings]")
    settings.locator("input[name=timezone]").fill("Europe/Moscow")
    settings.locator("input[name=mon]").fill("09:00-13:00, 14:00-18:00")
    settings.locator("input[name=holidays]").fill("2026-12-31")
    settings.locator("button[type=submit]").click()
    expect(page.locator(".toast", has_text="Region and office hours saved")).to_have_count(1)
    # read on the server's loop, where the routing state changes
    hours, shown = server.call(lambda: (routing.hours, routing.settings()))
    assert hours is not None and hours.timezone == "Europe/Moscow"
    assert shown.default_region_source == "config"  # not pinned by the save
    settings = page.locator("form[data-role=routing-settings]")
    settings.locator("input[name=timezone]").fill("Mars/Base")
    settings.locator("button[type=submit]").click()
    expect(page.locator(".toast-error")).to_contain_text("unknown time zone")
    # extensions from the PBX: 150 goes to Maria
    page.locator("[data-action=import]").click()
    endpoints = page.locator("[data-role=endpoints] select[name=user]")
    expect(endpoints).to_have_count(2)  # the trunk is no extension
    page.locator('select[data-extension="150"]').select_option(label="Maria Ivanova")
    page.locator("[data-action=apply]").click()
    expect(page.locator(".toast", has_text="Extensions applied, users changed: 1")
           ).to_have_count(1)
    users = {u.login: u for u in server.call(server.services.store.list_users)}
    assert users["maria"].extension == "150"
    groups = server.call(server.services.store.list_groups)
    assert [(g.name, g.members) for g in groups] == [("Front desk", [users["secretary"].id])]

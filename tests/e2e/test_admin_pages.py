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

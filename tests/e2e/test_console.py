"""The console in real Chromium against the real app, fed by call events published on the bus
(the payloads of docs/events.md). The trace-driven tests (test_traces.py) add the PBX."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import Console
from tests.e2e.events import FakeCall, client_match, other_match
from tests.e2e.server import LiveServer

XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Demo:
    users: dict[str, Any]
    clients: dict[str, Any]

    def call_for(self, client: str, call_id: str, number: str, name: str) -> FakeCall:
        c = self.clients[client]
        manager = next(u for u in self.users.values() if u.id == c.manager_id)
        return FakeCall(call_id, number, name, client_match(
            c.id, c.name, c.contacts[0].id, c.contacts[0].name, manager.id, manager.name,
            manager.extension or ""))


def demo(server: LiveServer) -> Demo:
    store = server.services.store
    users = server.call(store.list_users)
    clients = server.call(lambda: store.list_clients(limit=100))
    return Demo({u.login: u for u in users}, {c.name: c for c in clients})


def publish(server: LiveServer, event: tuple[str, dict[str, Any]]) -> int:
    return server.publish(*event)


def test_screen_pop_follows_the_call_to_its_end(server: LiveServer, console) -> None:
    d = demo(server)
    tab: Console = console(server, "secretary")  # Russian
    page = tab.page
    expect(page.locator("#conn")).to_have_text("онлайн")
    call = d.call_for("ООО «Ромашка»", "office:100.1", "+79161234567", "Ivan Petrov")
    call.call["caller"]["display"] = "8 (916) 123-45-67"
    publish(server, call.started())
    publish(server, call.ringing("101"))
    card = tab.card("office:100.1")
    expect(card).to_have_attribute("data-state", "ringing")
    expect(card).to_have_class(re.compile(r"\bpop\b"))  # rings at the secretary
    expect(card.locator(".caller-number")).to_have_text(re.compile(r"8 \(916\) 123-45-67"))
    expect(card.locator("[data-role=caller-name]")).to_have_text("Ivan Petrov")
    expect(card.locator(".client-link")).to_have_text("ООО «Ромашка»")
    href = f"/clients/{call.match['client']['id']}"
    expect(card.locator(".client-link")).to_have_attribute("href", href)
    expect(card.locator("[data-role=manager]")).to_contain_text("Maria Ivanova")
    expect(card.locator("[data-role=manager] .presence")).to_have_text("свободен")
    expect(card.locator(".list-block")).to_have_count(2)  # last contacts, open tasks
    transfer = card.locator("[data-action=transfer-manager]")
    expect(transfer).to_have_text("Перевести на Maria Ivanova")

    publish(server, call.answered("101", d.users["secretary"].id, "Svetlana Orlova"))
    expect(card).to_have_attribute("data-state", "answered")
    expect(card.locator("[data-role=answered-by]")).to_contain_text("Svetlana Orlova")
    expect(card).not_to_have_class(re.compile(r"\bpop\b"))
    publish(server, call.transferred("blind", "101", "102", "busy"))
    expect(card.locator("[data-role=transfer]")).to_contain_text("линия занята")
    publish(server, call.ended(talk=65))
    expect(card).to_have_attribute("data-state", "ended")
    expect(card.locator(".card-status")).to_contain_text("1:05")
    expect(card.locator("[data-action]")).to_have_count(0)  # nothing to do on a finished call
    card.locator(".dismiss").click()
    expect(card).to_have_count(0)


def test_tie_is_selectable_and_unknown_caller_becomes_a_client(server: LiveServer,
                                                                console) -> None:
    d = demo(server)
    tab = console(server, "maria")  # English
    page = tab.page
    smirnova, vector = d.clients["Smirnova & Partners"], d.clients["Vector Trade"]
    tie = FakeCall("office:200.1", "+79031234567", "Somebody", other_match("tie", [
        {"client_id": smirnova.id, "client_name": smirnova.name,
         "contact_id": smirnova.contacts[0].id, "contact_name": "Anna Smirnova",
         "manager_id": d.users["maria"].id},
        {"client_id": vector.id, "client_name": vector.name, "contact_id": vector.contacts[0].id,
         "contact_name": "Elena Popova", "manager_id": d.users["dmitry"].id},
    ]))
    admin = console(server, "admin")  # English too, and sees every client
    publish(server, tie.ringing("102"))
    card = admin.card("office:200.1")
    expect(card.locator(".tie .warning")).to_contain_text("Several contacts")
    expect(card.locator(".candidate")).to_have_count(2)
    card.locator(".candidate", has_text="Vector Trade").click()
    expect(card.locator(".client-link")).to_have_text("Vector Trade")
    expect(card.locator("[data-role=manager]")).to_contain_text("Dmitry Volkov")
    expect(card.locator("[data-action=transfer-manager]")).to_have_text("Transfer to Dmitry Volkov")
    # Maria is a manager: Dmitry's client is not hers to see, not even as a tie candidate.
    # What is left is her own client's match, with nothing to choose and no tie warning.
    card = tab.card("office:200.1")
    expect(card.locator(".client-link")).to_have_text("Smirnova & Partners")
    expect(card.locator("[data-role=manager]")).to_contain_text("Maria Ivanova")
    expect(card.locator(".candidate")).to_have_count(0)
    expect(card.locator(".warning")).to_have_count(0)
    expect(card).not_to_contain_text("Vector Trade")
    # A switchboard shared by many: the server lists 20 candidates at most and counts them all.
    crowd = FakeCall("office:200.4", "+74957770000", "", other_match("tie", [
        {"client_id": c.id, "client_name": c.name, "contact_id": None, "contact_name": None,
         "manager_id": c.manager_id} for c in (smirnova, vector)]))
    crowd.match["candidates_total"] = 25
    publish(server, crowd.ringing("101"))
    card = admin.card("office:200.4")
    expect(card.locator(".tie .warning")).to_contain_text("(25)")
    expect(card.locator(".candidate")).to_have_count(2)
    expect(card.locator(".candidates-more")).to_have_text("…and 23 more")

    stranger = FakeCall("office:200.2", "+74997770000", "Unknown Caller", other_match("unknown"))
    publish(server, stranger.ringing("102"))
    card = tab.card("office:200.2")
    form = card.locator("form.new-client")
    expect(form.locator("input[name=phone]")).to_have_value("+74997770000")
    expect(form.locator("input[name=contact]")).to_have_value("Unknown Caller")
    form.locator("input[name=name]").fill("Stranger Ltd")
    form.locator("button[type=submit]").click()
    expect(card.locator(".client-link")).to_have_text("Stranger Ltd")
    found = page.request.get(server.url + "/api/lookup?number=%2B74997770000").json()
    assert [c["client_name"] for c in found["candidates"]] == ["Stranger Ltd"]

    withheld = FakeCall("office:200.3", "", "", other_match("withheld"), withheld=True)
    publish(server, withheld.ringing("102"))
    card = tab.card("office:200.3")
    expect(card.locator(".caller-number")).to_have_text("Number withheld")


def test_stranger_strings_are_text_never_html(server: LiveServer, console) -> None:
    d = demo(server)
    tab = console(server, "secretary")
    page = tab.page
    page.evaluate("window.__xss = false")
    evil = FakeCall("office:300.1", "+79161234567", XSS, other_match("unknown"))
    match = client_match(1, f"{XSS}<script>window.__xss=true</script>", 1, XSS,
                         d.users["maria"].id, XSS, "102")
    evil_client = FakeCall("office:300.2", "+79161111111", XSS, match)
    publish(server, evil.ringing("101"))
    publish(server, evil_client.ringing("101"))
    expect(tab.card("office:300.1").locator("[data-role=caller-name]")).to_have_text(XSS)
    card = tab.card("office:300.2")
    expect(card.locator(".client-link")).to_have_text(f"{XSS}<script>window.__xss=true</script>")
    expect(card.locator(".manager-name")).to_have_text(XSS)
    # A client created with an HTML name shows as text on its card page too.
    created = page.request.post(server.url + "/api/clients", data={"name": XSS},
                                headers={"X-CSRF-Token": csrf(page, server)})
    assert created.status == 201
    page.goto(f"{server.url}/clients/{created.json()['id']}")
    expect(page.locator("[data-role=client-name]")).to_have_text(XSS)
    # Everything the page fetched has been rendered: an injected element would be in the DOM.
    page.wait_for_load_state("networkidle")
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
    assert page.evaluate("window.__xss") in (False, None)
    assert tab.dialogs == []


def csrf(page: Any, server: LiveServer) -> str:
    return page.request.get(server.url + "/api/session").json()["csrf_token"]


def test_manager_sees_only_own_calls_and_clients(server: LiveServer, console) -> None:
    d = demo(server)
    tab = console(server, "maria")
    page = tab.page
    dmitry_call = d.call_for("Olga Sokolova", "office:400.1", "89035556677", "Olga")
    maria_call = d.call_for("Smirnova & Partners", "office:400.2", "+79161111111", "Anna")
    publish(server, dmitry_call.ringing("103"))
    publish(server, maria_call.ringing("101"))  # not at her phone, but her client
    expect(tab.card("office:400.2")).to_be_visible()
    expect(tab.card("office:400.1")).to_have_count(0)
    # The server refuses another manager's client; the card page says so.
    olga = d.clients["Olga Sokolova"]
    assert page.request.get(f"{server.url}/api/clients/{olga.id}").status == 403
    page.goto(f"{server.url}/clients/{olga.id}")
    expect(page.locator("[data-role=client-error]")).to_have_text(
        "This client belongs to another manager.")
    own = d.clients["Smirnova & Partners"]
    page.goto(f"{server.url}/clients/{own.id}")
    expect(page.locator("[data-role=client-name]")).to_have_text("Smirnova & Partners")


def test_reconnect_resumes_and_a_card_never_sticks_in_ringing(server: LiveServer,
                                                              console) -> None:
    d = demo(server)
    tab = console(server, "secretary")
    page = tab.page
    call = d.call_for("Boris Kozlov", "office:500.1", "89162222222", "Boris")
    publish(server, call.ringing("101"))
    card = tab.card("office:500.1")
    expect(card).to_have_attribute("data-state", "ringing")
    # The network drops; the call is answered and ends meanwhile.
    page.evaluate("window.callcenterConsole.socket.ws.close()")
    publish(server, call.answered("101", d.users["secretary"].id, "Svetlana Orlova"))
    publish(server, call.missed("abandoned"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=10_000)
    expect(card).to_have_attribute("data-state", "missed")
    assert tab.entry_types("office:500.1") == ["call.ringing", "call.answered", "call.missed"]

    # Too much missed: the server answers "reset", the console reloads the live calls, and a
    # call the server no longer has is dropped rather than left ringing.
    server.app.state.hub.max_replay = 0  # type: ignore[union-attr]
    ghost = d.call_for("Sidorov Build", "office:500.2", "89165554433", "Pavel")
    publish(server, ghost.ringing("101"))
    expect(tab.card("office:500.2")).to_have_attribute("data-state", "ringing")
    page.evaluate("window.callcenterConsole.socket.ws.close()")
    publish(server, ghost.answered("101", None, None))
    expect(tab.card("office:500.2")).to_have_count(0, timeout=10_000)
    expect(page.locator("#conn")).to_have_attribute("data-state", "online")


def test_pages_languages_and_logout(server: LiveServer, console) -> None:
    d = demo(server)
    tab = console(server, "maria")
    page = tab.page
    expect(page.locator("h1")).to_have_text("Hello, Maria Ivanova")
    # Tasks: a callback task, done and undone from the tasks page.
    token = csrf(page, server)
    task = page.request.post(server.url + "/api/tasks", headers={"X-CSRF-Token": token}, data={
        "title": "Call back Anna", "kind": "callback", "phone": "+79161111111",
        "client_id": d.clients["Smirnova & Partners"].id}).json()
    page.click("nav a[data-nav=tasks]")
    row = page.locator(f'.task-row[data-task-id="{task["id"]}"]')
    expect(row).to_contain_text("Call back Anna")
    expect(row.locator("button.phone")).to_have_text(re.compile("79161111111"))
    row.locator("[data-action=done]").click()
    expect(row).to_have_count(0)  # the list shows open tasks
    page.select_option("select[name=show]", "done")
    row.locator("[data-action=undo]").click()
    page.select_option("select[name=show]", "open")
    expect(row).to_be_visible()
    # Client card: contacts, custom fields, a note.
    client = d.clients["Smirnova & Partners"]
    page.goto(f"{server.url}/clients/{client.id}")
    expect(page.locator(".details")).to_contain_text("demo")  # custom field "segment"
    contacts = page.locator(".panel", has_text="Contacts and phones")
    expect(contacts.locator("button.phone", has_text="+79161111111")).to_be_visible()
    page.fill("textarea[name=note]", "Wants a discount <b>now</b>")
    page.click(".note-form button")
    expect(page.locator(".history")).to_contain_text("Wants a discount <b>now</b>")
    # Calls page with filters (the log is empty: no PBX here).
    page.click("nav a[data-nav=calls]")
    page.check("input[name=missed]")
    page.click(".filters button[type=submit]")
    expect(page.locator("[data-role=call-log]")).to_contain_text("No calls")
    # Language: switch to Russian; it is stored on the user.
    page.select_option("#lang", "ru")
    expect(page.locator("nav a[data-nav=calls]")).to_have_text("Звонки")
    assert server.call(server.services.store.get_user, d.users["maria"].id).language == "ru"
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login"))
    assert page.request.get(server.url + "/api/session").status == 401


def test_security_headers_and_websocket_needs_a_session(server: LiveServer, console) -> None:
    r = httpx.get(server.url + "/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert httpx.get(server.url + "/calls").status_code == 303  # pages need a session
    tab = console(server, "secretary")
    page = tab.page
    # A browser without the session cookie is refused with 4401.
    other = tab.context.browser.new_context()
    try:
        anon = other.new_page()
        anon.goto(server.url + "/login")
        code = anon.evaluate("""() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws`);
            ws.onclose = (ev) => resolve(ev.code);
        })""")
        assert code == 4401
    finally:
        other.close()
    # In the logged-in tab the socket is live.
    expect(page.locator("#conn")).to_have_attribute("data-state", "online")


def test_click_to_call_progress_and_failure(server: LiveServer, console) -> None:
    d = demo(server)
    tab = console(server, "maria")
    page = tab.page
    maria = d.users["maria"]
    # No PBX line in this app: the click is refused with a clear message.
    page.fill("input[name=search]", "Vector")
    page.locator(".client-result button.phone").first.click()
    expect(page.locator(".toast-error")).to_contain_text("Could not place the call")
    # The progress of a click-to-call, as the line reports it.
    call = FakeCall("office:600.1", "102", "Maria", other_match("unknown"), direction="outbound",
                    called="89031234567", originated_by=maria.id)
    publish(server, call.ringing("102"))
    card = tab.card("office:600.1")
    expect(card.locator(".badge-dir")).to_have_text("Click-to-call")
    expect(card.locator(".progress")).to_have_text("Your phone (ext. 102) is ringing — pick it up")
    publish(server, call.answered("102", maria.id, maria.name))
    expect(card.locator(".progress")).to_have_text("Connected, calling 89031234567")
    publish(server, call.ended(talk=6))
    expect(card.locator(".progress")).to_have_text("Call finished")
    unanswered = FakeCall("office:600.2", "102", "Maria", other_match("unknown"),
                          direction="outbound", called="89031234567", originated_by=maria.id)
    publish(server, unanswered.ringing("102"))
    publish(server, unanswered.failed("no_answer"))
    expect(tab.card("office:600.2").locator(".progress")).to_have_text(
        "You did not pick up your phone")

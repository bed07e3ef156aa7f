"""The report pages in real Chromium: each report opens, a filter changes, and the chart (read
from the Chart.js instance) agrees with the table under it and with the API; strangers' text
stays text; a secretary sees only her reports; the client card shows its summary; the PNG
download works. Writes docs/screenshot-reports.png (the manager report, for the README)."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from callcenter.demo import DEMO_PASSWORD
from callcenter.models import Role
from callcenter.passwords import hash_password
from callcenter.reports.export import format_value
from tests.e2e.conftest import DOCS, Console
from tests.e2e.server import LiveServer
from tests.reports import dataset

UTC_ZONE = ZoneInfo("UTC")
PERIOD = "from=2026-03-26&to=2026-04-01"
XSS = '<img src=x onerror="window.__xss=1">Anna'


@contextlib.asynccontextmanager
async def office(services: Any, demo: bool) -> Any:
    """The known-answer tests' office, and users who can log in through the form."""
    store = services.store
    o = await dataset.build(store)
    await store.update_user(o.users["anna"], name=XSS)
    for login, role in (("admin", Role.ADMIN), ("secretary", Role.SECRETARY)):
        await store.create_user(login, login.title(), role, None,
                                password_hash=hash_password(DEMO_PASSWORD))
    services.extra["office"] = o
    yield


@pytest.fixture
def reports_server(config):
    config.reports.timezone = "Europe/Berlin"
    server = LiveServer(config, demo=False,
                        configure=lambda app: app.state.components.append(office)).start()
    try:
        yield server
    finally:
        server.stop()


CHART = """() => {
  const chart = window.Chart.getChart(document.querySelector('canvas[data-role=chart]'));
  return { type: chart.config.type, labels: chart.data.labels || [],
    datasets: chart.data.datasets.map((d) => ({ key: d.key, label: d.label, data: d.data })) };
}"""
TABLE = """() => {
  const table = document.querySelector('table[data-role=report-table]');
  if (!table) return { keys: [], rows: [] };
  const keys = [...table.querySelectorAll('thead th')].map((th) => th.dataset.key);
  const rows = [...table.querySelectorAll('tbody tr')].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) =>
      ({ value: td.dataset.value, text: td.textContent })));
  return { keys, rows };
}"""


def _wait_ready(page: Any, before: str | None = None) -> None:
    page.wait_for_function(
        "(before) => { const m = document.querySelector('#main .page');"
        " return !!m && m.dataset.state === 'ready' && m.dataset.generated !== before; }",
        arg=before, timeout=15_000)


def _generated(page: Any) -> str | None:
    return page.evaluate(
        "() => (document.querySelector('#main .page') || {dataset: {}}).dataset.generated")


def _api(page: Any, url: str) -> dict:
    r = page.request.get(url)
    assert r.status == 200, r.text()
    return r.json()


def _value(raw: Any) -> str:
    """A JSON value as JavaScript's String() writes it (data-value of a cell)."""
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _check_agreement(page: Any, server: LiveServer, name: str) -> dict:
    chart, table = page.evaluate(CHART), page.evaluate(TABLE)
    search = page.evaluate("() => location.search")
    report = _api(page, f"{server.url}/api/reports/{name}{search}")
    keys = [c["key"] for c in report["columns"]]
    if not report["rows"]:  # an empty period: the page says so, the chart is empty too
        assert table["keys"] == [] and page.locator("[data-role=report-table-empty]").count()
        assert all(d["data"] == [] for d in chart["datasets"])
        return report
    assert table["keys"] == keys
    # the table is the API's rows, cell for cell
    assert [[c["value"] for c in row] for row in table["rows"]] == [
        [_value(v) for v in row] for row in report["rows"]]
    # and the figures it shows are those values (a formatter showing wrong numbers fails)
    for row, api_row in zip(table["rows"], report["rows"], strict=True):
        for column, cell, raw in zip(report["columns"], row, api_row, strict=True):
            if raw is None or column["kind"] not in ("int", "duration_s", "percent"):
                continue
            shown = cell["text"].replace(",", "").replace("\u00a0", " ")
            expected = (str(raw) if column["kind"] == "int" else
                        format_value(column["kind"], raw, UTC_ZONE, str))
            assert shown == expected, (column["key"], cell["text"], raw)
    spec = report["chart"]
    if spec["kind"] == "heatmap":
        assert chart["type"] == "matrix"
        (points,) = chart["datasets"]
        xi, yi, vi = keys.index(spec["x"]), keys.index(spec["y"]), keys.index(spec["value"])
        cells = {(p["x"], p["y"]): p["v"] for p in points["data"]}
        table_cells = {(row[xi]["text"], row[yi]["text"]): row[vi]["value"]
                       for row in table["rows"]}
        assert {k: _value(v) for k, v in cells.items()} == table_cells
        assert len(cells) == len(report["rows"]) == 7 * 24
    else:
        xi = keys.index(spec["x"])
        assert chart["labels"] == [row[xi]["text"] for row in table["rows"]]
        assert [d["key"] for d in chart["datasets"]] == spec["series"]
        for ds in chart["datasets"]:
            ci = keys.index(ds["key"])
            assert [_value(v) for v in ds["data"]] == [row[ci]["value"] for row in table["rows"]]
            assert ds["data"] == [row[ci] for row in report["rows"]]
    return report


def test_every_report_chart_and_table_agree(reports_server: LiveServer, console) -> None:
    tab: Console = console(reports_server, "admin")
    page = tab.page
    expect(page.locator("a[data-nav=reports]")).to_be_visible()
    page.goto(f"{reports_server.url}/reports/calls_by_manager?{PERIOD}")
    page.wait_for_selector("body[data-ready=true]")
    _wait_ready(page)
    names = page.locator(".report-tabs a").evaluate_all("(els) => els.map((a) => a.dataset.report)")
    assert names == ["calls_by_manager", "missed_calls", "load", "sms", "faxes"]
    figures = 0
    for name in names:
        before = _generated(page)
        page.locator(f'.report-tabs a[data-report="{name}"]').click()
        _wait_ready(page, before)
        assert page.evaluate("() => location.pathname") == f"/reports/{name}"
        report = _check_agreement(page, reports_server, name)
        figures += len(report["rows"])
        # change a filter: another grouping where the report has one, else a shorter period
        before = _generated(page)
        group_by = page.locator("select[name=group_by]")
        if group_by.count():
            options = group_by.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
            group_by.select_option(options[1])
            _wait_ready(page, before)
            assert f"group_by={options[1]}" in page.evaluate("() => location.search")
        else:
            page.fill("input[name=from]", "2026-03-29")
            page.locator("form[data-role=report-filters] button[type=submit]").click()
            _wait_ready(page, before)
            assert "from=2026-03-29" in page.evaluate("() => location.search")
        changed = _check_agreement(page, reports_server, name)
        assert changed["filter"] != report["filter"]
        # the export links carry the same filters
        href = page.locator("[data-role=export-csv]").get_attribute("href")
        assert href == f"/api/reports/{name}.csv" + page.evaluate("() => location.search")
    assert figures > 20  # the office's data is there, not empty tables


def test_strangers_text_png_and_screenshot(reports_server: LiveServer, console) -> None:
    tab: Console = console(reports_server, "admin")
    page = tab.page
    page.goto(f"{reports_server.url}/reports/calls_by_manager?{PERIOD}&group_by=user")
    _wait_ready(page)
    # a user's name full of HTML is a label in the chart and text in the table, never markup
    assert page.evaluate("() => window.__xss") is None
    assert XSS in page.evaluate(CHART)["labels"]
    expect(page.locator("table[data-role=report-table] td", has_text=XSS)).to_have_count(1)
    assert page.locator("table[data-role=report-table] img").count() == 0
    # PNG download of the chart
    with page.expect_download() as info:
        page.locator("[data-role=export-png]").click()
    download = info.value
    assert download.suggested_filename == "calls_by_manager_2026-03-26_2026-04-01.png"
    with open(download.path(), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # the README's picture, with people's names
    office_data = reports_server.services.extra["office"]
    store = reports_server.services.store
    for login, name in (("anna", "Anna Ivanova"), ("boris", "Boris Orlov"),
                        ("vera", "Vera Kozlova"), ("sec1", "Olga Smirnova"),
                        ("sec2", "Irina Popova")):
        reports_server.call(lambda uid=office_data.users[login], name=name:
                            store.update_user(uid, name=name))
    page.set_viewport_size({"width": 1800, "height": 1100})
    page.reload()
    _wait_ready(page)
    expect(page.locator("tfoot td").first).to_have_text("Total")
    page.locator("section.report").screenshot(path=str(DOCS / "screenshot-reports.png"))


def test_a_secretary_sees_her_reports_only_in_her_language(reports_server: LiveServer,
                                                           console) -> None:
    store = reports_server.services.store
    (user, _hash) = reports_server.call(lambda: store.user_by_login("secretary"))
    reports_server.call(lambda: store.update_user(user.id, language="ru"))
    tab: Console = console(reports_server, "secretary")
    page = tab.page
    page.locator("a[data-nav=reports]").click()
    _wait_ready(page)
    names = page.locator(".report-tabs a").evaluate_all("(els) => els.map((a) => a.dataset.report)")
    assert names == ["missed_calls", "load"]
    assert page.evaluate("() => location.pathname") == "/reports/missed_calls"
    expect(page.locator("a[data-nav=report_schedules]")).to_be_hidden()
    expect(page.locator(".report-tabs a.active")).to_have_text("Пропущенные звонки")
    expect(page.locator('table[data-role=report-table] th[data-key="missed"]')).to_have_text(
        "Пропущены")
    labels = [d["label"] for d in page.evaluate(CHART)["datasets"]]
    assert labels == ["Сброшены", "Без ответа", "В нерабочее время", "Прочие пропущенные"]


def test_client_card_summary(reports_server: LiveServer, console) -> None:
    tab: Console = console(reports_server, "admin")
    page = tab.page
    clients = _api(page, f"{reports_server.url}/api/clients")
    client = next(c for c in clients if c["name"] == "Client 0")
    page.goto(f"{reports_server.url}/clients/{client['id']}")
    box = page.locator("[data-role=client-summary]")
    expect(box.locator("dd[data-key=calls]")).to_be_visible()
    # the card asks for the last 365 days of the office's calendar
    end = page.evaluate("() => new Intl.DateTimeFormat('en-CA', {timeZone: 'Europe/Berlin',"
                        " year: 'numeric', month: '2-digit', day: '2-digit'}).format(new Date())")
    start = page.evaluate("(end) => { const d = new Date(end + 'T12:00:00Z');"
                          " d.setUTCDate(d.getUTCDate() - 364);"
                          " return d.toISOString().slice(0, 10); }", end)
    report = _api(page, f"{reports_server.url}/api/reports/client_summary?client={client['id']}"
                        f"&from={start}&to={end}&group_by=none")
    summary = report["sections"]["summary"]
    row = dict(zip([c["key"] for c in summary["columns"]], summary["rows"][0], strict=True))
    assert box.locator("dd[data-key=calls]").get_attribute("data-value") == str(row["calls"])
    assert box.locator("dd[data-key=open_tasks]").get_attribute("data-value") == str(
        row["open_tasks"])
    assert json.dumps(row)  # the row is plain JSON


def test_schedules_page_adds_a_schedule_and_smtp(reports_server: LiveServer, console) -> None:
    tab: Console = console(reports_server, "admin")
    page = tab.page
    page.locator("a[data-nav=report_schedules]").click()
    expect(page.locator("[data-role=smtp-missing]")).to_be_visible()
    form = page.locator("form[data-role=add-schedule]")
    form.locator("input[name=name]").fill("Monday <b>digest</b>")
    form.locator("input[value=load]").check()
    form.locator("textarea[name=recipients]").fill("boss@example.com, chief@example.com")
    form.locator("select[name=frequency]").select_option("weekly")
    form.locator("select[name=weekday]").select_option("0")
    form.locator("select[name=period]").select_option("last_7_days")
    form.locator("button[type=submit]").click()
    item = page.locator("li.schedule")
    expect(item).to_have_count(1)
    expect(item.locator("strong")).to_have_text("Monday <b>digest</b>")  # text, not markup
    expect(item).to_contain_text("boss@example.com, chief@example.com")
    smtp = page.locator("form[data-role=smtp]")
    smtp.locator("input[name=host]").fill("127.0.0.1")
    smtp.locator("input[name=password]").fill("pw-never-shown")
    smtp.locator("input[name=from_address]").fill("reports@example.com")
    smtp.locator("button[type=submit]").click()
    expect(page.locator("[data-role=smtp-missing]")).to_have_count(0)
    assert page.locator("form[data-role=smtp] input[name=password]").input_value() == ""
    (schedule,) = reports_server.call(reports_server.services.store.list_report_schedules)
    assert [r.value for r in schedule.reports] == ["missed_calls", "load"]
    assert schedule.weekday == 0 and schedule.recipients == ("boss@example.com",
                                                             "chief@example.com")

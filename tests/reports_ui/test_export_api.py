"""GET /api/reports/{name}.csv and .xlsx give the JSON route's figures with its rights; the
scheduled-report administration is admin-only, validated, audited, its password write-only."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.demo import DEMO_PASSWORD
from callcenter.models import Role
from callcenter.passwords import hash_password
from tests.conftest import Api
from tests.reports import dataset

PERIOD = {"from": "2026-03-26", "to": "2026-04-01"}
REPORTS = ["calls_by_manager", "missed_calls", "load", "sms", "faxes"]


@pytest.fixture
def office_api(config):
    """The generated office of the known-answer tests, with two users who can log in."""
    app = create_app(config, demo=False)
    with TestClient(app) as client:
        store = app.state.services.store
        client.portal.call(dataset.build, store)
        for login, role in (("admin", Role.ADMIN), ("secretary", Role.SECRETARY)):
            client.portal.call(lambda login=login, role=role: store.create_user(
                login, login.title(), role, None, password_hash=hash_password(DEMO_PASSWORD)))
        yield Api(client)


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _expected_csv_cell(kind: str, value) -> str:
    if value is None:
        return ""
    if kind == "percent":
        return str(round(value * 100, 2))
    if kind in ("int", "duration_s"):
        return str(value)
    return None  # text, label, datetime: checked elsewhere


@pytest.mark.parametrize("name", REPORTS)
def test_exports_have_the_same_figures_as_the_json(office_api: Api, name: str) -> None:
    office_api.login("admin")
    doc = office_api.get(f"/api/reports/{name}", params=PERIOD).json()
    r = office_api.get(f"/api/reports/{name}.csv", params=PERIOD)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == (
        f'attachment; filename="{name}_2026-03-26_2026-04-01.csv"')
    rows = _csv_rows(r.content)
    kinds = [c["kind"] for c in doc["columns"]]
    body = rows[1:1 + len(doc["rows"])]
    assert len(body) == len(doc["rows"])
    for got, want in zip(body, doc["rows"], strict=True):
        for kind, g, w in zip(kinds, got, want, strict=True):
            expected = _expected_csv_cell(kind, w)
            if expected is not None:
                assert g == expected, (name, kind, g, w)
    x = office_api.get(f"/api/reports/{name}.xlsx", params=PERIOD)
    assert x.status_code == 200, x.text
    sheet = load_workbook(io.BytesIO(x.content)).worksheets[0]
    for i, want in enumerate(doc["rows"], start=2):
        got = [c.value for c in sheet[i]]
        for kind, g, w in zip(kinds, got, want, strict=True):
            if kind in ("int", "percent"):
                assert g == w, (name, kind, g, w)
            elif kind == "duration_s" and w is not None:
                assert abs(g.total_seconds() - w) < 0.01


def test_some_report_has_figures(office_api: Api) -> None:
    office_api.login("admin")
    doc = office_api.get("/api/reports/missed_calls", params=PERIOD).json()
    assert sum(doc["totals"][doc["columns"].index(c)] or 0 for c in doc["columns"]
               if c["key"] == "inbound") > 0


def test_exports_keep_the_rights_and_the_filter_errors(office_api: Api) -> None:
    office_api.login("secretary")
    r = office_api.get("/api/reports/calls_by_manager.csv", params=PERIOD)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert office_api.get("/api/reports/missed_calls.xlsx", params=PERIOD).status_code == 200
    r = office_api.get("/api/reports/missed_calls.csv", params={"from": "2026-13-01"})
    assert r.status_code == 400 and "from must be a date" in r.json()["message"]
    r = office_api.get("/api/reports/missed_calls.csv", params={"frm": "x"})
    assert r.status_code == 400


def test_headers_are_in_the_users_language(office_api: Api) -> None:
    user = office_api.login("admin")
    office_api.patch(f"/api/users/{user['id']}", json={"language": "ru"})
    rows = _csv_rows(office_api.get("/api/reports/missed_calls.csv", params=PERIOD).content)
    assert rows[0][1] == "Входящие"


def _schedule(**kw):
    body = {"name": "Weekly missed", "reports": ["missed_calls", "load"],
            "recipients": ["boss@example.com"], "frequency": "weekly", "time_of_day": "08:00",
            "weekday": 0, "period": "last_7_days", "language": "en"}
    body.update(kw)
    return body


def test_schedules_admin_only_validated_and_audited(api_factory) -> None:
    admin: Api = api_factory()
    admin.login("admin")
    r = admin.post("/api/admin/report-schedules", json=_schedule())
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["reports"] == ["missed_calls", "load"] and created["weekday"] == 0
    bad = admin.post("/api/admin/report-schedules",
                     json=_schedule(recipients=["boss@example.com\r\nBcc: all@x.y"]))
    assert bad.status_code == 400 and bad.json()["field"] == "recipients"
    r = admin.patch(f"/api/admin/report-schedules/{created['id']}",
                    json=_schedule(frequency="daily", period="yesterday"))
    assert r.status_code == 200 and r.json()["weekday"] is None
    listing = admin.get("/api/admin/report-schedules").json()
    assert [s["frequency"] for s in listing["schedules"]] == ["daily"]
    assert listing["smtp"]["password_set"] is False and "password" not in listing["smtp"]
    # SMTP settings: the password is write-only and masked in the audit log
    r = admin.patch("/api/admin/smtp", json={"host": "mail.example.com", "port": 2525,
                                              "password": "s3cret-pw",
                                              "from_address": "reports@example.com"})
    assert r.status_code == 200, r.text
    assert r.json()["password_set"] is True and "s3cret-pw" not in r.text
    assert "s3cret-pw" not in admin.get("/api/admin/report-schedules").text
    r = admin.patch("/api/admin/smtp", json={"from_address": "not an address"})
    assert r.status_code == 400 and r.json()["field"] == "from_address"
    audit = admin.get("/api/audit", params={"target_kind": "smtp_settings"}).text
    assert "mail.example.com" in audit and "s3cret-pw" not in audit
    kinds = [e["action"] for e in admin.get(
        "/api/audit", params={"target_kind": "report_schedule"}).json()]
    assert sorted(kinds) == ["create", "update"]
    assert admin.delete(f"/api/admin/report-schedules/{created['id']}").status_code == 200
    other: Api = api_factory()
    other.login("maria")
    assert other.get("/api/admin/report-schedules").status_code == 403
    assert other.post("/api/admin/report-schedules", json=_schedule()).status_code == 403

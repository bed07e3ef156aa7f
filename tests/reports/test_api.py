"""GET /api/reports and /api/reports/{name}: the supervisor role end to end, rights per role,
clear 400 sentences for bad filters, the OpenAPI description; the role migration."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.demo import DEMO_PASSWORD
from callcenter.models import Role
from callcenter.store.migrate import known_migrations
from callcenter.store.sqlite import SqliteStore
from tests.conftest import Api

ALL = ["calls_by_manager", "missed_calls", "load", "sms", "faxes", "client_summary"]


def test_a_supervisor_sees_every_report(api_factory) -> None:
    admin: Api = api_factory()
    admin.login("admin")
    r = admin.post("/api/users", json={"login": "boss", "name": "Boss", "role": "supervisor",
                                       "password": DEMO_PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "supervisor"
    boss: Api = api_factory()
    boss.login("boss")
    listing = boss.get("/api/reports").json()
    assert [x["name"] for x in listing["reports"]] == ALL
    assert listing["callback_sla_minutes"] == 15
    for name in ALL:
        params = {"from": "2026-03-01", "to": "2026-03-31"}
        if name == "client_summary":
            params["client"] = str(boss.get("/api/clients").json()[0]["id"])
        r = boss.get(f"/api/reports/{name}", params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["name"] == name and doc["filter"]["from"] == "2026-03-01"
        assert all(len(row) == len(doc["columns"]) for row in doc["rows"])
        assert {c["kind"] for c in doc["columns"]} <= {"int", "duration_s", "percent", "text",
                                                       "datetime", "label"}


@pytest.mark.parametrize(("login", "allowed"), [
    ("secretary", {"missed_calls", "load", "client_summary"}),
    ("maria", {"calls_by_manager", "missed_calls", "client_summary"}),
    ("admin", set(ALL)),
])
def test_rights_per_role_over_http(api: Api, login: str, allowed: set[str]) -> None:
    api.login(login)
    assert {x["name"] for x in api.get("/api/reports").json()["reports"]} == allowed
    for name in set(ALL) - {"client_summary"}:
        r = api.get(f"/api/reports/{name}")
        assert r.status_code == (200 if name in allowed else 403), (name, r.text)
        if r.status_code == 403:
            assert r.json()["error"] == "forbidden"


@pytest.mark.parametrize(("params", "says"), [
    ({"from": "2026-13-01"}, "from must be a date such as 2026-03-01"),
    ({"from": "2026-03-10", "to": "2026-03-01"}, "from must not be after to"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "a report covers at most 400 days"),
    ({"group_by": "fortnight"}, "group_by must be one of"),
    ({"direction": "sideways"}, "direction must be inbound, outbound or internal"),
    ({"user": "abc"}, "user must be numeric ids"),
    ({"user": "99999"}, "no user with id 99999"),
    ({"segment": "vip"}, "segment must be field:value"),
    ({"colour": "red"}, "colour"),
])
def test_bad_filters_are_a_clear_400(api: Api, params: dict[str, str], says: str) -> None:
    api.login("admin")
    r = api.get("/api/reports/missed_calls", params=params)
    assert r.status_code == 400, r.text
    assert says in r.json()["message"]


def test_unknown_report_and_missing_client(api: Api) -> None:
    api.login("admin")
    r = api.get("/api/reports/profits")
    assert r.status_code == 400 and "unknown report 'profits'" in r.json()["message"]
    r = api.get("/api/reports/client_summary")
    assert r.status_code == 400 and "client=" in r.json()["message"]


def test_openapi_documents_the_report_route(api: Api) -> None:
    doc = api.client.get("/api/openapi.json").json()
    op = doc["paths"]["/api/reports/{name}"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert names >= {"name", "from", "to", "user", "group", "line", "did", "direction",
                     "segment", "group_by", "client"}
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["properties"]["name"]["enum"] == ALL
    assert {"columns", "rows", "totals", "chart", "sections"} <= set(schema["properties"])


async def test_the_role_migration_keeps_every_user(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = next(m.version for m in known_migrations() if m.name.endswith("_reports.sql")) - 1
    old = await SqliteStore.open(path, target_version=before)
    ids = {role: (await old.create_user(f"u{role.value}", "U", role)).id
           for role in (Role.SECRETARY, Role.MANAGER, Role.ADMIN)}
    await old.close()
    store = await SqliteStore.open(path)
    try:
        for role, uid in ids.items():
            assert (await store.get_user(uid)).role is role
        boss = await store.create_user("boss", "Boss", Role.SUPERVISOR)
        assert (await store.get_user(boss.id)).role is Role.SUPERVISOR
        with pytest.raises(Exception, match="CHECK"):
            await store._db.execute(
                "INSERT INTO users (login, name, role, created_at) VALUES"
                " ('x', 'X', 'king', '2026-01-01T00:00:00+00:00')")
    finally:
        await store.close()

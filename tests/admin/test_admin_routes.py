"""Every admin route refuses secretaries and managers: walked from the route table, so a
route added later with ``admin=True`` is covered without touching this test."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Api
from ui.routes import ROUTES, ApiRoute

ADMIN_ROUTES = [r for r in ROUTES if r.admin]


def _url(route: ApiRoute) -> str:
    # Any id will do: the role is checked before the handler looks anything up.
    return re.sub(r"\{[a-z_]+\}", lambda m: "1" if m.group(0) == "{id}" else "x", route.path)


def test_the_table_marks_every_documented_admin_route() -> None:
    assert len(ADMIN_ROUTES) >= 9
    for route in ROUTES:
        if route.summary.rstrip().endswith("(admin)"):
            assert route.admin, f"{route.method} {route.path} says admin but is not marked"


@pytest.mark.parametrize("login", ["secretary", "maria"])
def test_non_admins_get_403_on_every_admin_route(api_factory, login: str) -> None:
    api: Api = api_factory()
    user = api.login(login)
    assert user["role"] in ("secretary", "manager")
    for route in ADMIN_ROUTES:
        kw = {} if route.method == "GET" else {"json": {}}
        r = api.request(route.method, _url(route), **kw)
        assert r.status_code == 403, f"{route.method} {route.path}: {r.status_code} {r.text}"
        assert r.json()["error"] == "forbidden"


def test_admin_gets_past_the_role_check(api_factory) -> None:
    api: Api = api_factory()
    api.login("admin")
    for route in ADMIN_ROUTES:
        kw = {} if route.method == "GET" else {"json": {}}
        r = api.request(route.method, _url(route), **kw)
        assert r.status_code != 403, f"{route.method} {route.path}: {r.text}"


# The routes a secretary or a manager may use (within what they may see). A new route is
# refused to them by this test until it is marked admin=True or consciously added here.
NON_ADMIN = {
    ("POST", "/api/session"), ("GET", "/api/session"), ("DELETE", "/api/session"),
    ("GET", "/api/users"), ("GET", "/api/users/{id}"), ("PATCH", "/api/users/{id}"),
    ("GET", "/api/clients"), ("POST", "/api/clients"), ("GET", "/api/clients/{id}"),
    ("PATCH", "/api/clients/{id}"), ("GET", "/api/clients/{id}/interactions"),
    ("POST", "/api/clients/{id}/notes"), ("POST", "/api/clients/{id}/contacts"),
    ("PATCH", "/api/contacts/{id}"), ("DELETE", "/api/contacts/{id}"),
    ("POST", "/api/contacts/{id}/phones"), ("DELETE", "/api/phones/{id}"),
    ("GET", "/api/custom-fields"), ("GET", "/api/lookup"), ("GET", "/api/tasks"),
    ("POST", "/api/tasks"), ("PATCH", "/api/tasks/{id}"), ("GET", "/api/calls/live"),
    ("GET", "/api/calls"), ("GET", "/api/calls/{call_id}"),
    ("POST", "/api/calls/{call_id}/transfer"), ("POST", "/api/calls/{call_id}/hangup"),
    ("POST", "/api/calls/{call_id}/recording"), ("POST", "/api/originate"),
    ("GET", "/api/presence"), ("GET", "/api/recordings/{id}"),
    # faxes: every user sends and receives; visibility is per client (tests/faxes)
    ("POST", "/api/fax-documents"), ("GET", "/api/fax-documents/{token}/thumbnail"),
    ("POST", "/api/faxes"), ("GET", "/api/faxes"), ("GET", "/api/faxes/{id}"),
    ("POST", "/api/faxes/{id}/cancel"), ("GET", "/api/faxes/{id}/thumbnail"),
    ("GET", "/api/fax-inbox"), ("GET", "/api/fax-inbox/{id}/pdf"),
    # SMS: every user writes and reads; visibility is per client (tests/sms)
    ("POST", "/api/sms"), ("POST", "/api/sms/count"), ("GET", "/api/sms"),
    ("GET", "/api/sms/templates"), ("GET", "/api/sms/pool"), ("POST", "/api/sms/{id}/resend"),
    ("GET", "/api/sms/{id}"), ("GET", "/api/clients/{id}/sms"),
    # campaigns: admins and managers (their own clients); secretaries get 403 (tests/sms)
    ("GET", "/api/campaigns"),
    ("POST", "/api/campaigns"),
    ("POST", "/api/campaigns/preview"),
    ("GET", "/api/campaigns/fields"),
    ("GET", "/api/campaigns/{id}"),
    ("PATCH", "/api/campaigns/{id}"),
    ("DELETE", "/api/campaigns/{id}"),
    ("GET", "/api/campaigns/{id}/preview"),
    ("POST", "/api/campaigns/{id}/start"),
    ("POST", "/api/campaigns/{id}/pause"),
    ("POST", "/api/campaigns/{id}/resume"),
    ("POST", "/api/campaigns/{id}/cancel"),
    ("GET", "/api/campaigns/{id}/progress"),
    ("GET", "/api/campaigns/{id}/report.csv"),
    # reports: rights per report and role in the service (tests/reports/test_rights.py)
    ("GET", "/api/reports"), ("GET", "/api/reports/{name}"),
    # exports: the JSON route's rights (tests/reports_ui/test_export_api.py)
    ("GET", "/api/reports/{name}.csv"), ("GET", "/api/reports/{name}.xlsx"),
}


def test_the_allow_list_names_only_existing_non_admin_routes() -> None:
    table = {(r.method, r.path): r for r in ROUTES}
    assert table.keys() >= NON_ADMIN, NON_ADMIN - table.keys()
    assert not [k for k in NON_ADMIN if table[k].admin]


@pytest.mark.parametrize("login", ["secretary", "maria"])
def test_every_other_route_refuses_secretaries_and_managers(api_factory, login: str) -> None:
    api: Api = api_factory()
    api.login(login)
    for route in ROUTES:
        if (route.method, route.path) in NON_ADMIN:
            continue
        kw = {} if route.method == "GET" else {"json": {}}
        r = api.request(route.method, _url(route), **kw)
        assert r.status_code == 403, f"{route.method} {route.path}: {r.status_code} {r.text}"


def test_an_admin_route_reads_the_user_once(api: Api, monkeypatch) -> None:
    api.login("admin")
    store = api.client.app.state.services.store
    reads: list[int] = []
    real = store.get_user

    async def counting(user_id: int):
        reads.append(user_id)
        return await real(user_id)

    monkeypatch.setattr(store, "get_user", counting)
    r = api.post("/api/routing/groups", json={"name": "Desk", "queues": ["desk"]})
    assert r.status_code == 201, r.text
    r = api.patch("/api/routing/settings", json={"default_region": "DE"})
    assert r.status_code == 200, r.text
    assert len(reads) == 2  # one per request, by the route wrapper

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

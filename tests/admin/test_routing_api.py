"""Routing settings through the API: the default region (stored, wins over the file), office
hours, the endpoint list of the lines and the extension mapping, each audited."""

from __future__ import annotations

from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config
from callcenter.line_events import CallStarted, Direction
from tests.conftest import Api


class FakeEndpoints:
    """A line that lists its endpoints, as the Asterisk line does with PJSIPShowEndpoints."""

    def __init__(self, found: list[tuple[str, str]]) -> None:
        self.found = found

    async def endpoints(self) -> list[tuple[str, str]]:
        return self.found


class BrokenEndpoints:
    async def endpoints(self) -> list[tuple[str, str]]:
        raise ConnectionError("AMI not connected")


def test_default_region_is_stored_and_wins_over_the_file(config: Config) -> None:
    config.phones.default_region = "RU"
    with TestClient(create_app(config, demo=True, demo_calls=False)) as c:
        api = Api(c)
        api.login("admin")
        assert api.get("/api/routing").json()["settings"]["default_region_source"] == "config"
        r = api.patch("/api/routing/settings", json={"default_region": "XX"})
        assert r.status_code == 400 and "country code" in r.json()["message"]
        r = api.patch("/api/routing/settings", json={"default_region": "de"})
        assert r.status_code == 200, r.text
        assert r.json()["default_region"] == "DE"
        # numbers typed from now on are read as German ones
        client = api.post("/api/clients", json={"name": "Berlin GmbH", "contacts": [
            {"name": "Uwe", "phones": ["030 1234567"]}]}).json()
        assert client["contacts"][0]["phones"][0]["e164"] == "+49301234567"
        # and the running call registry shows callers in it (a national German number)
        registry = c.app.state.services.extra["calls"].registry
        c.portal.call(registry.handle, CallStarted(
            "office", "office:de", 1.0, Direction.INBOUND, "+49301234567", "", "100"))
        assert registry.get("office:de").caller_display == "030 1234567"
    config.phones.default_region = "RU"  # the file says RU again at the next start
    with TestClient(create_app(config, demo=True, demo_calls=False)) as c:
        api = Api(c)
        api.login("admin")
        settings = api.get("/api/routing").json()["settings"]
        assert settings["default_region"] == "DE"
        assert settings["default_region_source"] == "database"
        r = api.patch("/api/routing/settings", json={"default_region": None})
        assert r.json()["default_region"] == "RU"
        entries = api.get("/api/audit", params={"target_kind": "setting"}).json()
        assert [(e["before"]["value"], e["after"]["value"]) for e in entries] == [
            ("DE", "RU"), ("RU", "DE")]


def test_office_hours_through_the_api(api: Api) -> None:
    api.login("admin")
    r = api.patch("/api/routing/settings", json={"hours": {
        "timezone": "Europe/Moscow", "week": {"mon": [["09:00", "18:00"]]},
        "holidays": ["2026-12-31"]}})
    assert r.status_code == 200, r.text
    assert r.json()["hours"]["week"] == {"mon": [["09:00", "18:00"]]}
    r = api.patch("/api/routing/settings", json={"hours": {"timezone": "Nowhere/City"}})
    assert r.status_code == 400 and "time zone" in r.json()["message"]
    assert api.get("/api/routing").json()["settings"]["hours"]["timezone"] == "Europe/Moscow"


def test_a_settings_change_with_one_bad_value_saves_nothing(api: Api) -> None:
    api.login("admin")
    hours = {"timezone": "Europe/Moscow", "week": {"mon": [["09:00", "18:00"]]}}
    r = api.patch("/api/routing/settings", json={"hours": hours, "default_region": "XX"})
    assert r.status_code == 400 and "country code" in r.json()["message"]
    assert api.get("/api/routing").json()["settings"]["hours"] is None
    assert api.get("/api/audit", params={"target_kind": "setting"}).json() == []
    # both valid: both saved, two entries; the same again: nothing new
    for _ in range(2):
        r = api.patch("/api/routing/settings", json={"hours": hours, "default_region": "DE"})
        assert r.status_code == 200, r.text
    entries = api.get("/api/audit", params={"target_kind": "setting"}).json()
    assert sorted(e["target_id"] for e in entries) == ["office.hours", "phones.default_region"]


def test_endpoints_import_maps_extensions_to_users(api: Api) -> None:
    api.login("admin")
    routing = api.client.app.state.services.routing
    routing.sources = lambda: {"office": FakeEndpoints([
        ("101", "Not in use"), ("102", "In use"), ("150", "Unavailable"),
        ("trunk", "Not in use")]), "down": BrokenEndpoints()}
    users = {u["login"]: u for u in api.get("/api/users").json()}
    found = api.get("/api/routing/endpoints").json()
    by_name = {e.get("name"): e for e in found if e["line"] == "office"}
    assert set(by_name) == {"101", "102", "150"}  # the trunk is no extension
    assert by_name["150"]["user_id"] is None and by_name["102"]["state"] == "In use"
    assert [e["error"] for e in found if e["line"] == "down"] == [
        "cannot list endpoints: AMI not connected"]
    # one click: 150 to dmitry, and maria's and dmitry's numbers swapped without a collision
    old = {login: users[login]["extension"] for login in ("maria", "dmitry")}
    r = api.post("/api/routing/extensions", json={"extensions": [
        {"extension": "150", "user_id": users["secretary"]["id"]},
        {"extension": old["maria"], "user_id": users["dmitry"]["id"]},
        {"extension": old["dmitry"], "user_id": users["maria"]["id"]}]})
    assert r.status_code == 200, r.text
    now = {u["login"]: u["extension"] for u in api.get("/api/users").json()}
    assert now["secretary"] == "150"
    assert (now["maria"], now["dmitry"]) == (old["dmitry"], old["maria"])
    r = api.post("/api/routing/extensions", json={"extensions": [
        {"extension": "1x", "user_id": None}]})
    assert r.status_code == 400
    updates = api.get("/api/audit", params={"target_kind": "user", "action": "update"}).json()
    assert {e["target_id"] for e in updates} >= {str(users["maria"]["id"]),
                                                 str(users["dmitry"]["id"])}

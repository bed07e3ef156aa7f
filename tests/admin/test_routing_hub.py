"""Routing changes who gets a screen-pop: the hub reads the compiled groups."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from callcenter.demo import DEMO_PASSWORD
from tests.conftest import Api
from tests.e2e.events import FakeCall, client_match
from tests.test_hub import app, client, connect, publish, session, start, users  # noqa: F401

SALES_DID, SERVICE_DID, OTHER_DID = "74951110000", "74952220000", "74953330000"


def admin_api(client: TestClient) -> Api:  # noqa: F811
    c = TestClient(client.app)
    c.portal = client.portal
    api = Api(c)
    api.login("admin")
    return api


def call(u: dict[str, dict[str, Any]], call_id: str, did: str) -> FakeCall:
    maria = u["maria"]
    return FakeCall(call_id, "+79161234567", "Ivan Petrov",
                    client_match(1, "Romashka", 1, "Ivan Petrov", maria["id"], maria["name"],
                                 "102"), called=did)


def test_groups_decide_which_secretary_gets_the_pop(client: TestClient) -> None:  # noqa: F811
    admin = admin_api(client)
    sveta = admin.post("/api/users", json={"login": "sveta", "name": "Sveta", "role":
                                           "secretary", "password": DEMO_PASSWORD}).json()
    u = users(client)
    sales = admin.post("/api/routing/groups", json={
        "name": "Sales desk", "members": [u["secretary"]["id"]], "dids": ["+7 495 111-00-00"]})
    assert sales.status_code == 201, sales.text
    service = admin.post("/api/routing/groups", json={
        "name": "Service", "members": [sveta["id"]], "dids": [SERVICE_DID]}).json()
    with connect(session(client, "secretary")) as first, connect(
            session(client, "sveta")) as second:
        start(first)
        start(second)
        to_sales = publish(client, call(u, "office:1", SALES_DID).ringing("199"))
        to_service = publish(client, call(u, "office:2", SERVICE_DID).ringing("199"))
        unrouted = publish(client, call(u, "office:3", OTHER_DID).ringing("199"))
        # each gets their group's call and the call no group claims, not the other group's
        assert [first.receive_json()["seq"] for _ in range(2)] == [to_sales, unrouted]
        assert [second.receive_json()["seq"] for _ in range(2)] == [to_service, unrouted]
    # the sales DID moves to the service group: from now on Sveta gets its pops
    r = admin.patch(f"/api/routing/groups/{service['id']}", json={
        "name": "Service", "members": [sveta["id"]], "dids": [SERVICE_DID, SALES_DID]})
    assert r.status_code == 200, r.text
    admin.delete(f"/api/routing/groups/{sales.json()['id']}")
    with connect(session(client, "secretary")) as first, connect(
            session(client, "sveta")) as second:
        start(first)
        start(second)
        moved = publish(client, call(u, "office:4", SALES_DID).ringing("199"))
        # the secretary is in no group now: she sees every call again
        assert first.receive_json()["seq"] == moved
        assert second.receive_json()["seq"] == moved
    # a secretary still sees a call that rings at her own extension
    admin.patch(f"/api/users/{u['secretary']['id']}", json={"extension": "150"})
    admin.post("/api/routing/groups", json={"name": "Desk", "members": [u["secretary"]["id"]],
                                            "queues": ["desk"]})
    with connect(session(client, "secretary")) as first:
        start(first)
        publish(client, call(u, "office:5", SERVICE_DID).ringing("199"))
        mine = publish(client, call(u, "office:6", SERVICE_DID).ringing("150"))
        assert first.receive_json()["seq"] == mine
    audit = admin.get("/api/audit", params={"target_kind": "group"}).json()
    assert [e["action"] for e in audit] == ["create", "delete", "update", "create", "create"]


def test_live_calls_follow_the_groups(client: TestClient) -> None:  # noqa: F811
    admin = admin_api(client)
    u = users(client)
    admin.post("/api/routing/groups", json={"name": "Other", "members": [u["secretary"]["id"]],
                                            "lines": ["elsewhere"]})
    table = client.app.state.services.routing.table
    sec = client.portal.call(client.app.state.services.store.get_user, u["secretary"]["id"])
    _, data = call(u, "office:1", SALES_DID).ringing("199")
    assert table.can_see_event(sec, data, False)  # line "office" is routed to no group
    data["call"]["line"] = "elsewhere"
    assert table.can_see_event(sec, data, False)
    data["call"]["line"] = "office"
    other = admin.post("/api/users", json={"login": "sec2", "name": "Second", "role": "secretary",
                                           "password": "Second-Pa55word-1"}).json()
    admin.post("/api/routing/groups", json={"name": "Office", "members": [other["id"]],
                                            "lines": ["office"]})
    table = client.app.state.services.routing.table
    assert not table.can_see_event(sec, data, False)


def test_a_group_without_an_enabled_secretary_claims_no_calls(client: TestClient) -> None:  # noqa: F811
    admin = admin_api(client)
    u = users(client)
    other = admin.post("/api/users", json={"login": "sec2", "name": "Second", "role": "secretary",
                                           "password": "Second-Pa55word-1"}).json()
    admin.post("/api/routing/groups", json={"name": "Mine", "members": [u["secretary"]["id"]],
                                            "lines": ["elsewhere"]})
    admin.post("/api/routing/groups", json={"name": "Nobody", "lines": ["office"]})
    routing = client.app.state.services.routing
    sec = client.portal.call(client.app.state.services.store.get_user, u["secretary"]["id"])
    _, data = call(u, "office:1", SALES_DID).ringing("199")
    # a group with no members would hide the call from every secretary: it claims nothing
    assert routing.table.can_see_event(sec, data, False)
    r = admin.post("/api/routing/groups", json={"name": "Office", "members": [other["id"]],
                                                "lines": ["office"]})
    assert r.status_code == 201, r.text
    assert not routing.table.can_see_event(sec, data, False)
    # its only secretary disabled (or made a manager): the call reaches the others again
    assert admin.patch(f"/api/users/{other['id']}", json={"active": False}).status_code == 200
    assert routing.table.can_see_event(sec, data, False)
    assert admin.patch(f"/api/users/{other['id']}", json={"active": True}).status_code == 200
    assert not routing.table.can_see_event(sec, data, False)
    assert admin.patch(f"/api/users/{other['id']}", json={"role": "manager"}).status_code == 200
    assert routing.table.can_see_event(sec, data, False)

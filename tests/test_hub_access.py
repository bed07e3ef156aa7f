"""The hub closes open consoles whose user lost access: through the API at once, and after a
change another process made (the ``callcenter user`` commands) at its next access check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from callcenter.app import create_app
from callcenter.config import Config
from callcenter.store.postgres import PostgresStore
from callcenter.store.sqlite import SqliteStore
from tests.conftest import Api
from tests.e2e.server import with_demo_base
from tests.test_hub import connect, session, start, users

NEW_PASSWORD = "Reset-Pa55word-abc"


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    app = create_app(config, demo=False)
    with_demo_base(app)
    app.state.hub.access_interval = 0.05  # the watch loop, quickly
    with TestClient(app) as c:
        yield c


def admin_api(client: TestClient) -> Api:
    api = Api(session(client, "admin"))
    api.csrf = api.client.get("/api/session").json()["csrf_token"]
    return api


def the_connection(client: TestClient, user_id: int) -> Any:
    hub = client.app.state.hub
    return client.portal.call(lambda: next(c for c in hub.connections if c.user.id == user_id))


def wait_gone(client: TestClient, conn: Any) -> None:
    async def gone() -> None:
        async with asyncio.timeout(10):
            await conn.gone.wait()

    client.portal.call(gone)


def closed_code(ws: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:
            ws.receive_json()
    return closed.value.code


def in_other_process(client: TestClient, change: Callable[[SqliteStore], Awaitable[Any]]
                     ) -> None:
    """A change through a store of its own (its own connections, its own event loop), as
    ``callcenter user ...`` makes it: nothing in the server hears of it."""
    store = client.app.state.services.store
    url = getattr(store, "dsn", None)

    async def run() -> None:
        other = await (PostgresStore.open(url) if url else SqliteStore.open(store.path))
        try:
            await change(other)
        finally:
            await other.close()

    asyncio.run(run())


@pytest.mark.parametrize("change,code", [
    (lambda s, uid: s.update_user(uid, active=0), 4401),
    (lambda s, uid: s.end_sessions(uid), 4401),
    (lambda s, uid: s.update_user(uid, must_change_password=1), 4401),
    (lambda s, uid: s.update_user(uid, role="manager"), 1013),
], ids=["disabled", "password-reset", "one-time", "role"])
def test_a_change_from_another_process_closes_open_consoles(
        client: TestClient, change: Callable[..., Awaitable[Any]], code: int) -> None:
    uid = users(client)["secretary"]["id"]
    sec = session(client, "secretary")
    other = session(client, "maria")
    with connect(sec) as ws, connect(other) as ws2:
        start(ws)
        start(ws2)
        conn = the_connection(client, uid)
        in_other_process(client, lambda s: change(s, uid))
        wait_gone(client, conn)
        assert closed_code(ws) == code
        # the other user's console stays open
        ws2.send_json({"type": "ping"})
        assert ws2.receive_json() == {"type": "pong"}


@pytest.mark.parametrize("how", ["reset", "disable"])
def test_api_reset_or_disable_closes_open_consoles(client: TestClient, how: str) -> None:
    uid = users(client)["secretary"]["id"]
    sec = session(client, "secretary")
    admin = admin_api(client)
    with connect(sec) as ws:
        start(ws)
        if how == "reset":
            r = admin.post(f"/api/users/{uid}/password", json={"password": NEW_PASSWORD})
        else:
            r = admin.patch(f"/api/users/{uid}", json={"active": False})
        assert r.status_code == 200, r.text
        assert closed_code(ws) in (1013, 4401)
    # reconnecting with the old cookie is refused
    with pytest.raises(WebSocketDisconnect) as refused, connect(sec) as ws:
        ws.receive_json()
    assert refused.value.code == 4401


def test_websocket_refused_for_a_one_time_login(client: TestClient) -> None:
    uid = users(client)["secretary"]["id"]
    admin = admin_api(client)
    r = admin.post(f"/api/users/{uid}/password",
                   json={"password": NEW_PASSWORD, "one_time": True})
    assert r.status_code == 200, r.text
    c = TestClient(client.app)
    c.portal = client.portal
    assert Api(c).login("secretary", NEW_PASSWORD)["one_time_login"] is True
    with pytest.raises(WebSocketDisconnect) as refused, connect(c) as ws:
        ws.receive_json()
    assert refused.value.code == 4401

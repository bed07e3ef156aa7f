"""The websocket hub: session auth, per-user filtering, resume/reset, slow consumers."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import functools
import json
import os
import socket
import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from callcenter import bus as bus_module
from callcenter.app import create_app
from callcenter.bus import EventBus
from callcenter.cluster.outbox import ClusterBus
from callcenter.config import Config
from callcenter.demo import DEMO_PASSWORD
from tests.conftest import Api
from tests.e2e.events import FakeCall, client_match, other_match
from tests.e2e.server import LiveServer, with_demo_base
from ui import hub as hub_module


@pytest.fixture
def app(config: Config):
    app = create_app(config, demo=False)
    with_demo_base(app)
    return app


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def session(client: TestClient, login: str) -> TestClient:
    """Another browser (own cookies) on the same app and event loop as ``client``: the bus and
    the hub's queues are not thread-safe, so every session must share the one loop."""
    c = TestClient(client.app)
    c.portal = client.portal
    Api(c).login(login)
    return c


@contextlib.contextmanager
def connect(c: TestClient, **kwargs: Any) -> Iterator[Any]:
    """``c.websocket_connect("/ws")``, tolerating a TestClient race: closing one of several
    sessions that share a portal can report the finished session task as cancelled."""
    ws = c.websocket_connect("/ws", **kwargs).__enter__()
    try:
        yield ws
    finally:
        with contextlib.suppress(concurrent.futures.CancelledError):
            ws.__exit__(None, None, None)


def users(client: TestClient) -> dict[str, dict[str, Any]]:
    api = Api(session(client, "admin"))
    return {u["login"]: u for u in api.get("/api/users").json()}


def publish(client: TestClient, event: tuple[str, dict[str, Any]]) -> int:
    """Publish and return the event's sequence number. On PostgreSQL the app is a cluster
    member: the number is the outbox id, known once the event comes back from the outbox."""
    bus = client.app.state.services.bus
    topic, data = event

    async def sequenced() -> int:
        if getattr(bus, "relay", None) is None:
            return bus.publish(topic, data).seq
        want = json.loads(json.dumps(data))
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_event(ev: Any) -> None:
            if ev.topic == topic and ev.data == want and not got.done():
                got.set_result(ev.seq)

        unsubscribe = bus.subscribe(on_event)
        try:
            bus.publish(topic, data)
            return await asyncio.wait_for(got, 30)
        finally:
            unsubscribe()

    return client.portal.call(sequenced)


def start(ws, **first: Any) -> dict[str, Any]:
    hello = ws.receive_json()
    assert hello["type"] == "hello"
    ws.send_json(first or {"type": "start"})
    return hello


def maria_call(u: dict[str, dict[str, Any]], call_id: str = "office:1") -> FakeCall:
    maria = u["maria"]
    return FakeCall(call_id, "+79161234567", "Ivan Petrov",
                    client_match(1, "Romashka", 1, "Ivan Petrov", maria["id"], maria["name"],
                                 "102"))


def dmitry_call(u: dict[str, dict[str, Any]], call_id: str = "office:2") -> FakeCall:
    dmitry = u["dmitry"]
    return FakeCall(call_id, "89035556677", "Olga",
                    client_match(2, "Olga Sokolova", 2, "Olga Sokolova", dmitry["id"],
                                 dmitry["name"], "103"))


def test_websocket_without_session_is_refused(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, connect(client) as ws:
        ws.receive_json()
    assert refused.value.code == 4401
    # A forged cookie is no session either.
    client.cookies.set("cc_session", "forged")
    with pytest.raises(WebSocketDisconnect) as refused, connect(client) as ws:
        ws.receive_json()
    assert refused.value.code == 4401


def test_foreign_origin_is_refused_even_with_a_session(client: TestClient) -> None:
    c = session(client, "secretary")
    with pytest.raises(WebSocketDisconnect) as refused, connect(c, headers={"origin": "http://evil.example"}
    ) as ws:
        ws.receive_json()
    assert refused.value.code == 4403
    with connect(c, headers={"origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_logout_ends_websocket_access(client: TestClient) -> None:
    c = TestClient(client.app)
    c.portal = client.portal
    api = Api(c)
    api.login("maria")
    assert api.delete("/api/session").status_code == 200
    with pytest.raises(WebSocketDisconnect) as refused, connect(c) as ws:
        ws.receive_json()
    assert refused.value.code == 4401


def test_events_are_filtered_per_user(client: TestClient) -> None:
    u = users(client)
    secretary, maria, dmitry = (session(client, n) for n in ("secretary", "maria", "dmitry"))
    with connect(secretary) as ws_s, connect(maria) as ws_m, \
            connect(dmitry) as ws_d:
        hello = start(ws_s)
        assert hello["user"]["role"] == "secretary" and hello["user"]["extension"] == "101"
        start(ws_m)
        start(ws_d)
        to_maria = maria_call(u)
        first = publish(client, to_maria.ringing("101", "102"))
        to_dmitry = dmitry_call(u)
        second = publish(client, to_dmitry.ringing("101", "103"))
        assert [ws_s.receive_json()["seq"] for _ in range(2)] == [first, second]
        got = ws_m.receive_json()
        assert got["seq"] == first and got["type"] == "call.ringing"
        assert got["data"]["call"]["caller"]["name"] == "Ivan Petrov"
        # Dmitry never got Maria's call: his first event is his own.
        assert ws_d.receive_json()["seq"] == second
        # Ping/pong keeps working next to the events.
        ws_d.send_json({"type": "ping"})
        assert ws_d.receive_json() == {"type": "pong"}


def test_managers_see_all_switch(config: Config) -> None:
    config.console.managers_see_all_clients = True
    app = create_app(config, demo=False)
    with_demo_base(app)
    with TestClient(app) as client:
        u = users(client)
        with connect(session(client, "dmitry")) as ws:
            start(ws)
            seq = publish(client, maria_call(u).ringing("102"))
            assert ws.receive_json()["seq"] == seq


def test_resume_replays_what_was_missed_then_goes_live(client: TestClient) -> None:
    u = users(client)
    maria = session(client, "maria")
    call, other = maria_call(u), dmitry_call(u)
    with connect(maria) as ws:
        hello = start(ws)
        seen = publish(client, call.ringing("102"))
        assert ws.receive_json()["seq"] == seen
    # Disconnected: these happen meanwhile (one of them is not Maria's).
    missed = [publish(client, call.answered("102", u["maria"]["id"], "Maria")),
              publish(client, other.ringing("103")),
              publish(client, call.ended())]
    with connect(maria) as ws:
        again = ws.receive_json()
        assert again["boot"] == hello["boot"]
        ws.send_json({"type": "resume", "after": seen, "boot": hello["boot"]})
        replayed = [ws.receive_json() for _ in range(2)]
        assert [e["seq"] for e in replayed] == [missed[0], missed[2]]
        assert [e["type"] for e in replayed] == ["call.answered", "call.ended"]
        live = publish(client, maria_call(u, "office:3").ringing("102"))
        assert ws.receive_json()["seq"] == live  # no duplicates, no gap


def test_reset_when_the_server_no_longer_holds_the_events(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("callcenter.services.EventBus", functools.partial(EventBus, history=3))
    monkeypatch.setattr("callcenter.cluster.outbox.ClusterBus",  # on PostgreSQL
                        functools.partial(ClusterBus, history=3))
    app = create_app(config, demo=False)
    with_demo_base(app)
    with TestClient(app) as client:
        u = users(client)
        secretary = session(client, "secretary")
        call = maria_call(u)
        with connect(secretary) as ws:
            hello = start(ws)
        for event in (call.ringing("101"), call.answered("101", None, None), call.ended()):
            publish(client, event)
        publish(client, dmitry_call(u).ringing("101"))
        cases = [
            {"type": "resume", "after": hello["seq"], "boot": hello["boot"]},  # left the window
            {"type": "resume", "after": 10**6, "boot": hello["boot"]},  # from the future
            {"type": "resume", "after": hello["seq"] + 3, "boot": "another-run"},
            {"type": "resume", "after": "x"},
        ]
        for request in cases:
            with connect(secretary) as ws:
                ws.receive_json()
                ws.send_json(request)
                assert ws.receive_json() == {"type": "reset"}, request
        # Still inside the window: replayed.
        with connect(secretary) as ws:
            ws.receive_json()
            ws.send_json({"type": "resume", "after": hello["seq"] + 2, "boot": hello["boot"]})
            assert ws.receive_json()["seq"] == hello["seq"] + 3


def test_reset_when_the_replay_would_be_too_long(client: TestClient) -> None:
    u = users(client)
    client.app.state.hub.max_replay = 2
    secretary = session(client, "secretary")
    with connect(secretary) as ws:
        hello = start(ws)
    for i in range(3):
        publish(client, maria_call(u, f"office:{i}").ringing("101"))
    with connect(secretary) as ws:
        ws.receive_json()
        ws.send_json({"type": "resume", "after": hello["seq"], "boot": hello["boot"]})
        assert ws.receive_json() == {"type": "reset"}
        # Live events after the hello still follow the reset.
        seq = publish(client, maria_call(u, "office:9").ringing("101"))
        assert ws.receive_json()["seq"] == seq


async def _cookie(base: str, login: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/api/session", json={"login": login, "password": DEMO_PASSWORD})
        assert r.status_code == 200
        return f"cc_session={r.cookies['cc_session']}"


def _configure_small_hub(app) -> None:
    with_demo_base(app)
    app.state.hub.queue_size = 40
    app.state.hub.send_timeout = 1.0


# None: no extension, the hub writes its own frames (ui/ws_frames.py); deflate: uvicorn frames.
@pytest.mark.parametrize("compression", ["deflate", None])
async def test_slow_consumer_is_closed_without_stalling_others(config: Config,
                                                               compression: str | None) -> None:
    """One console that stops reading must not hold up the others (shared/LIBRARIES.md):
    it is dropped when its queue overflows or a send times out; the healthy ones get every
    event, in order (how fast is measured in benchmarks/ws_fanout.py)."""
    # Incompressible padding: permessage-deflate would shrink "xxxx…" to nothing.
    total, payload = 400, base64.b64encode(os.urandom(24_576)).decode()
    with LiveServer(config, demo=False, configure=_configure_small_hub,
                    deflate=compression == "deflate") as srv:
        base = srv.url
        cookie = await _cookie(base, "secretary")
        url = base.replace("http", "ws") + "/ws"
        # A small receive buffer (no autotuning up to 32 MB) so the slow console's TCP window
        # fills after a few hundred kilobytes, as a stalled browser's would.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
        raw.connect(("127.0.0.1", srv.port))
        slow = await websockets.connect(url, sock=raw, additional_headers={"Cookie": cookie},
                                        max_queue=1, max_size=None, compression=compression)
        healthy = [await websockets.connect(url, additional_headers={"Cookie": cookie},
                                            max_size=None, compression=compression)
                   for _ in range(2)]
        for ws in [slow, *healthy]:
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"type": "start"}))
        # The slow console stops reading here; its TCP buffers fill up.
        slow.transport.pause_reading()  # type: ignore[attr-defined]
        hub = srv.app.state.hub  # type: ignore[union-attr]
        slow_port = raw.getsockname()[1]
        # hub.connections belongs to the server's loop: read it there, never from this thread.
        slow_conn = await asyncio.to_thread(srv.call, lambda: next(
            c for c in hub.connections if c.websocket.client.port == slow_port))
        assert (slow_conn.sink is None) == (compression == "deflate")
        # The healthy consoles tell the burst how far they got, so it never runs more than
        # a few events ahead of them (a busy office, not one giant burst) — without a clock.
        received = [0] * len(healthy)
        progress = asyncio.Event()  # set on the server's loop
        ahead = 10

        async def burst() -> None:
            bus = srv.services.bus
            for i in range(total):
                while min(received) < i - ahead:
                    progress.clear()
                    await progress.wait()
                bus.publish("call.updated", {"call": {"id": f"c{i}", "pad": payload}})

        async def drain(k: int, ws: Any) -> list[int]:
            seqs: list[int] = []
            while len(seqs) < total:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                seqs.append(message["seq"])
                received[k] = len(seqs)
                srv.loop.call_soon_threadsafe(progress.set)  # type: ignore[union-attr]
            return seqs

        readers = [asyncio.create_task(drain(k, ws)) for k, ws in enumerate(healthy)]
        await asyncio.to_thread(srv.call, burst, timeout=60)
        results = await asyncio.gather(*readers)
        for seqs in results:
            assert seqs == sorted(seqs) and len(set(seqs)) == total
        # The slow one overflowed its queue (or timed out) and was closed; the others stay.
        await asyncio.to_thread(srv.call, slow_conn.gone.wait, timeout=30)
        assert hub.dropped >= 1
        assert await asyncio.to_thread(srv.call, lambda: len(hub.connections)) == 2
        slow.transport.abort()  # type: ignore[attr-defined]
        for ws in healthy:
            await ws.close()
        # Shutdown with consoles still connected: every hub task is cancelled and awaited.
        lingering = await websockets.connect(url, additional_headers={"Cookie": cookie})
        await lingering.recv()
        tasks = await asyncio.to_thread(
            srv.call, lambda: [t for conn in hub.connections for t in conn.tasks])
        await asyncio.to_thread(srv.stop)
        assert tasks and all(t.done() for t in tasks)
        assert not hub.connections  # the server's loop has ended: nothing changes it now
        await lingering.close()


def test_changed_rights_close_the_users_live_consoles(client: TestClient) -> None:
    u = users(client)
    sec = session(client, "secretary")
    admin = Api(session(client, "admin"))
    admin.csrf = admin.client.get("/api/session").json()["csrf_token"]
    with connect(sec) as ws:
        start(ws)
        r = admin.patch(f"/api/users/{u['secretary']['id']}", json={"role": "manager"})
        assert r.status_code == 200
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 1013  # reconnect: the new rights apply from then on
    # now a manager without clients: another manager's call is no longer shown
    with connect(sec) as ws:
        start(ws)
        publish(client, dmitry_call(u).ringing("103"))
        seq = publish(client, maria_call(u).ringing("101"))  # rings at the user's extension
        message = ws.receive_json()
        assert message["seq"] == seq


def test_a_late_resume_gets_a_reset_not_a_silent_gap(client: TestClient) -> None:
    client.app.state.hub.start_grace = 0.2
    sec = session(client, "secretary")
    with connect(sec) as ws:
        assert ws.receive_json()["type"] == "hello"
        # An event published now reaches the console only once the hub went live without
        # hearing from it.
        seq = publish(client, ("call.updated", {}))
        assert ws.receive_json()["seq"] == seq
        ws.send_json({"type": "resume", "after": 0, "boot": client.app.state.hub.boot})
        assert ws.receive_json() == {"type": "reset"}  # the console reloads the live calls


def test_a_card_gets_its_end_even_after_the_call_stops_matching_the_user(
    client: TestClient,
) -> None:
    u = users(client)
    maria = session(client, "maria")
    call = maria_call(u, "office:77")  # Maria's client: she sees it ringing at 101
    with connect(maria) as ws:
        start(ws)
        first = publish(client, call.ringing("101"))
        assert ws.receive_json()["seq"] == first
        # a late caller ID re-matched it to Dmitry's client; nothing else involves Maria
        call.match = dmitry_call(u).match
        publish(client, call.answered("101", u["secretary"]["id"], "Svetlana Orlova"))
        end = publish(client, call.ended())
        other = publish(client, dmitry_call(u, "office:78").ringing("103"))
        seqs = [ws.receive_json()["seq"], ws.receive_json()["seq"]]
        assert seqs[-1] == end and other not in seqs  # her card ended; strangers stay hidden


class ParseSpy:
    """Counts the replay window's events the bus turns back into objects."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = bus_module._load_event

        def counting(number: int, text: str) -> Any:
            self.count += 1
            return real(number, text)

        monkeypatch.setattr(bus_module, "_load_event", counting)


def test_a_resume_too_far_behind_is_reset_without_parsing_the_window(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = users(client)
    hub = client.app.state.hub
    hub.max_replay = 50
    secretary = session(client, "secretary")
    with connect(secretary) as ws:
        hello = start(ws)
    for i in range(200):  # all kept by the bus (20,000), four times the replay limit
        publish(client, maria_call(u, f"office:{i}").ringing("101"))
    spy = ParseSpy(monkeypatch)
    with connect(secretary) as ws:
        ws.receive_json()
        ws.send_json({"type": "resume", "after": hello["seq"], "boot": hello["boot"]})
        assert ws.receive_json() == {"type": "reset"}
    assert spy.count == 0


def test_a_resume_older_than_the_bus_window_is_reset_without_parsing(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("callcenter.services.EventBus", functools.partial(EventBus, history=20))
    monkeypatch.setattr("callcenter.cluster.outbox.ClusterBus",  # on PostgreSQL
                        functools.partial(ClusterBus, history=20))
    app = create_app(config, demo=False)
    with_demo_base(app)
    with TestClient(app) as client:
        u = users(client)
        secretary = session(client, "secretary")
        with connect(secretary) as ws:
            hello = start(ws)
        for i in range(30):
            publish(client, maria_call(u, f"office:{i}").ringing("101"))
        assert client.app.state.services.bus.oldest_seq > hello["seq"] + 1
        spy = ParseSpy(monkeypatch)
        with connect(secretary) as ws:
            ws.receive_json()
            ws.send_json({"type": "resume", "after": hello["seq"], "boot": hello["boot"]})
            assert ws.receive_json() == {"type": "reset"}
        assert spy.count == 0


def test_a_resume_within_the_window_parses_only_the_missed_events(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = users(client)
    maria = session(client, "maria")
    for i in range(300):  # history before the console's last event stays untouched
        publish(client, dmitry_call(u, f"office:old{i}").ringing("103"))
    with connect(maria) as ws:
        start(ws)
        seen = publish(client, maria_call(u).ringing("102"))
        assert ws.receive_json()["seq"] == seen
        hello_boot = client.app.state.hub.boot
    mine = maria_call(u)
    missed = [publish(client, dmitry_call(u, "office:x").ringing("103")),
              publish(client, mine.answered("102", u["maria"]["id"], "Maria")),
              publish(client, dmitry_call(u, "office:y").ringing("103")),
              publish(client, mine.ended())]
    spy = ParseSpy(monkeypatch)
    with connect(maria) as ws:
        ws.receive_json()
        ws.send_json({"type": "resume", "after": seen, "boot": hello_boot})
        replayed = [ws.receive_json() for _ in range(2)]
        marker = publish(client, maria_call(u, "office:z").ringing("102"))
        assert ws.receive_json()["seq"] == marker  # nothing else came before the live one
    assert [e["seq"] for e in replayed] == [missed[1], missed[3]]
    assert spy.count == len(missed)


def tie_call(u: dict[str, dict[str, Any]], call_id: str = "office:tie") -> FakeCall:
    """One number, three clients: Maria's, Dmitry's and one nobody manages."""
    candidates = [
        {"client_id": 1, "client_name": "Romashka", "contact_id": None, "contact_name": None,
         "manager_id": u["maria"]["id"], "matched_by": "e164"},
        {"client_id": 2, "client_name": "Olga Sokolova", "contact_id": None,
         "contact_name": None, "manager_id": u["dmitry"]["id"], "matched_by": "e164"},
        {"client_id": 3, "client_name": "Nobody's Ltd", "contact_id": None,
         "contact_name": None, "manager_id": None, "matched_by": "e164"},
    ]
    return FakeCall(call_id, "+74951234567", "", other_match("tie", candidates))


def names(match: dict[str, Any]) -> list[str]:
    return [c["client_name"] for c in match["candidates"]]


def test_tie_candidates_are_filtered_per_manager_live_and_in_replay(
    client: TestClient,
) -> None:
    u = users(client)
    secretary, maria, dmitry = (session(client, n) for n in ("secretary", "maria", "dmitry"))
    call = tie_call(u)
    with connect(secretary) as ws_s, connect(maria) as ws_m, connect(dmitry) as ws_d:
        hello = start(ws_s)
        start(ws_m)
        start(ws_d)
        seq = publish(client, call.ringing("101", "102", "103"))
        assert names(ws_s.receive_json()["data"]["match"]) == [
            "Romashka", "Olga Sokolova", "Nobody's Ltd"]
        got_m, got_d = ws_m.receive_json(), ws_d.receive_json()
        assert got_m["seq"] == got_d["seq"] == seq
        assert names(got_m["data"]["match"]) == ["Romashka"]
        assert names(got_d["data"]["match"]) == ["Olga Sokolova"]
        assert got_m["data"]["call"] == got_d["data"]["call"]  # only the candidates differ
    # The same rule on a resume.
    with connect(dmitry) as ws:
        ws.receive_json()
        ws.send_json({"type": "resume", "after": hello["seq"], "boot": hello["boot"]})
        replayed = ws.receive_json()
        assert replayed["seq"] == seq and names(replayed["data"]["match"]) == ["Olga Sokolova"]


def test_tie_candidates_are_filtered_per_manager_in_the_call_log(client: TestClient) -> None:
    u = users(client)
    call = tie_call(u).ringing("102", "103")[1]["match"]
    store = client.app.state.services.store
    row = {"id": "office:tie.1", "line": "office", "direction": "inbound",
           "caller_raw": "+74951234567", "caller_e164": "+74951234567", "state": "missed",
           "ringing_at": "2026-11-22T10:00:00+00:00", "candidates": call["candidates"],
           "rang": ["102", "103"], "users": [u["maria"]["id"], u["dmitry"]["id"]]}
    client.portal.call(store.upsert_call, row)
    seen = {}
    for login in ("secretary", "maria", "dmitry"):
        api = Api(session(client, login))
        [listed] = api.get("/api/calls").json()
        one = api.get(f"/api/calls/{row['id']}").json()
        assert one["candidates"] == listed["candidates"]
        seen[login] = [c["client_name"] for c in listed["candidates"]]
    assert seen == {"secretary": ["Romashka", "Olga Sokolova", "Nobody's Ltd"],
                    "maria": ["Romashka"], "dmitry": ["Olga Sokolova"]}


def test_tie_candidates_are_filtered_per_manager_in_the_live_calls(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = users(client)
    registry = client.app.state.services.extra["calls"].registry
    _, data = tie_call(u).ringing("101", "102", "103")
    monkeypatch.setattr(registry, "live", lambda: [types.SimpleNamespace(id="office:tie")])
    monkeypatch.setattr(registry, "snapshot", lambda call: json.loads(json.dumps(data)))
    seen = {}
    for login in ("secretary", "maria", "dmitry"):
        [live] = Api(session(client, login)).get("/api/calls/live").json()
        seen[login] = names(live["match"])
    assert seen == {"secretary": ["Romashka", "Olga Sokolova", "Nobody's Ltd"],
                    "maria": ["Romashka"], "dmitry": ["Olga Sokolova"]}


def test_each_user_is_filtered_once_per_event_however_many_consoles(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = users(client)
    hub = client.app.state.hub
    checked: list[tuple[str, str]] = []
    real_match, real_visible = hub_module.match_for_user, hub.visible

    def match_spy(user: Any, *args: Any) -> Any:
        checked.append(("match", user.login))
        return real_match(user, *args)

    def visible_spy(user: Any, *args: Any) -> Any:
        checked.append(("visible", user.login))
        return real_visible(user, *args)

    monkeypatch.setattr(hub_module, "match_for_user", match_spy)
    monkeypatch.setattr(hub, "visible", visible_spy)
    logins = ["maria", "maria", "dmitry", "dmitry", "secretary"]
    with contextlib.ExitStack() as stack:
        consoles = [stack.enter_context(connect(session(client, login))) for login in logins]
        for ws in consoles:
            start(ws)
        publish(client, tie_call(u).ringing("101", "102", "103"))
        got = [names(ws.receive_json()["data"]["match"]) for ws in consoles]
    assert got == [["Romashka"], ["Romashka"], ["Olga Sokolova"], ["Olga Sokolova"],
                   ["Romashka", "Olga Sokolova", "Nobody's Ltd"]]
    assert sorted(checked) == sorted({(k, login) for k in ("match", "visible")
                                      for login in logins})


def test_a_tie_filtered_to_nothing_is_an_unknown_caller(client: TestClient) -> None:
    u = users(client)
    others = [c for c in tie_call(u).match["candidates"] if c["client_name"] != "Romashka"]
    call = FakeCall("office:tie2", "+74951234567", "", other_match("tie", others))
    secretary, maria, dmitry = (session(client, n) for n in ("secretary", "maria", "dmitry"))
    with connect(secretary) as ws_s, connect(maria) as ws_m, connect(dmitry) as ws_d:
        for ws in (ws_s, ws_m, ws_d):
            start(ws)
        publish(client, call.ringing("102", "103"))
        seen = {login: ws.receive_json()["data"]["match"]
                for login, ws in (("secretary", ws_s), ("maria", ws_m), ("dmitry", ws_d))}
    assert seen["secretary"]["kind"] == "tie" and len(seen["secretary"]["candidates"]) == 2
    # Maria's extension rang, but neither client is hers: to her it is an unknown caller.
    assert seen["maria"]["kind"] == "unknown" and seen["maria"]["candidates"] == []
    assert seen["maria"]["client"] is None and seen["maria"]["candidates_total"] == 0
    # Dmitry sees his one client (shown as his client's match, with nothing to choose).
    assert seen["dmitry"]["kind"] == "tie" and names(seen["dmitry"]) == ["Olga Sokolova"]
    assert seen["dmitry"]["candidates_total"] == 1

"""Pre-framed fan-out: each event framed once, the same bytes to every console that may see it."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
import websockets
from websockets.frames import Frame, Opcode

from callcenter.config import Config
from tests.e2e.events import FakeCall, client_match
from tests.e2e.server import LiveServer, with_demo_base
from tests.test_hub import _cookie
from ui import hub as hub_module
from ui import ws_frames
from ui.ws_frames import frame_sink, offer_frames, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_a_frame_is_the_bytes_websockets_would_send(size: int) -> None:
    payload = ("я" * size).encode()[:size]
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False,
                                                                         extensions=[])


def _call(call_id: str, manager_id: int, number: str) -> FakeCall:
    return FakeCall(call_id, number, "Ivan Petrov",
                    client_match(1, "Romashka", 1, "Ivan Petrov", manager_id, "Maria", "102"))


async def test_each_event_is_framed_once_and_filtered_per_user(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    framed: list[bytes] = []

    def spy(payload: bytes) -> bytes:
        framed.append(payload)
        return text_frame(payload)

    monkeypatch.setattr(hub_module, "text_frame", spy)
    with LiveServer(config, demo=False, configure=with_demo_base) as srv:
        url = srv.url.replace("http", "ws") + "/ws"
        logins = ["secretary", "secretary", "secretary", "maria", "dmitry"]
        consoles = []
        for login in logins:
            ws = await websockets.connect(url, compression=None, additional_headers={
                "Cookie": await _cookie(srv.url, login)})
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"type": "start"}))
            consoles.append(ws)
        hub = srv.app.state.hub  # type: ignore[union-attr]

        def streaming() -> bool:
            return len(hub.connections) == len(logins) and all(
                c.streaming and c.sink is not None for c in hub.connections)

        while not await asyncio.to_thread(srv.call, streaming):
            await asyncio.sleep(0.01)  # polling the server's state, not timing anything
        users = {u.login: u for u in await asyncio.to_thread(
            srv.call, srv.services.store.list_users)}
        mine = _call("office:1", users["maria"].id, "+79161234567")
        ring = srv.publish(*mine.ringing("101"))
        # Maria's client, ringing at the secretary's extension: no concern of Dmitry's.
        got: list[list[dict[str, Any]]] = []
        end = srv.publish(*mine.ended())
        for login, ws in zip(logins, consoles, strict=True):
            seen = []
            if login != "dmitry":
                seen = [json.loads(await ws.recv()), json.loads(await ws.recv())]
            got.append(seen)
        for ws in consoles:
            await ws.close()
    assert [[m["seq"] for m in seen] for seen in got] == [[ring, end]] * 4 + [[]]
    assert got[0] == got[1] == got[2] == got[3]
    # One frame per event, shared by the four consoles that saw it (each hello is its own).
    events = [p for p in framed if not p.startswith(b'{"type":"hello"')]
    assert len(framed) - len(events) == len(logins)
    assert len(events) == 2 and len(set(events)) == 2


class _Transport:
    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool:
        return False


def _protocol(**changes: Any) -> SimpleNamespace:
    """What offer_frames reads of uvicorn's websockets-sansio protocol, as uvicorn 0.54 has it."""
    fields: dict[str, Any] = {
        "response": SimpleNamespace(status_code=101), "conn": SimpleNamespace(extensions=[]),
        "scope": {"extensions": {"websocket.http.response": {}}}, "writable": asyncio.Event(),
        "handshake_complete": False, "close_sent": False, "disconnected": False,
        "transport": _Transport()}
    fields.update(changes)
    return SimpleNamespace(**{k: v for k, v in fields.items() if v is not _GONE})


_GONE = object()


def test_the_sink_is_offered_on_the_protocol_it_was_written_for() -> None:
    protocol = _protocol()
    assert offer_frames(protocol)
    assert frame_sink(protocol.scope) is protocol


@pytest.mark.parametrize("changed", [
    {"writable": _GONE}, {"writable": True}, {"close_sent": _GONE}, {"disconnected": _GONE},
    {"handshake_complete": _GONE}, {"transport": SimpleNamespace()}, {"scope": _GONE},
    {"scope": {}}, {"conn": SimpleNamespace()}])
def test_a_uvicorn_whose_internals_moved_gets_the_asgi_path(
        changed: dict[str, Any], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_frames, "_warned", False)
    protocol = _protocol(**changed)
    with caplog.at_level("WARNING", logger="ui.ws_frames"):
        assert not offer_frames(protocol)  # no AttributeError in the server's handshake
    assert "ASGI way" in caplog.text
    assert frame_sink(getattr(protocol, "scope", {})) is None  # the hub falls back to send_text


@pytest.mark.parametrize("changed", [{"response": SimpleNamespace(status_code=403)},
                                     {"conn": SimpleNamespace(extensions=["deflate"])}])
def test_no_sink_for_a_refused_handshake_or_an_extension(changed: dict[str, Any]) -> None:
    protocol = _protocol(**changed)
    assert not offer_frames(protocol)
    assert frame_sink(protocol.scope) is None


async def test_the_test_server_serves_consoles_as_the_cli_does(config: Config) -> None:
    """A browser offers permessage-deflate; `callcenter serve` turns it off, so the console
    gets the pre-framed path. The e2e server must do the same, or the browser tests would
    only ever exercise the fallback."""
    with LiveServer(config, demo=False, configure=with_demo_base) as srv:
        ws = await websockets.connect(  # websockets offers deflate by default, like Chromium
            srv.url.replace("http", "ws") + "/ws",
            additional_headers={"Cookie": await _cookie(srv.url, "secretary")})
        assert json.loads(await ws.recv())["type"] == "hello"
        assert ws.protocol.extensions == []
        hub = srv.app.state.hub  # type: ignore[union-attr]
        sinks = await asyncio.to_thread(srv.call, lambda: [c.sink for c in hub.connections])
        await ws.close()
    assert len(sinks) == 1 and sinks[0] is not None

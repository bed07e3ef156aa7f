"""The request-body cap and deadline over a real uvicorn server: endless uploads to routes
that never read a body, a body that trickles in, a client that drops mid-body."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from callcenter.app import create_app
from callcenter.config import Config
from ui.security import MAX_BODY

CHUNK = b" " * 65536
# Uploads end here only so that a server reading them whole fails instead of hanging.
# A test fails rather than hangs after this many seconds without an answer.
NO_ANSWER = 30.0
GIVE_UP = 64 * MAX_BODY


class Served:
    """The app behind uvicorn on a free port; ``done`` is set each time the app has finished
    with a request, and ``seen`` counts the body bytes it was handed."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.done = asyncio.Event()
        self.seen = 0
        self.address: tuple[str, int] = ("", 0)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> dict:
            message = await receive()
            self.seen += len(message.get("body", b""))
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            if scope["type"] == "http":
                self.done.set()


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Served]:
    served = Served(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    served.address = sock.getsockname()
    server = uvicorn.Server(uvicorn.Config(served, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield served
    finally:
        # force: a request still reading an endless body (the bug) must not hold the exit
        server.should_exit = server.force_exit = True
        await task


async def _connect(address: tuple[str, int]) -> socket.socket:
    # A raw socket, not asyncio streams: a StreamReader raises the reset on read before
    # handing over the answer that arrived ahead of it, which made the 413 look lost.
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    return sock


async def _read_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while block := await asyncio.get_running_loop().sock_recv(sock, 65536):
            data += block
    return data


async def endless_upload(address: tuple[str, int], method: str, path: str) -> tuple[bytes, int]:
    """A chunked upload that does not end; the answer read until the server closes, and
    how much was sent before the server stopped reading."""
    loop = asyncio.get_running_loop()
    sock = await _connect(address)
    sent = 0

    async def upload() -> None:
        nonlocal sent
        await loop.sock_sendall(sock, f"{method} {path} HTTP/1.1\r\nHost: cc\r\n"
                                      "Content-Type: application/json\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n".encode())
        with contextlib.suppress(OSError):
            while sent < GIVE_UP:
                await loop.sock_sendall(sock, b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                sent += len(CHUNK)
            await loop.sock_sendall(sock, b"0\r\n\r\n")

    try:
        answer, _ = await asyncio.wait_for(asyncio.gather(_read_all(sock), upload()),
                                           NO_ANSWER)
    finally:
        sock.close()
    return answer, sent


@pytest.mark.parametrize("method,path,status", [
    ("POST", "/api/session", b"413"),  # reads its body: cut off at the cap
    ("DELETE", "/api/session", b"200"),  # the rest never read a body
    ("POST", "/api/calls/x/hangup", b"401"),
    ("GET", "/healthz", b"200"),
    ("GET", "/api/recordings/1", b"401"),
    ("GET", "/static/js/api.js", b"200"),
])
async def test_an_endless_upload_is_answered_and_the_connection_closed(
        config: Config, caplog, method: str, path: str, status: bytes) -> None:
    caplog.set_level(logging.WARNING)
    async with serving(create_app(config, demo=True, demo_calls=False)) as served:
        answer, sent = await endless_upload(served.address, method, path)
    assert sent < GIVE_UP  # the server closed the connection: the upload broke off
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b"connection: close" in answer.lower()
    # one message from uvicorn holds what it buffered (64 KiB) plus one socket read (256 KiB)
    assert served.seen <= MAX_BODY + 320 * 1024
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_body_that_trickles_in_gets_a_408(config: Config) -> None:
    config.server.body_timeout = 0.2
    loop = asyncio.get_running_loop()
    async with serving(create_app(config, demo=True, demo_calls=False)) as served:
        for method, path in (("POST", "/api/session"), ("GET", "/healthz")):
            sock = await _connect(served.address)
            # 100 bytes announced, 10 sent, and then nothing (one a second in real life)
            await loop.sock_sendall(sock, f"{method} {path} HTTP/1.1\r\nHost: cc\r\nContent-Type:"
                                          " application/json\r\nContent-Length: 100\r\n\r\n"
                                          "{\"login\":".encode())
            answer = await asyncio.wait_for(_read_all(sock), NO_ANSWER)
            sock.close()
            if path == "/healthz":  # never reads the body: answered, then closed
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            else:
                assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
                assert b"body-timeout" in answer
            assert b"connection: close" in answer.lower()


async def test_a_client_dropping_mid_body_logs_no_error(config: Config, caplog) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    async with serving(create_app(config, demo=True, demo_calls=False)) as served:
        sock = await _connect(served.address)
        await loop.sock_sendall(sock, b"POST /api/session HTTP/1.1\r\nHost: cc\r\nContent-Type:"
                                      b" application/json\r\nContent-Length: 100\r\n\r\n{\"lo")
        sock.close()
        await served.done.wait()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

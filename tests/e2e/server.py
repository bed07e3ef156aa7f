"""The real app on uvicorn in a background thread, on 127.0.0.1 and a free port.

The server runs its own event loop; ``call`` runs a function or coroutine on it (the bus, the
registry and the AMI emulator are not thread-safe). ``stop`` (or leaving the ``with`` block)
shuts it down and joins the thread, so nothing outlives the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette

from callcenter.app import WS_PROTOCOL, create_app
from callcenter.config import Config

Hook = Callable[["LiveServer"], Awaitable[None] | None]


class _Server(uvicorn.Server):
    """Tells when it listens (uvicorn itself only sets a flag)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.started_event.set()


class LiveServer:
    def __init__(self, config: Config, *, demo: bool = True, before: Hook | None = None,
                 configure: Callable[[Starlette], None] | None = None,
                 after: Hook | None = None, deflate: bool = False) -> None:
        self.config = config
        # Off, as `callcenter serve` runs it: a browser offers permessage-deflate, and with it
        # the hub would take the ASGI path instead of its pre-framed writes (ui/ws_frames.py).
        self.deflate = deflate
        self.demo = demo
        self.before = before  # on the server loop before the app is built (start emulators)
        self.configure = configure  # on the app before it starts (add line components)
        self.after = after  # on the server loop after the server stopped
        self.app: Starlette | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: _Server | None = None
        self.state: dict[str, Any] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Any:
        assert self.app is not None
        return self.app.state.services

    def start(self, timeout: float = 20.0) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("the server did not start in time")
        if self._error is not None:
            raise RuntimeError("the server failed to start") from self._error
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result (awaited if async)."""
        assert self.loop is not None

        async def run() -> Any:
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def publish(self, topic: str, data: dict[str, Any]) -> int:
        return self.call(lambda: self.services.bus.publish(topic, data).seq)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), never lost in the thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.before is not None:
            result = self.before(self)
            if inspect.isawaitable(result):
                await result
        self.app = create_app(self.config, demo=self.demo)
        if self.configure is not None:
            self.configure(self.app)
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning",
                                ws=WS_PROTOCOL, ws_per_message_deflate=self.deflate,
                                timeout_graceful_shutdown=3)
        self.server = _Server(config)
        serving = asyncio.create_task(self.server.serve(sockets=[self._sock]))
        started = asyncio.create_task(self.server.started_event.wait())
        await asyncio.wait([serving, started], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        self._ready.set()
        await serving
        if self.after is not None:
            result = self.after(self)
            if inspect.isawaitable(result):
                await result


@contextlib.asynccontextmanager
async def demo_base(services: Any, demo: bool) -> Any:
    """An app component that seeds the demo users and clients without the demo PBX, so the
    only calls a test sees are the ones it makes."""
    from callcenter.demo import DEMO_PASSWORD, seed_demo
    from ui.security import hash_password

    await seed_demo(services.store, hash_password(DEMO_PASSWORD))
    yield


def with_demo_base(app: Starlette) -> None:
    app.state.components.append(demo_base)

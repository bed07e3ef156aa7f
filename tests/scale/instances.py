"""Product instances as separate processes (``callcenter serve`` with a TOML config, as ``make
run`` starts one) on one PostgreSQL, and websocket consoles that speak the hub's protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import REPO

SECRET_KEY = "cluster-test-session-key-" + "k" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(self, tmp: Path, name: str, pg_url: str | None, ami_port: int | None,
                 lease_seconds: float = 3.0, ami_user: str = "crm",
                 ami_secret: str = "crm-secret") -> None:
        self.name = name
        self.tmp = tmp / name
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = self.tmp / "callcenter.toml"
        pbx = ("" if ami_port is None else
               f'[[pbx]]\nname = "office"\nhost = "127.0.0.1"\nport = {ami_port}\n'
               f'username = "{ami_user}"\nsecret = "{ami_secret}"\n'
               'trunk_endpoints = ["trunk", "faxtrunk"]\n')
        self.config.write_text(
            f'[server]\nport = {self.port}\nsecret_key = "{SECRET_KEY}"\n\n'
            f'[store]\ndata_dir = "{self.tmp / "var"}"\n'
            + (f'url = "{pg_url}"\n' if pg_url else "") + "\n"
            f'[cluster]\ninstance_id = "{name}"\nlease_seconds = {lease_seconds}\n\n{pbx}')
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        out = (self.tmp / "product.log").open("w")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcenter.cli", "serve", "--config", str(self.config),
            cwd=REPO, stdout=out, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        out.close()
        await self.until_ready()

    async def until_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Polls /ready: a process starting up has nothing else to wait on."""
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(timeout):
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.log()
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(self.url + "/ready")
                    if r.status_code == 200:
                        return r.json()
                await asyncio.sleep(0.1)

    def log(self) -> str:
        return (self.tmp / "product.log").read_text(errors="replace")[-4000:]

    async def login(self, login: str, password: str) -> str:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            r = await client.post("/api/session", json={"login": login, "password": password})
            assert r.status_code == 200, r.text
            return r.cookies["cc_session"]

    async def get(self, path: str, cookie: str) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10,
                                     cookies={"cc_session": cookie}) as client:
            r = await client.get(path)
            assert r.status_code == 200, r.text
            return r.json()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Console:
    """A console's websocket: hello, start (or resume), then every event, kept in order."""

    def __init__(self, cookie: str) -> None:
        self.cookie = cookie
        self.events: list[dict[str, Any]] = []
        self.hello: dict[str, Any] = {}
        self.resets = 0
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else self.hello.get("seq", 0)

    async def open(self, instance: Instance, *, resume: bool = False) -> None:
        self.closed.clear()
        self._ws = await connect(
            instance.url.replace("http", "ws") + "/ws",
            additional_headers={"Cookie": f"cc_session={self.cookie}", "Origin": instance.url})
        old_boot = self.hello.get("boot")
        after = self.last_seq
        self.hello = json.loads(await self._ws.recv())
        assert self.hello["type"] == "hello", self.hello
        if resume:
            await self._ws.send(json.dumps({"type": "resume", "after": after,
                                            "boot": old_boot}))
        else:
            await self._ws.send(json.dumps({"type": "start"}))
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for text in self._ws:
                message = json.loads(text)
                if message.get("type") == "reset":
                    self.resets += 1
                elif "seq" in message and message.get("type") not in ("hello", "pong"):
                    self.events.append(message)
                self._changed.set()
        except Exception:  # the instance died under it: what a console sees as a drop
            pass
        finally:
            self.closed.set()
            self._changed.set()

    async def until(self, check: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    def saw(self, topic: str, call_id: str) -> bool:
        return any(e["type"] == topic and e["data"].get("call", {}).get("id") == call_id
                   for e in self.events)

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader

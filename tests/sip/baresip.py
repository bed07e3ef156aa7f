"""baresip phones for the tests, on 127.0.0.1 and free ports (auto-answer or manual, REFER),
controlled over ctrl_tcp; the PBX they register at is :mod:`tests.sip.kamailio_pbx`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_sip_port() -> int:
    """A port free for UDP and TCP, with the next one free for TCP (baresip listens on UDP
    and TCP there, and TLS on the port after)."""
    while True:
        with contextlib.ExitStack() as stack:
            t = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)).bind(
                    ("127.0.0.1", port))
                stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)).bind(
                    ("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


@dataclass
class Baresip:
    """One phone: registers ``user`` at ``registrar``, answers every call at once, follows a
    REFER (calls the target and reports with NOTIFY sipfrag). Controlled over ctrl_tcp."""

    work: Path
    user: str
    password: str
    registrar: str
    answer: str = "auto"  # or "manual": it rings until the caller gives up
    port: int = field(default_factory=free_sip_port)
    ctrl_port: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))
    proc: asyncio.subprocess.Process | None = None
    events: list[dict] = field(default_factory=list)
    _reader: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _writer: asyncio.StreamWriter | None = None

    async def start(self) -> Baresip:
        conf = self.work / f"baresip-{self.user}"
        conf.mkdir(parents=True, exist_ok=True)
        modules = "/usr/lib/baresip/modules"
        (conf / "config").write_text(f"""
poll_method epoll
sip_listen 127.0.0.1:{self.port}
sip_trans_def udp
audio_player aufile,{conf}/heard.wav
audio_source ausine,440
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
audio_alert aufile,{conf}/alert.wav
rtp_ports 20000-40000
module_path {modules}
module g711.so
module ausine.so
module aufile.so
module_app account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}
""")
        (conf / "accounts").write_text(
            f"<sip:{self.user}@{self.registrar};transport=udp>;auth_pass={self.password};"
            f"answermode={self.answer};regint=600;audio_codecs=PCMA,PCMU\n")
        (conf / "contacts").write_text("")
        self.log = conf / "baresip.log"
        out = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            "baresip", "-f", str(conf), stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=out)
        out.close()
        for _ in range(200):
            if self.proc.returncode is not None:
                raise RuntimeError(f"baresip exited: {self.log.read_text()[-2000:]}")
            try:
                reader, self._writer = await asyncio.open_connection("127.0.0.1",
                                                                     self.ctrl_port)
                break
            except OSError:
                await asyncio.sleep(0.05)  # not yet listening: a start-up poll, not a sync
        else:
            raise RuntimeError("baresip's ctrl_tcp did not open")
        self._reader = asyncio.create_task(self._read(reader))
        # It may have registered before we listened: ask; if not yet, its event comes later.
        await self.command("reginfo")
        answer = await self.wait_for(lambda e: e.get("response") is True)
        if "OK" not in str(answer.get("data")):
            await self.wait_for(lambda e: e.get("type") in ("REGISTER_OK", "REGISTER_FAIL"))
        if not ("OK" in str(answer.get("data"))
                or any(e.get("type") == "REGISTER_OK" for e in self.events)):
            raise RuntimeError(f"baresip {self.user} did not register: {self.events}")
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        # netstrings: "<len>:<json>,"
        while True:
            head = await reader.readuntil(b":")
            data = await reader.readexactly(int(head[:-1]))
            await reader.readexactly(1)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(data))
                self._changed.set()

    async def wait_for(self, pred, timeout: float = 20) -> dict:
        async def wait() -> dict:
            while True:
                for event in self.events:
                    if pred(event):
                        return event
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(wait(), timeout)

    async def command(self, command: str, params: str = "") -> None:
        assert self._writer is not None
        data = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        self._writer.write(f"{len(data)}:".encode() + data + b",")
        await self._writer.drain()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._writer is not None:
            self._writer.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def copy_log(path: Path | None) -> str:
    return path.read_text()[-3000:] if path and path.exists() else ""


__all__ = ["Baresip", "copy_log", "free_port"]

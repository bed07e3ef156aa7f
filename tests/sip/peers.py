"""Real SIP peers for the tests, on 127.0.0.1 and free ports: kamailio (registrar, proxy,
ring group, presence server for the dialog package) and baresip phones (auto-answer, REFER).

Each peer is started by the test in a temporary directory and stopped (and awaited) by it;
``Kamailio.restart()`` stops and starts it again on the same port, with all its state lost
(registrations, subscriptions), as a PBX reboot does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
DBTEXT = Path("/usr/share/kamailio/dbtext/kamailio")
PRESENCE_TABLES = ("version", "presentity", "active_watchers", "watchers", "xcap", "pua")


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


async def _wait_udp(port: int, proc: asyncio.subprocess.Process, what: str) -> None:
    """Until something answers an OPTIONS on ``port`` (the peer's SIP stack is up)."""
    loop = asyncio.get_running_loop()
    probe = (f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:"
             "{p};branch=z9hG4bKprobe{n}\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: "
             f"<sip:probe@127.0.0.1:{port}>\r\nCall-ID: probe{{n}}\r\nCSeq: 1 OPTIONS\r\n"
             "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        me = sock.getsockname()[1]
        for n in range(200):
            if proc.returncode is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            sock.sendto(probe.format(p=me, n=n).encode(), ("127.0.0.1", port))
            try:
                await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.1)
                return
            except (TimeoutError, ConnectionRefusedError):
                continue
    raise RuntimeError(f"{what} did not answer on UDP {port}")


@dataclass
class Kamailio:
    work: Path
    users: dict[str, str]  # extension -> password
    carrier: str = "127.0.0.1:9"  # where numbers of 7+ digits go
    group: str = "700"
    group_members: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()  # users whose REGISTER gets 403
    static: dict[str, str] = field(default_factory=dict)  # extension -> host:port, unregistered
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> Path:
        db = self.work / "db"
        if not db.exists():
            db.mkdir(parents=True)
        for table in PRESENCE_TABLES:  # empty tables: a restart loses everything
            header = (DBTEXT / table).read_text().splitlines()[0] + "\n"
            if table == "version":
                header = (DBTEXT / table).read_text()
            (db / table).write_text(header)
        users = "\n".join([f'\t$sht(pw=>{u}) = "{p}";' for u, p in self.users.items()]
                          + [f"\t$sht(blocked=>{u}) = 1;" for u in self.blocked])
        static = "\n".join(f'\tif ($rU == "{u}") {{ $du = "sip:{a}"; t_relay(); exit; }}'
                           for u, a in self.static.items())
        text = (HERE / "kamailio_presence.cfg").read_text()
        for key, value in (("LISTEN_PORT", str(self.port)), ("CARRIER", self.carrier),
                           ("DBDIR", str(db)), ("GROUP_MEMBERS", ",".join(self.group_members)),
                           ("GROUP", self.group), ("USERS", users or "\tnull;"),
                           ("STATIC", static)):
            text = text.replace(f"@{key}@", value)
        path = self.work / "kamailio.cfg"
        path.write_text(text)
        return path

    async def start(self) -> Kamailio:
        self.work.mkdir(parents=True, exist_ok=True)
        cfg = self._config()
        self.log = self.work / "kamailio.log"
        out = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            "kamailio", "-f", str(cfg), "-DD", "-E", "-w", str(self.work), "-m", "32", "-M", "8",
            "-P", str(self.work / "kamailio.pid"), "-Y", str(self.work),
            stdout=out, stderr=out, start_new_session=True)
        out.close()
        try:
            await _wait_udp(self.port, self.proc, "kamailio")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{self.log.read_text()[-3000:]}") from None
        return self

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        self.proc = None

    async def kill(self) -> None:
        """SIGKILL to kamailio and its children at once: the PBX vanishes mid-call."""
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        self.proc = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


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


__all__ = ["Baresip", "Kamailio", "copy_log", "free_port", "shutil"]

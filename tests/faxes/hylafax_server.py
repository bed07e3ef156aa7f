"""HylaFAX's own server (hfaxd + faxq from Debian's hylafax-server) on a private spool and a
free port, for the tests. No modem: submitted jobs wait in state W until killed.

What it takes (learnt here, see fax/README.md): the spool needs the queue folders, etc/ (the
Debian package keeps it in /etc/hylafax and its init script copies it into the spool), bin/
(the scripts faxq runs), a hosts.hfaxd that lets the client in, and — when started as root —
to be owned by the fax user (uucp): hfaxd switches to it and then fails with "420 ... Could
not create client/<pid>: Permission denied" on a root-owned spool. faxq creates the FIFO
hfaxd talks to; it must be up first. ``-l`` (bind address) must come before ``-i`` (port).
The fax user must also reach the spool through every parent folder (hfaxd exits 255 when
it cannot: a spool under a 0700 folder such as pytest's tmp_path does not work).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ADMIN_PASSWORD = "hylafax-admin-test"
QUEUES = ("sendq", "doneq", "docq", "recvq", "tmp", "log", "info", "status", "client",
          "archive", "pollq", "dev", "config")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HylaFaxServer:
    spool: Path
    port: int
    faxq: subprocess.Popen[bytes]
    hfaxd: subprocess.Popen[bytes]
    owner: tuple[int, int] | None

    def put_received(self, name: str, data: bytes, mode: int = 0o600) -> Path:
        """A fax as faxgetty leaves it in recvq (mode: its RecvFileMode)."""
        path = self.spool / "recvq" / name
        path.write_bytes(data)
        if self.owner is not None:
            os.chown(path, *self.owner)
        path.chmod(mode)
        return path

    def stop(self) -> None:
        for process in (self.hfaxd, self.faxq):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def _wait(what: str, ready, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"HylaFAX: {what} did not come up")
        time.sleep(0.05)


def start_hylafax(spool: Path) -> HylaFaxServer:
    for name in QUEUES:
        (spool / name).mkdir(parents=True)
    shutil.copytree("/etc/hylafax", spool / "etc")
    (spool / "bin").symlink_to("/var/spool/hylafax/bin")
    hosts = spool / "etc" / "hosts.hfaxd"
    # host:uid:password:admin password (crypt); ADMIN is needed to delete from recvq.
    hashed = subprocess.run(["openssl", "passwd", "-1", ADMIN_PASSWORD], check=True,
                            capture_output=True, text=True).stdout.strip()
    hosts.write_text(f"127.0.0.1:::{hashed}\n")
    hosts.chmod(0o600)
    owner = None
    if os.geteuid() == 0:
        fax_user = pwd.getpwnam("uucp")
        owner = (fax_user.pw_uid, fax_user.pw_gid)
        for path in [spool, *spool.rglob("*")]:
            os.chown(path, *owner, follow_symlinks=False)
    faxq = subprocess.Popen(["faxq", "-q", str(spool), "-D"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait("faxq's FIFO", lambda: (spool / "FIFO").exists() or faxq.poll() is not None)
    port = free_port()
    hfaxd = subprocess.Popen(["hfaxd", "-q", str(spool), "-l", "127.0.0.1", "-i", str(port),
                              "-d"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        if hfaxd.poll() is not None:
            raise RuntimeError(f"hfaxd exited with {hfaxd.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    server = HylaFaxServer(spool, port, faxq, hfaxd, owner)
    try:
        _wait("hfaxd", listening)
    except BaseException:
        server.stop()
        raise
    return server

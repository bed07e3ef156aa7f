"""A real kamailio 5.6 (Debian) for the SIP tests: generated config, free ports, start/stop/restart.

The config is composed from parts so other tests can add to it without copying it:

* ``KamailioConfig.users`` — user → plain-text password (kept in an ``htable`` filled at
  start: no SQL server, no db files); ``forbidden`` — users answered ``403 Forbidden``;
* ``challenge`` — ``"www"`` (401, the usual) or ``"proxy"`` (407) for REGISTER;
* ``modules`` / ``modparams`` — extra ``loadmodule`` names and ``modparam(...)`` lines;
* ``before_register`` — script lines run for every request before REGISTER handling (end
  with ``exit`` to take a request over, e.g. SUBSCRIBE for the presence modules);
* ``other_requests`` — the lines that handle everything that is not REGISTER/OPTIONS to us
  (default: ``404``; ``PROXY_TO_REGISTERED`` relays to registered users, record-routing);
* ``routes`` — extra ``route[...]``/``event_route[...]`` blocks.

``Kamailio(config, tmp_path)`` is a context manager; ``start()`` returns once kamailio answers
an OPTIONS on UDP (and accepts TCP), ``stop()`` waits for the process to exit, ``restart()``
keeps the ports. Blocking calls: from async tests use ``await asyncio.to_thread(k.restart)``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# ``other_requests`` for a plain proxy: in-dialog requests follow their Route, CANCEL its
# INVITE, the rest goes to the registered Contact of the Request-URI's user (or 404).
PROXY_TO_REGISTERED = """
    if (is_method("INVITE|SUBSCRIBE|REFER")) {
        record_route();
    }
    if (has_totag()) {
        if (loose_route() || is_method("ACK")) {
            t_relay();
            exit;
        }
        sl_send_reply("404", "Not Here");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            t_relay();
        }
        exit;
    }
    if (!lookup("location")) {
        sl_send_reply("404", "Not Found");
        exit;
    }
    t_relay();
"""

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
START_TIMEOUT = 15.0


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (kamailio listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def _quote(value: str) -> str:
    if any(c in value for c in '"\\\n\r'):
        raise ValueError("test credentials must not contain quotes, backslashes or newlines")
    return f'"{value}"'


@dataclass
class KamailioConfig:
    users: dict[str, str] = field(default_factory=lambda: {"100": "secret100"})
    forbidden: set[str] = field(default_factory=set)
    challenge: str = "www"  # or "proxy": REGISTER challenged with 407
    min_expires: int = 1
    max_expires: int = 3600
    nonce_expire: int = 300
    tcp_lifetime: int = 3605  # seconds an idle TCP connection is kept before kamailio closes it
    modules: list[str] = field(default_factory=list)
    modparams: list[str] = field(default_factory=list)
    before_register: str = ""
    other_requests: str = 'sl_send_reply("404", "Not Here");'
    routes: str = ""

    def render(self, udp_port: int, tcp_port: int) -> str:
        modules = [
            "tm", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog", "sanity",
            "htable", "auth", "usrloc", "registrar", "cfgutils", *self.modules,
        ]  # fmt: skip
        seen: list[str] = []
        for m in modules:
            if m not in seen:
                seen.append(m)
        users = "\n".join(
            f"    $sht(users=>{_quote(u)[1:-1]}) = {_quote(p)};" for u, p in self.users.items()
        )
        forbidden = "\n".join(f"    $sht(forbidden=>{u}) = 1;" for u in sorted(self.forbidden))
        check, challenge = (
            ("pv_www_authenticate", "www_challenge")
            if self.challenge == "www"
            else ("pv_proxy_authenticate", "proxy_challenge")
        )
        loads = "\n".join(f'loadmodule "{m}.so"' for m in seen)
        extra_params = "\n".join(self.modparams)
        return f"""#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:{udp_port}
listen=tcp:127.0.0.1:{tcp_port}
alias="127.0.0.1:{udp_port}"
tcp_connection_lifetime={self.tcp_lifetime}
mpath="{MODULES}"
{loads}
modparam("htable", "htable", "users=>size=6;")
modparam("htable", "htable", "forbidden=>size=4;")
modparam("auth", "secret", "{secrets.token_hex(16)}")
modparam("auth", "nonce_expire", {self.nonce_expire})
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", {self.min_expires})
modparam("registrar", "max_expires", {self.max_expires})
modparam("registrar", "default_expires", 60)
modparam("rr", "enable_full_lr", 1)
{extra_params}

event_route[htable:mod-init] {{
{users}
{forbidden}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        xlog("L_INFO", "malformed request dropped\\n");
        exit;
    }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
{self.before_register}
    if (is_method("REGISTER")) {{
        route(REGISTRAR);
        exit;
    }}
{self.other_requests}
}}

route[REGISTRAR] {{
    if ($sht(forbidden=>$fU) != $null) {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    $var(pw) = $sht(users=>$fU);
    if ($var(pw) == $null) {{
        $var(pw) = "{secrets.token_hex(16)}";
    }}
    {check}("$td", "$var(pw)", "0");
    $var(rc) = $rc;
    if ($var(rc) < 0) {{
        if ($var(rc) == -4) {{
            {challenge}("$td", "17");
        }} else {{
            {challenge}("$td", "1");
        }}
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{
        sl_reply_error();
    }}
    exit;
}}
{self.routes}
"""


class Kamailio:
    def __init__(self, config: KamailioConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.udp_port = free_port()
        self.tcp_port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kamailio.log"
        self.starts = 0

    @property
    def udp(self) -> tuple[str, int]:
        return self.host, self.udp_port

    @property
    def tcp(self) -> tuple[str, int]:
        return self.host, self.tcp_port

    def start(self) -> None:
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(self.config.render(self.udp_port, self.tcp_port))
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                KAMAILIO,
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-m",
                "32",
                "-M",
                "8",
                "-Y",
                str(run),
                "-P",
                str(run / "kamailio.pid"),
                "-w",
                str(self.workdir),
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,  # its children are stopped with it, and only they
        )
        log.close()
        self.starts += 1
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        probe = (
            "OPTIONS sip:{h}:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{lp};branch=z9hG4bK{b}\r\n"
            "From: <sip:probe@{h}>;tag=p\r\nTo: <sip:{h}:{p}>\r\nCall-ID: {b}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.2)  # each probe waits for kamailio's answer, then asks again
            lp = s.getsockname()[1]
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"kamailio exited at start:\n{self.log_tail()}")
                data = probe.format(h=self.host, p=self.udp_port, lp=lp, b=secrets.token_hex(4))
                s.sendto(data.encode(), self.udp)
                try:
                    reply = s.recv(65535)
                except (TimeoutError, ConnectionRefusedError):
                    continue
                if reply.startswith(b"SIP/2.0 200"):
                    with socket.create_connection(self.tcp, timeout=2):
                        return
        raise RuntimeError(f"kamailio did not answer in {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

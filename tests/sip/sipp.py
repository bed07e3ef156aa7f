"""sipp (Debian sip-tester) as the carrier or the client of a test, on 127.0.0.1.

``run_sipp`` runs one scenario of tests/sip/scenarios/ to its end and returns sipp's exit code
with its output; sipp's own timeout bounds it, so a peer that never answers fails the test
instead of hanging it."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).parent / "scenarios"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SippRun:
    rc: int
    output: str


def sipp_command(scenario: str, target: str, keys: dict[str, str], *, calls: int = 1,
                 port: int | None = None, timeout: float = 20, rate: float | None = None,
                 work_dir: Path | None = None, service: str = "crm",
                 extra: tuple[str, ...] = ()) -> list[str]:
    cmd = ["sipp", "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-i", "127.0.0.1",
           "-p", str(port or free_udp_port()), "-s", service, "-nostdin",
           "-timeout", f"{timeout:g}s", "-timeout_error", "-max_recv_loops", "1000", *extra]
    if rate is not None:
        cmd += ["-r", f"{rate:g}", "-l", str(calls)]
    for key, value in keys.items():
        cmd += ["-key", key, value]
    return [*cmd, target] if target else cmd  # no target: sipp waits as the called party


async def run_sipp(scenario: str, target: str, keys: dict[str, str], **kwargs: object
                   ) -> SippRun:
    cmd = sipp_command(scenario, target, keys, **kwargs)  # type: ignore[arg-type]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    return SippRun(proc.returncode or 0, out.decode("utf-8", "replace")[-4000:])


def cue(sipp_port: int, call_id: str) -> None:
    """Tell a waiting ``*_on_cue`` scenario to go on (an OPTIONS on its call)."""
    msg = (f"OPTIONS sip:sipp@127.0.0.1:{sipp_port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcue\r\nFrom: <sip:test@127.0.0.1>;tag=t"
           f"\r\nTo: <sip:sipp@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
           f"Content-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(msg, ("127.0.0.1", sipp_port))

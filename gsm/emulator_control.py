"""The emulator as its own process, and its control channel: JSON lines over a unix socket.

``python -m gsm.emulator --path /tmp/x/modem0 --path /tmp/x/modem1 --control /tmp/x/ctl.sock
--send-log /tmp/x/sent.jsonl --family huawei --send-time 0.05`` starts the modems, prints one JSON
line ``{"ready": true, ...}`` on stdout, and serves requests such as::

    {"op": "sms", "modem": "modem0", "from": "+79161234567", "text": "Привет"}
    {"op": "call", "modem": "modem0", "from": "+79161234567", "rings": 3}
    {"op": "fault", "modem": "modem0", "kind": "error", "command": "AT+CMGS",
     "text": "+CMS ERROR: 500"}
    {"op": "unplug", "modem": "modem0"}    {"op": "plug", "modem": "modem0"}
    {"op": "set", "modem": "modem0", "send_time": 0.01}    {"op": "status"}    {"op": "sent"}

Each request gets one JSON line back: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
``"modem"`` may be left out when the process runs one modem. The process outlives any product
that uses its modems, which is what the SIGKILL tests need.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import asdict
from typing import Any

from gsm.emulator import ModemEmulator
from gsm.emulator_families import FAMILIES, ModemConfig

MAX_REQUEST = 1 << 20
_SETTABLE = {"send_time", "report_delay", "report_status", "rssi", "registered", "ring_interval",
             "ussd_delay", "ussd_replies", "ussd_encoding", "time_scale", "operator", "smsc",
             "failed_destinations", "failed_seqs", "cnma_timeout"}  # fmt: skip


class ControlError(Exception):
    pass


def _modem(emus: dict[str, ModemEmulator], req: dict[str, Any]) -> ModemEmulator:
    name = req.get("modem")
    if name is None:
        if len(emus) != 1:
            raise ControlError("say which modem: " + ", ".join(emus))
        return next(iter(emus.values()))
    if name not in emus:
        raise ControlError(f"no modem {name!r}")
    return emus[name]


def _sender(req: dict[str, Any]) -> str:
    # "from" as in the protocol; "sender" for Python callers, where from is a keyword
    value = req.get("from", req.get("sender"))
    if value is None:
        raise ControlError('say who sends: "from"')
    return str(value)


async def handle_request(emus: dict[str, ModemEmulator], req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "status":
        return {
            name: {"plugged": e.plugged, "sent": len(e.sent), "sim": len(e.sim),
                   "commands": len(e.commands), "faults": len(e.faults), "path": e.path}
            for name, e in emus.items()
        }  # fmt: skip
    if op == "sent":
        targets = [_modem(emus, req)] if "modem" in req else list(emus.values())
        return {"sent": [asdict(s) for e in targets for s in e.sent]}
    m = _modem(emus, req)
    if op in ("sms", "store"):
        fn = m.deliver_sms if op == "sms" else m.store_sms
        kw: dict[str, Any] = {}
        if req.get("alphabet"):
            kw["alphabet"] = req["alphabet"]
        if op == "sms":
            kw["duplicate"] = bool(req.get("duplicate", False))
        if req.get("ref") is not None:
            kw["ref"] = int(req["ref"])
        return {"slots": fn(_sender(req), str(req["text"]), **kw)}
    if op == "call":
        m.ring(_sender(req), rings=int(req.get("rings", 3)))
        return {}
    if op == "hangup":
        m.caller_hangs_up()
        return {}
    if op == "fault":
        m.fault(str(req["kind"]), command=req.get("command"), text=str(req.get("text", "")),
                count=int(req.get("count", 1)), after=float(req.get("after", 0.0)))  # fmt: skip
        return {}
    if op == "garbage":
        m.garbage(bytes.fromhex(req["hex"]) if req.get("hex") else None)
        return {}
    if op == "urc":
        m.urc(str(req["text"]))
        return {}
    if op == "unplug":
        m.unplug()
        return {}
    if op == "plug":
        m.plug()
        return {}
    if op == "set":
        for k, v in req.items():
            if k in ("op", "modem"):
                continue
            if k not in _SETTABLE:
                raise ControlError(f"cannot set {k!r}")
            setattr(m.config, k, frozenset(v) if k.startswith("failed_") else v)
        return {}
    raise ControlError(f"unknown op {op!r}")


async def serve_control(emus: dict[str, ModemEmulator], path: str) -> asyncio.AbstractServer:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ControlError("a request is a JSON object")
                    resp = {"ok": True, **await handle_request(emus, req)}
                except Exception as exc:  # a bad request never stops the emulator
                    resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(resp, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return await asyncio.start_unix_server(client, path, limit=MAX_REQUEST)


class EmulatorClient:
    """Talks to a running ``python -m gsm.emulator`` (async)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, op: str, **kw: Any) -> dict[str, Any]:
        if self._rw is None:
            self._rw = await asyncio.open_unix_connection(self.path, limit=MAX_REQUEST)
        reader, writer = self._rw
        writer.write(json.dumps({"op": op, **kw}, ensure_ascii=False).encode() + b"\n")
        await writer.drain()
        resp = json.loads(await reader.readline())
        if not resp.get("ok"):
            raise ControlError(resp.get("error", "failed"))
        return resp

    async def close(self) -> None:
        if self._rw is not None:
            self._rw[1].close()
            with contextlib.suppress(ConnectionError):
                await self._rw[1].wait_closed()
            self._rw = None


def control(path: str, op: str, **kw: Any) -> dict[str, Any]:
    """One blocking request (for scripts and benchmarks that are not async)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(json.dumps({"op": op, **kw}, ensure_ascii=False).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    resp = json.loads(buf)
    if not resp.get("ok"):
        raise ControlError(resp.get("error", "failed"))
    return resp


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gsm.emulator", description=__doc__.split("\n")[0])
    p.add_argument(
        "--path", action="append", default=[],
        help="symlink to create (repeatable); PATH@family overrides --family for that modem",
    )  # fmt: skip
    p.add_argument("--dir", help="with --modems N: create DIR/modem0 … DIR/modemN-1")
    p.add_argument("--modems", type=int, default=0)
    p.add_argument("--family", default="generic", choices=sorted(FAMILIES))
    p.add_argument("--control", help="unix socket for the control channel")
    p.add_argument("--send-log", help="append-only JSON-lines log of every SMS sent")
    p.add_argument("--send-time", type=float, default=5.0)
    p.add_argument("--report-delay", type=float, default=2.0)
    p.add_argument("--report-status", type=int, default=0)
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--pin")
    p.add_argument("--rssi-interval", type=float, help="periodic ^RSSI (Huawei) every N s")
    return p


async def run(args: argparse.Namespace) -> None:
    paths = list(args.path)
    if args.modems:
        if not args.dir:
            raise SystemExit("--modems needs --dir")
        paths += [os.path.join(args.dir, f"modem{i}") for i in range(args.modems)]
    if not paths:
        raise SystemExit("give --path (or --dir and --modems)")
    emus: dict[str, ModemEmulator] = {}
    for i, spec in enumerate(paths):
        path, _, family = spec.partition("@")
        family = family or args.family
        if family not in FAMILIES:
            raise SystemExit(f"unknown family {family!r}: " + ", ".join(sorted(FAMILIES)))
        cfg = ModemConfig(
            family=family, send_time=args.send_time, report_delay=args.report_delay,
            report_status=args.report_status, time_scale=args.time_scale, pin=args.pin,
            periodic_interval=args.rssi_interval, imei=f"8671234567{i:05d}",
            own_number=f"+7916000{i:04d}",
        )  # fmt: skip
        emu = ModemEmulator(path, cfg, send_log=args.send_log)
        if emu.name in emus:
            raise SystemExit(f"two modems named {emu.name}")
        emus[emu.name] = emu
        await emu.start()
    server = await serve_control(emus, args.control) if args.control else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"ready": True, "modems": {n: e.path for n, e in emus.items()},
                      "control": args.control}), flush=True)  # fmt: skip
    try:
        await stop.wait()
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.control)
        for emu in emus.values():
            await emu.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main(sys.argv[1:])

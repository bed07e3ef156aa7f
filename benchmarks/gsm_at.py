"""AT layer benchmark: how much of a core the modem I/O costs.

    .venv/bin/python benchmarks/gsm_at.py [--urcs 100000] [--commands 2000]

* sans-I/O: ``AtEngine`` fed 100,000 ``+CMTI`` lines in one buffer (URCs/s), and command round
  trips with no I/O at all (commands/s);
* over a real pseudo-terminal: ``AtPort`` on pyserial-asyncio-fast against the emulated modem
  (``gsm/emulator.py``, same process), ``AT+CSQ`` round trips one after another, with the CPU
  time of the process (port + emulator) per command.

A modem at 115,200 baud carries about 11,500 bytes/s, some 500 short lines a second: the figures
say how far above that the layer is, not a target of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsm.at import AtCommand, AtEngine
from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig
from gsm.port import AtPort


def sans_io(urcs: int, commands: int) -> None:
    eng = AtEngine()
    wire = b"".join(b'\r\n+CMTI: "SM",%d\r\n' % (i % 30) for i in range(urcs))
    t = time.perf_counter()
    eng.receive_data(wire)
    n = len(eng.events())
    dt = time.perf_counter() - t
    print(f"sans-I/O: {n:,} URCs in {dt:.3f} s = {n / dt:,.0f} URCs/s")
    reply = b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n"
    t = time.perf_counter()
    for _ in range(commands * 10):
        eng.submit(AtCommand("AT+CSQ"))
        eng.advance(0)
        eng.data_to_send()
        eng.receive_data(reply)
        eng.advance(0)
        eng.events()
    dt = time.perf_counter() - t
    print(f"sans-I/O: {commands * 10:,} command round trips = {commands * 10 / dt:,.0f}/s")


async def over_pty(commands: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "modem0")
        async with ModemEmulator(path, ModemConfig(time_scale=0.0)):
            port = AtPort(path, settle=0.02)
            await port.start()
            await port.wait_up()
            await port.command("ATE0")
            t, cpu = time.perf_counter(), time.process_time()
            for _ in range(commands):
                await port.command("AT+CSQ")
            dt, cpu = time.perf_counter() - t, time.process_time() - cpu
            await port.stop()
    print(
        f"pty: {commands:,} AT+CSQ round trips in {dt:.2f} s = {commands / dt:,.0f}/s; "
        f"CPU {cpu / commands * 1e6:.0f} µs per command (port and emulator together)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--urcs", type=int, default=100_000)
    ap.add_argument("--commands", type=int, default=2_000)
    args = ap.parse_args()
    sans_io(args.urcs, args.commands)
    asyncio.run(over_pty(args.commands))


if __name__ == "__main__":
    main()

"""Memory benchmark: the server's RSS with 1,000,000 contacts, 1,000 live calls, 1,000 consoles.

    .venv/bin/python -m benchmarks.memory [--contacts 1000000] [--calls 1000] [--consoles 1000]

The real app on uvicorn in this process, its database a copy of benchmarks/lookup.py's cached
1M-contact store (phones, contacts, clients, built through the product's migrations); 10,000
caller-ID lookups warm the index the screen-pop reads; ``--calls`` inbound calls are started
and left ringing through the app's own CallRegistry (each matched against the store, each on
the bus); ``--consoles`` websocket consoles (separate processes, as in ws_fanout.py) connect and
receive them. Then the process's RSS is read from /proc/self/status: the figure. Memory-mapped
database pages touched by the lookups count in RSS (RssFile); they are shown apart.

Target: RSS <= 200 MB. Prints the figure, the target and the ratio; exits non-zero only when it
could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks.lookup import number_for, prepare
from benchmarks.ws_fanout import collect, connect_consoles, start_server
from callcenter.app import create_app
from callcenter.config import load_config
from callcenter.demo import DEMO_PASSWORD, seed_demo
from callcenter.line_events import CallStarted, Direction, RingingChanged

TARGET_MB = 200.0


def status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile of this process, in bytes."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


def mapped(path: Path) -> int:
    """Resident bytes of this process's memory mappings of ``path`` (SQLite's mmap)."""
    total, inside = 0, False
    name = str(path)
    with open("/proc/self/smaps") as fh:
        for line in fh:
            if not line[:1].isupper() or line.split()[0].count("-") == 1:
                inside = line.rstrip().endswith(name)
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


async def run(source: Path, contacts: int, calls: int, consoles: int, processes: int
              ) -> dict[str, Any]:
    steps: list[tuple[str, dict[str, int]]] = [("python + product imported", status())]
    folder = Path(tempfile.mkdtemp(prefix="memory-"))
    config = load_config(None, env={})
    config.base_dir = folder
    config.server.secret_key = "benchmark-secret-key"
    config.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, config.database_path)  # the app migrates and seeds its own copy
    app = create_app(config, demo=False)

    @contextlib.asynccontextmanager
    async def seeded(services: Any, demo: bool) -> Any:
        from ui.security import hash_password

        await seed_demo(services.store, hash_password(DEMO_PASSWORD))
        yield

    app.state.components.append(seeded)
    server, serving, port = await start_server(app)
    procs: list[Any] = []
    try:
        services = app.state.services
        rng = random.Random(5)
        matcher = services.matcher
        for _ in range(10_000):
            matcher.match(f"+7{number_for(rng.randint(1, contacts))}")
        gc.collect()
        steps.append((f"app serving, {contacts:,}-contact store, 10,000 lookups", status()))

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post("/api/session",
                                json={"login": "secretary", "password": DEMO_PASSWORD})
            r.raise_for_status()
            cookie = f"cc_session={r.cookies['cc_session']}"
        hub = app.state.hub
        procs, out, _ = await connect_consoles(port, cookie, consoles, processes, calls)
        while len(hub.connections) < consoles:
            await asyncio.sleep(0.05)
        gc.collect()
        steps.append((f"+ {consoles:,} consoles connected", status()))

        registry = services.extra["calls"].registry
        now = time.time()
        for i in range(calls):
            key = f"office:mem.{i}"
            registry.handle(CallStarted("office", key, now, Direction.INBOUND,
                                        f"+7{number_for(rng.randint(1, contacts))}",
                                        "Caller", "74951110000"))
            registry.handle(RingingChanged(key, now, ("101",)))
            if i % 20 == 19:  # calls arrive over a few seconds, not in one loop iteration
                await asyncio.sleep(0.02)
        live = len(registry.live())
        await collect(procs, out)  # every console has its events (the first one's count)
        procs = []
        gc.collect()
        steps.append((f"+ {live:,} live calls, delivered to every console", status()))
        final = steps[-1][1]
        final["db_mapped"] = mapped(config.database_path)
        # Counted again with the consoles still open: collect() only ended the client side's
        # wait; the server's connections close when the run ends.
        connected = len(hub.connections)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 15)
        shutil.rmtree(folder, ignore_errors=True)
    return {"steps": steps, "final": final, "live": live, "connected": connected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--consoles", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4, help="console client processes")
    args = parser.parse_args()
    source = prepare(args.contacts)
    work = run(source, args.contacts, args.calls, args.consoles, args.processes)
    try:
        import uvloop  # what uvicorn runs the product on when installed
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    for name, s in result["steps"]:
        print(f"  {name:<58} RSS {mb(s['VmRSS']):>9}  (anon {mb(s['RssAnon'])}, "
              f"file {mb(s['RssFile'])})")
    rss = result["final"]["VmRSS"] / 1e6
    db = result["final"]["db_mapped"] / 1e6
    rest = rss - db
    print(f"of it, the database's memory-mapped pages (SQLite mmap, clean page cache the kernel "
          f"may drop): {db:.1f} MB; the rest: {rest:.1f} MB ({rest / TARGET_MB:.2f} of the target)")
    print(f"figure: RSS {rss:.1f} MB with {args.contacts:,} contacts, {result['live']:,} live "
          f"calls, {args.consoles:,} consoles; target <= {TARGET_MB:.0f} MB; ratio "
          f"{rss / TARGET_MB:.2f} of the target: {'met' if rss <= TARGET_MB else 'NOT met'}")


if __name__ == "__main__":
    main()

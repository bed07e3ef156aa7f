"""Scale-out: screen-pops through two instances on PostgreSQL against one instance on SQLite,
in the same run, and the caller-ID lookups of the PostgreSQL index against SQLite's.

    .venv/bin/python -m benchmarks.scaleout [--rate 200] [--seconds 10] [--consoles 40]
        [--phones 20000] [--lookups 100000]

The products are ``callcenter serve`` processes (as in production) with the same client base
(benchmarks/lookup.py's numbers) and the demo users. The PBX is benchmarks/screenpop_latency.py's
AMI sender in this process: recorded inbound calls rewritten into fresh ones at a steady --rate
events/s, stamped with time.perf_counter() (CLOCK_MONOTONIC, one clock for every process) right
after each message that makes an extension ring. The consoles are websocket clients in this
process, logged in as the demo secretary (who sees every call), each stamping every frame as it
arrives.

* single: one instance on SQLite, every console on it.
* cluster: instances A (owns the line) and B on one PostgreSQL (started from Debian's package
  by tests/pg_server.py), the consoles split between them; every event goes through the outbox
  (insert + NOTIFY) before any console sees it, on A as on B.

Latency = frame received - AMI bytes written, per console and screen-pop; fan-out = frames
received per second over all consoles. The machine is shared (products, PostgreSQL, sender and
consoles on the same cores): compare the two setups of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from websockets.asyncio.client import connect

from benchmarks.lookup import MIX, build, number_for
from benchmarks.screenpop_e2e import GatedSender
from benchmarks.screenpop_latency import SECRET, USER, SenderOptions, make_plan
from callcenter.config import PhonesConfig
from callcenter.demo import DEMO_PASSWORD, seed_demo
from callcenter.matching import CallerMatcher
from callcenter.passwords import hash_password
from callcenter.store.postgres import PostgresStore
from callcenter.store.sqlite import SqliteStore
from tests.pg_server import PgServer
from tests.scale.instances import Instance

LOGIN = "secretary"  # sees every call


class Console:
    def __init__(self) -> None:
        self.rings: dict[tuple[str, str], float] = {}
        self.frames = 0
        self.task: asyncio.Task[None] | None = None

    async def open(self, instance: Instance, cookie: str) -> None:
        ws = await connect(instance.url.replace("http", "ws") + "/ws",
                           additional_headers={"Cookie": f"cc_session={cookie}",
                                               "Origin": instance.url}, max_queue=None)
        json.loads(await ws.recv())  # hello
        await ws.send('{"type":"start"}')
        self.task = asyncio.get_running_loop().create_task(self._read(ws))

    async def _read(self, ws: Any) -> None:
        perf = time.perf_counter
        with contextlib.suppress(Exception):
            async for text in ws:
                now = perf()
                self.frames += 1
                if '"call.ringing"' in text:
                    event = json.loads(text)
                    key = (event["data"]["call"]["id"], event["data"].get("extension", ""))
                    self.rings.setdefault(key, now)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


async def seed_sqlite(path: Path, source: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.read_bytes())
    store = await SqliteStore.open(path)
    try:
        await seed_demo(store, hash_password(DEMO_PASSWORD))
    finally:
        await store.close()


async def seed_postgres(url: str, source: Path) -> None:
    conn = await asyncpg.connect(url)
    db = sqlite3.connect(source)
    try:
        for table, columns in (("clients", "id, name, kind, created_at, updated_at"),
                               ("contacts", "id, client_id, name"),
                               ("phones", "contact_id, raw, e164, digits, rev")):
            rows = db.execute(f"SELECT {columns} FROM {table}").fetchall()
            await conn.copy_records_to_table(table, records=rows,
                                             columns=[c.strip() for c in columns.split(",")])
        for table in ("clients", "contacts"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                               f" (SELECT MAX(id) FROM {table}))")
    finally:
        db.close()
        await conn.close()
    store = await PostgresStore.open(url)
    try:
        await seed_demo(store, hash_password(DEMO_PASSWORD))
    finally:
        await store.close()


async def screenpops(name: str, make: Callable[[int], list[Instance]],
                     args: argparse.Namespace, opts: SenderOptions) -> dict[str, Any]:
    """One setup: the sender, the instances (the first owns the line), the consoles spread
    round-robin, the stream, then the frames matched to the stamps."""
    plan = make_plan(opts)
    go = asyncio.Event()
    sender = GatedSender(plan, opts.rate, go)
    server = await asyncio.start_server(sender.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    consoles: list[tuple[int, Console]] = []
    instances = make(port)
    try:
        for instance in instances:  # the first takes the line's lease
            await instance.start()
        cookie = await instances[0].login(LOGIN, DEMO_PASSWORD)
        for i in range(args.consoles):
            console = Console()
            where = i % len(instances)
            await console.open(instances[where], cookie)
            consoles.append((where, console))
        go.set()
        await asyncio.wait_for(sender.finished.wait(), opts.seconds + 120)
        await asyncio.sleep(2.0)  # late frames (measured, not waited on by a mark)
        results = sender.results or {}
        stamps = {(c, e): t for c, e, t in results.get("stamps", ())}
        per_instance: dict[int, list[float]] = {}
        lost = 0
        warm = results.get("t0", 0.0) + args.warmup
        for where, console in consoles:
            for key, sent in stamps.items():
                if sent < warm:
                    continue
                got = console.rings.get(key)
                if got is None:
                    lost += 1
                else:
                    per_instance.setdefault(where, []).append((got - sent) * 1e3)
        frames = sum(c.frames for _, c in consoles)
        elapsed = max(results.get("elapsed", 1.0), 1e-3)
        return {"name": name, "latencies": per_instance, "lost": lost, "frames": frames,
                "fanout_per_s": frames / (elapsed + 2.0), "calls": len(stamps)}
    finally:
        for _, console in consoles:
            await console.close()
        for instance in reversed(instances):
            await instance.stop()
        server.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def describe(r: dict[str, Any], names: list[str]) -> tuple[float, float]:
    every = [v for values in r["latencies"].values() for v in values]
    print(f"  {r['name']}: {len(every)} screen-pops measured over {r['calls']} rings, "
          f"{r['lost']} not received; fan-out {r['fanout_per_s']:.0f} frames/s")
    for where, values in sorted(r["latencies"].items()):
        print(f"    consoles on {names[where]}: p50 {pct(values, .5):.2f} ms, "
              f"p95 {pct(values, .95):.2f} ms, p99 {pct(values, .99):.2f} ms, "
              f"max {max(values):.2f} ms")
    return pct(every, .5), pct(every, .99)


def lookups(sqlite_path: Path, pg_url: str, phones: int, count: int) -> None:
    rng = random.Random(7)
    queries = []
    for _ in range(count):
        ten = number_for(rng.randint(1, phones))
        queries.append(rng.choices(
            [f"+7{ten}", f"8{ten}", ten, f"99{ten}",
             f"+7{rng.randint(3000000000, 3999999999)}"], weights=MIX.values())[0])

    def run(index: Any) -> tuple[float, float]:
        matcher = CallerMatcher(index, PhonesConfig())
        for q in queries[:2000]:
            matcher.match(q)
        samples = []
        perf = time.perf_counter_ns
        start = perf()
        for q in queries:
            t0 = perf()
            matcher.match(q)
            samples.append(perf() - t0)
        total = (perf() - start) / 1e9
        return count / total, pct(samples, .99) / 1e6

    async def measure() -> None:
        sqlite_store = await SqliteStore.open(sqlite_path)
        t0 = time.perf_counter()
        pg_store = await PostgresStore.open(pg_url)
        opened = time.perf_counter() - t0
        try:
            s_rate, s_p99 = run(sqlite_store.caller_index)
            p_rate, p_p99 = run(pg_store.caller_index)
            index = pg_store.caller_index
            t0 = time.perf_counter()
            await index.reload()
            full = time.perf_counter() - t0
            t0 = time.perf_counter()
            await index.tables_changed(frozenset({"interactions"}))
            context = time.perf_counter() - t0
        finally:
            await sqlite_store.close()
            await pg_store.close()
        print(f"caller-ID lookups ({phones:,} numbers, {count:,} lookups, CallerMatcher.match):")
        print(f"  SQLite index:     {s_rate:,.0f}/s, p99 {s_p99 * 1e3:.0f} µs")
        print(f"  PostgreSQL index: {p_rate:,.0f}/s, p99 {p_p99 * 1e3:.0f} µs "
              f"(in memory: {p_rate / s_rate:.1f}x SQLite's rate)")
        print(f"  PostgreSQL index load: {opened:.2f} s at open (with migrations check), "
              f"full reload {full:.2f} s, context-only reload (a card note) {context:.3f} s")

    asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="AMI events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--consoles", type=int, default=40)
    parser.add_argument("--phones", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    opts = SenderOptions(rate=args.rate, seconds=args.seconds, phones=args.phones,
                         unknown=0.15, core=None, seed=1)
    pg = PgServer()
    folder = Path(tempfile.mkdtemp(prefix="scaleout-"))
    try:
        pg.start()
        source = folder / "numbers.db"
        asyncio.run(build(source, args.phones))
        url = pg.create_database_sync()
        asyncio.run(seed_postgres(url, source))
        print(f"{args.phones:,} numbers; {args.rate:g} AMI events/s for {args.seconds:g} s; "
              f"{args.consoles} consoles")

        async def both() -> tuple[dict[str, Any], dict[str, Any]]:
            await seed_sqlite(folder / "single" / "var" / "callcenter.db", source)
            one = await screenpops("single instance, SQLite", lambda port: [
                Instance(folder, "single", None, port, ami_user=USER, ami_secret=SECRET)],
                args, opts)
            two = await screenpops("two instances, PostgreSQL", lambda port: [
                Instance(folder, "a", url, port, ami_user=USER, ami_secret=SECRET),
                Instance(folder, "b", url, port, ami_user=USER, ami_secret=SECRET)],
                args, opts)
            return one, two

        one, two = asyncio.run(both())
        print("screen-pop latency (AMI bytes written -> websocket frame at the console):")
        p50_one, p99_one = describe(one, ["the instance"])
        p50_two, p99_two = describe(two, ["A (owns the line)", "B"])
        print(f"  two instances on PostgreSQL vs one on SQLite: p50 {p50_two / p50_one:.2f}x, "
              f"p99 {p99_two / p99_one:.2f}x, fan-out "
              f"{two['fanout_per_s'] / one['fanout_per_s']:.2f}x")
        lookups(folder / "single" / "var" / "callcenter.db", url, args.phones, args.lookups)
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

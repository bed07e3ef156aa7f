"""Memory benchmark: the server's RSS with 1,000,000 contacts, 1,000 live calls, 1,000 consoles.

    .venv/bin/python -m benchmarks.memory [--contacts 1000000] [--calls 1000] [--consoles 1000]
                                          [--users 1]

The real app on uvicorn in this process, its database a copy of benchmarks/lookup.py's cached
1M-contact store (phones, contacts, clients, built through the product's migrations); 10,000
caller-ID lookups warm the index the screen-pop reads; ``--calls`` inbound calls are started
and left ringing through the app's own CallRegistry (each matched against the store, each on
the bus); ``--consoles`` websocket consoles (separate processes, as in ws_fanout.py) connect and
receive them. ``--users N`` spreads the consoles evenly over N distinct active users
(default 1: all log in as the demo "secretary"); the others are secretaries and supervisors
in no group, so every console still gets every call's event. The hub remembers "who has shown
a call" per call and per user (``Hub._shown``), so N is what that memory grows with. Only
"secretary" logs in through ``POST /api/session``: a password check is an argon2 hash
(~0.23 s of CPU here), 1,000 of them minutes on a shared machine. The others are made with the
store's ``create_user`` and get the cookie a login hands out: ``ui.security.start_session``
under the app's own session middleware and secret key. Once every console has every event,
and with all of them still connected, the process's RSS is read from /proc/self/status: the
figure. Memory-mapped database pages touched by the lookups count in RSS (RssFile); they are
shown apart.

The start-up step's ~287 MB of RssFile is the caller index's mmap (SqliteCallerIndex,
mmap_size 1 GiB): the kernel maps the 64 KiB around every faulted page already in the page cache
(fault-around), so 10,000 random lookups (~45 KB each) map nearly all of the 255 MB file. SQLite
drops the whole mapping at the first read after another connection wrote (the pager unfetches
on a WAL change): every call writes its log, so a serving app carries only what the lookups
since the last write touched (the last step's few MB), not the warm-up's spike.

The consoles count the events they receive and report only the counts: ws_fanout's consoles
send every arrival back to this process for its statistics (2,000,000 tuples here), which
left ~40 MB of the benchmark's own freed heap in the figure the product would not carry.

Target: RSS <= 200 MB. Prints the figure, the target and the ratio; exits non-zero only when it
could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.lookup import number_for, prepare
from benchmarks.ws_fanout import _Console, start_server
from callcenter.app import create_app
from callcenter.config import load_config
from callcenter.demo import DEMO_PASSWORD, seed_demo
from callcenter.line_events import CallStarted, Direction, RingingChanged
from callcenter.models import Role
from ui.app import SESSION_COOKIE
from ui.security import start_session

TARGET_MB = 200.0
TIMEOUT = 120.0  # for the consoles' connections, the start of delivery, the stop
STALL = 30.0  # the consoles stop waiting when no event arrived for this long
EVENT = b'{"seq":'  # how an event's text starts; the hello and control frames do not


class _CountingConsole(_Console):
    """A console that counts the events it receives as they arrive, keeping no data, and
    answers the server's keepalive pings (as a browser does: uvicorn closes a connection
    whose pong does not come within 20 s, and this run takes longer than that)."""

    def __init__(self, port: int, cookie: str, ready: asyncio.Future[None]) -> None:
        super().__init__(port, cookie, ready)
        self.events = 0
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if not self.started:
            super().data_received(data)  # the handshake and the hello, as ws_fanout's console
            if not self.started:
                return
            data, self.chunks = b"".join(c for _, c in self.chunks), []
        buffer = self.buffer + data if self.buffer else data
        pos = 0
        while len(buffer) - pos >= 2:
            length, head = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if len(buffer) - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if len(buffer) - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2:pos + 10], "big"), 10
            if len(buffer) - pos < head + length:
                break
            if buffer.startswith(EVENT, pos + head):
                self.events += 1
            elif buffer[pos] & 0x0F == 9 and self.transport is not None:  # ping
                self.transport.write(_masked(buffer[pos + head:pos + head + length], 0x8A))
            pos += head + length
        self.buffer = buffer[pos:]


def _masked(payload: bytes, first: int) -> bytes:
    """A client frame (RFC 6455 5.3: masked) of a short payload."""
    mask = os.urandom(4)
    return (bytes((first, 0x80 | len(payload))) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def console_process(port: int, cookies: list[str], expected: Any, out: Any,
                    stop: Any) -> None:
    asyncio.run(_consoles(port, cookies, expected, out, stop))


async def _consoles(port: int, cookies: list[str], expected: Any, out: Any,
                    stop: Any) -> None:
    """One console per cookie: says when they are connected, then when each has ``expected``
    events (a shared value, 0 until the server set it), then stays connected until ``stop``."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(50)  # handshakes in flight

    async def one(cookie: str) -> _CountingConsole:
        async with gate:
            ready: asyncio.Future[None] = loop.create_future()
            _, console = await loop.create_connection(
                lambda: _CountingConsole(port, cookie, ready), "127.0.0.1", port)
            await asyncio.wait_for(ready, 30)
            return console

    consoles = await asyncio.gather(*(one(cookie) for cookie in cookies))
    out.put(("connected", len(consoles)))
    # On a busy machine delivery takes minutes: give up only when nothing arrived for a while.
    total, progress = -1, loop.time()
    while not expected.value or min(c.events for c in consoles) < expected.value:
        now_total = sum(c.events for c in consoles)
        if now_total != total:
            total, progress = now_total, loop.time()
        elif loop.time() - progress > STALL:
            break  # reported below: the server sees who fell short
        await asyncio.sleep(0.1)
    out.put(("delivered", [c.events for c in consoles]))
    await asyncio.to_thread(stop.wait, TIMEOUT)
    for c in consoles:
        if c.transport is not None:
            c.transport.close()


async def connect_consoles(port: int, cookies: list[str], consoles: int, processes: int
                           ) -> tuple[list[Any], Any, Any, Any]:
    """``consoles`` counting consoles in ``processes`` processes, connected, console i with
    ``cookies[i % len(cookies)]``: (processes, their queue, the shared expected count, the stop
    event)."""
    ctx = mp.get_context("spawn")
    out, expected, stop = ctx.Queue(), ctx.Value("q", 0), ctx.Event()
    each = [cookies[i % len(cookies)] for i in range(consoles)]
    share = [consoles // processes + (1 if i < consoles % processes else 0)
             for i in range(processes)]
    procs, start = [], 0
    for n in share:
        p = ctx.Process(target=console_process, daemon=True,
                        args=(port, each[start:start + n], expected, out, stop))
        start += n
        p.start()
        procs.append(p)
    connected = 0
    while connected < consoles:
        kind, value = await asyncio.to_thread(out.get, True, TIMEOUT)
        assert kind == "connected", kind
        connected += value
    return procs, out, expected, stop


async def delivered(procs: list[Any], out: Any) -> list[int]:
    """The event count of every console, once each has all of them (or the wait timed out)."""
    counts: list[int] = []
    for _ in procs:
        kind, value = await asyncio.to_thread(out.get, True, 3600)  # STALL decides
        assert kind == "delivered", kind
        counts += value
    return counts


async def session_cookies(secret_key: str, sessions: list[tuple[Any, int]]) -> list[str]:
    """The ``Cookie`` header of a login of each (user, session epoch): the app's session
    middleware (as ui/app.py sets it up) around ``start_session``, what ``POST /api/session``
    calls once the password is checked."""
    async def endpoint(request: Request) -> Response:
        user, epoch = sessions[int(request.query_params["i"])]
        start_session(request, user, epoch)
        return Response()

    app = Starlette(routes=[Route("/", endpoint)], middleware=[
        Middleware(SessionMiddleware, secret_key=secret_key, session_cookie=SESSION_COOKIE,
                   same_site="lax")])

    out = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench") as client:
        for i in range(len(sessions)):
            r = await client.get("/", params={"i": i})
            out.append(f"{SESSION_COOKIE}={r.cookies[SESSION_COOKIE]}")
            client.cookies.clear()
    return out


async def make_users(services: Any, secret_key: str, count: int) -> list[str]:
    """``count`` active users who see every call, "bench1", "bench2", ...: secretaries in no
    group and supervisors, in turn; the cookie of a session of each."""
    store = services.store
    made = []
    for i in range(1, count + 1):
        role = Role.SECRETARY if i % 2 else Role.SUPERVISOR
        user = await store.create_user(f"bench{i}", f"Bench User {i}", role)
        made.append((user, await store.session_epoch(user.id)))
    return await session_cookies(secret_key, made)


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


def _users(n: int) -> str:
    return f"{n:,} user" if n == 1 else f"{n:,} users"


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


async def run(source: Path, contacts: int, calls: int, consoles: int, processes: int,
              users: int = 1) -> dict[str, Any]:
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
            cookies = [f"{SESSION_COOKIE}={r.cookies[SESSION_COOKIE]}"]
        if users > 1:
            cookies += await make_users(services, config.server.secret_key, users - 1)
        hub = app.state.hub
        procs, out, expected, stop = await connect_consoles(port, cookies, consoles, processes)
        while len(hub.connections) < consoles:
            await asyncio.sleep(0.05)
        distinct = len({c.user.id for c in hub.connections})
        if distinct != min(users, consoles):
            raise SystemExit(f"the consoles logged in as {distinct} users, not {users}")
        first_seq = services.bus.last_seq  # the consoles get every event after this one
        gc.collect()
        steps.append((f"+ {consoles:,} consoles of {_users(distinct)} connected", status()))

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
        events = services.bus.last_seq - first_seq
        expected.value = events
        counts = await delivered(procs, out)
        short = sum(1 for n in counts if n < events)
        if short or len(counts) != consoles:
            raise SystemExit(f"{short} of {len(counts)} consoles did not get all {events} "
                             f"events (they got {min(counts)} to {max(counts)}; the hub "
                             f"dropped {hub.dropped}): nothing sound was measured")
        gc.collect()
        steps.append((f"+ {live:,} live calls, {events:,} events delivered to every console",
                      status()))
        final = steps[-1][1]
        final["db_mapped"] = mapped(config.database_path)
        connected = len(hub.connections)  # the consoles are still open: measured with them
        stop.set()
        for p in procs:
            p.join(10)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 15)
        shutil.rmtree(folder, ignore_errors=True)
    return {"steps": steps, "final": final, "live": live, "connected": connected,
            "users": distinct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--consoles", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4, help="console client processes")
    parser.add_argument("--users", type=int, default=1,
                        help="distinct users the consoles log in as, evenly spread")
    args = parser.parse_args()
    if args.users < 1:
        parser.error("--users must be at least 1")
    source = prepare(args.contacts)
    work = run(source, args.contacts, args.calls, args.consoles, args.processes, args.users)
    try:
        import uvloop  # what uvicorn runs the product on when installed
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    for name, s in result["steps"]:
        print(f"  {name:<64} RSS {mb(s['VmRSS']):>9}  (anon {mb(s['RssAnon'])}, "
              f"file {mb(s['RssFile'])})")
    rss = result["final"]["VmRSS"] / 1e6
    db = result["final"]["db_mapped"] / 1e6
    rest = rss - db
    print(f"of it, the database's memory-mapped pages (SQLite mmap, clean page cache the kernel "
          f"may drop): {db:.1f} MB; the rest: {rest:.1f} MB ({rest / TARGET_MB:.2f} of the target)")
    print(f"figure: RSS {rss:.1f} MB with {args.contacts:,} contacts, {result['live']:,} live "
          f"calls, {result['connected']:,} consoles of {_users(result['users'])}; target <= "
          f"{TARGET_MB:.0f} MB; ratio "
          f"{rss / TARGET_MB:.2f} of the target: {'met' if rss <= TARGET_MB else 'NOT met'}")


if __name__ == "__main__":
    main()

"""Each line owned by one live instance: lease rows (callcenter/cluster/leases.py)."""

from __future__ import annotations

import asyncio

import asyncpg

from callcenter.cluster.leases import LineLeases


class Instance:
    """What an instance's line manager would do with its leases: lines started and stopped."""

    def __init__(self, url: str, name: str, lines: list[str], *, lease: float = 2.0,
                 clock=None) -> None:
        self.running: set[str] = set()
        self.history: list[tuple[str, str]] = []
        self.changed = asyncio.Event()
        extra = {"clock": clock} if clock is not None else {}
        self.leases = LineLeases(url, name, lambda: lines, self._gained, self._lost,
                                 lease_seconds=lease, tick=0.2, **extra)

    async def _gained(self, line: str) -> None:
        self.running.add(line)
        self.history.append(("start", line))
        self.changed.set()

    async def _lost(self, line: str) -> None:
        self.running.discard(line)
        self.history.append(("stop", line))
        self.changed.set()

    async def until(self, check, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self.changed.clear()
                await self.changed.wait()


async def test_one_owner_per_line_and_takeover_when_the_owner_dies(pg_url: str) -> None:
    lines = ["office", "gsm1", "fax"]
    a, b = Instance(pg_url, "a", lines), Instance(pg_url, "b", lines)
    await a.leases.start()
    await b.leases.start()
    try:
        assert a.running == set(lines) and b.running == set()
        await b.leases.renew()  # B tries again while A renews: nothing changes hands
        assert b.running == set()
        holders = await b.leases.holders()
        assert {line: owner for line, (owner, _left) in holders.items()} == dict.fromkeys(
            lines, "a")
        # A dies without a word (SIGKILL: its renewals stop, its rows stay) ...
        a.leases._task.cancel()
        await b.until(lambda: b.running == set(lines))
        assert b.history == [("start", "fax"), ("start", "gsm1"), ("start", "office")]
        # ... and when A's task wakes again it finds the lines gone and stops them.
        await a.leases.renew()
        assert a.running == set()
    finally:
        await b.leases.stop()
        a.leases._task = None
        await a.leases.stop()


async def test_a_clean_stop_hands_the_lines_over_at_once(pg_url: str) -> None:
    a = Instance(pg_url, "a", ["office"], lease=60.0)
    b = Instance(pg_url, "b", ["office"], lease=60.0)
    await a.leases.start()
    await b.leases.start()
    try:
        assert a.running == {"office"} and not b.running
        await a.leases.stop()  # deletes its rows and notifies: no 60 s wait for expiry
        assert a.history == [("start", "office"), ("stop", "office")]
        await b.until(lambda: b.running == {"office"})
    finally:
        await b.leases.stop()


async def test_an_owner_that_cannot_renew_stops_its_lines_before_the_lease_runs_out(
        pg_url: str) -> None:
    now = [1000.0]
    a = Instance(pg_url, "a", ["office"], lease=3.0, clock=lambda: now[0])
    await a.leases.start()
    admin = await asyncpg.connect(pg_url)
    try:
        assert a.running == {"office"}
        # The database goes away for A (its connection is cut, it cannot reconnect) ...
        a.leases.dsn = pg_url.rsplit("/", 1)[0] + "/no_such_database"
        await admin.execute("SELECT pg_terminate_backend($1)", a.leases._conn.get_server_pid())
        await a.leases._fence()
        assert a.running == {"office"}  # still within its lease
        now[0] += 3.0  # ... and stays away for the lease's length, by A's own clock
        await a.until(lambda: not a.running)
        assert a.history[-1] == ("stop", "office")
    finally:
        await admin.close()
        await a.leases.stop()


async def test_a_line_no_longer_wanted_is_given_back(pg_url: str) -> None:
    wanted = ["office", "fax"]
    a = Instance(pg_url, "a", wanted)
    a.leases.wanted = lambda: list(wanted)
    await a.leases.start()
    try:
        wanted.remove("fax")  # disabled or deleted by an admin
        await a.leases.renew()
        assert a.running == {"office"}
        assert set(await a.leases.holders()) == {"office"}
    finally:
        await a.leases.stop()


async def test_an_owner_cut_off_by_a_silent_network_stops_its_lines_all_the_same(
        pg_url: str) -> None:
    """A partition drops packets: a reconnect neither succeeds nor fails (asyncpg's connect
    waits 60 s by default). The fence must not wait for it to fail: the lease runs out by the
    database's clock meanwhile and another instance starts the line."""
    a = Instance(pg_url, "a", ["office"], lease=1.0)
    await a.leases.start()
    admin = await asyncpg.connect(pg_url)
    never = asyncio.Event()

    async def hangs(*_args, **_kwargs):
        await never.wait()

    try:
        assert a.running == {"office"}
        a.leases._connect = hangs
        await admin.execute("SELECT pg_terminate_backend($1)", a.leases._conn.get_server_pid())
        await a.until(lambda: not a.running, timeout=20.0)
        assert a.history[-1] == ("stop", "office")
    finally:
        never.set()
        await admin.close()
        a.leases._conn = None
        await a.leases.stop()

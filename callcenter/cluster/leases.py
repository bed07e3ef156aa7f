"""Each line is run by exactly one live instance: a lease row per line in ``line_leases``.

Why a lease row, not ``pg_try_advisory_lock`` on a dedicated connection: an advisory lock lives
as long as its session, so an owner whose host vanished (no FIN, no RST) keeps the lock until
TCP keepalive gives up on the connection (hours by default), and behind a pooler in transaction
mode session locks do not work at all. A lease expires by the database's clock whatever
happened to its owner, so takeover is bounded (``lease_seconds`` + one tick), it is one
statement per tick for all lines, and who runs what is a plain table an admin can read.

Fencing: the owner renews every tick; it counts its lease from the moment it *sent* the renewal
(by its own monotonic clock), so it believes itself the owner for less time than the database
does. If it cannot renew (the database is away, it was paused) it stops its lines before the
lease can have passed to anyone else. The small window in which an old owner still reads from
the PBX while the new one connects is harmless to the log: calls are written by id
(``upsert_call``), so one call is one row whoever writes it.

A clean stop deletes this instance's leases and notifies the others, who take its lines at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "callcenter_leases"
_NOW = "extract(epoch FROM clock_timestamp())"

# One statement takes free or expired leases and renews this instance's own; it returns the
# lines this instance holds afterwards.
_CLAIM = f"""
INSERT INTO line_leases AS l (line, owner, expires_at, since)
SELECT u.line, $2, {_NOW} + $3, {_NOW} FROM unnest($1::text[]) AS u(line)
ON CONFLICT (line) DO UPDATE SET
    owner = EXCLUDED.owner,
    expires_at = EXCLUDED.expires_at,
    since = CASE WHEN l.owner = EXCLUDED.owner THEN l.since ELSE EXCLUDED.since END
WHERE l.owner = EXCLUDED.owner OR l.expires_at < {_NOW}
RETURNING line
"""

Change = Callable[[str], Awaitable[None]]


class LineLeases:
    """Holds the leases of the lines ``wanted()`` names; calls ``gained(name)`` when one is
    won and ``lost(name)`` when one is lost (or no longer wanted)."""

    def __init__(self, dsn: str, owner: str, wanted: Callable[[], Iterable[str]],
                 gained: Change, lost: Change, *, lease_seconds: float = 6.0,
                 tick: float | None = None, clock: Callable[[], float] = time.monotonic,
                 connect: Callable[..., Any] = asyncpg.connect) -> None:
        self.dsn = dsn
        self.owner = owner
        self.wanted = wanted
        self.gained = gained
        self.lost = lost
        self.lease_seconds = lease_seconds
        # How often leases are renewed and free ones tried: the takeover bound is
        # lease_seconds + tick.
        self.tick = tick if tick is not None else min(1.0, lease_seconds / 4)
        self.clock = clock
        self._connect = connect
        self.owned: set[str] = set()
        self._valid_until = 0.0  # by self.clock: when this instance must assume it lost all
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        self._stopping = False
        self.ticks = 0

    async def start(self) -> None:
        """Connect, take what is free now (before the caller goes on), then keep at it."""
        await self._reconnect()
        await self.renew()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="line-leases")

    async def stop(self) -> None:
        """Stop the lines this instance holds, then give their leases back and tell the
        other instances, so they take them over at once."""
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._changing:
            for name in sorted(self.owned):
                await self._lose(name)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute("DELETE FROM line_leases WHERE owner = $1",
                                         self.owner)
                await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.owner)
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=1.0)
            self._conn = None

    def wake(self) -> None:
        """Try at once (a line was added or enabled here)."""
        self._wake.set()

    async def _reconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=1.0)
        self._conn = None
        conn = await asyncio.wait_for(self._connect(self.dsn), self._db_budget())
        await conn.add_listener(CHANNEL, lambda *_args: self._wake.set())
        self._conn = conn

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)
            # Python 3.11's wait_for can turn a cancellation that meets its timeout into a
            # TimeoutError: the flag (and cancelling()) end the loop all the same.
            task = asyncio.current_task()
            if self._stopping or (task is not None and task.cancelling()):
                raise asyncio.CancelledError
            self._wake.clear()
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._reconnect()
                await self.renew()
            except Exception as exc:  # the database or the connection: fenced below
                log.warning("line leases: cannot renew (%r)", exc)
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        await self._conn.close(timeout=0.5)
                self._conn = None
                await self._fence()

    def _db_budget(self) -> float:
        """How long one database step of a tick may take: never past the moment this instance
        must assume it lost its lines, so a silent network (packets dropped: a connect or a
        query that neither succeeds nor fails) cannot hold the fence off while the lease passes
        to another instance by the database's clock."""
        budget = self.lease_seconds / 2
        if self.owned:
            budget = min(budget, self._valid_until - self.clock())
        return max(budget, 0.05)

    async def _fence(self) -> None:
        """Not renewed: stop every line before its lease can have passed to another."""
        if self.owned and self.clock() >= self._valid_until:
            log.error("line leases: not renewed for %.0f s; stopping %s so that no line runs "
                      "twice", self.lease_seconds, ", ".join(sorted(self.owned)))
            async with self._changing:
                for name in sorted(self.owned):
                    await self._lose(name)

    async def renew(self) -> set[str]:
        """One tick: renew, take what is free, start and stop lines to match; returns the
        lines held."""
        wanted = sorted(set(self.wanted()))
        sent = self.clock()
        assert self._conn is not None
        async with self._changing:
            unwanted = self.owned - set(wanted)
            if unwanted:
                await asyncio.wait_for(self._conn.execute(
                    "DELETE FROM line_leases WHERE owner = $1 AND line = ANY($2::text[])",
                    self.owner, sorted(unwanted)), self._db_budget())
            rows = await asyncio.wait_for(
                self._conn.fetch(_CLAIM, wanted, self.owner, self.lease_seconds),
                self._db_budget())
            # A margin of one tick under the lease: stopped before anyone may take over.
            self._valid_until = sent + self.lease_seconds - self.tick
            held = {r[0] for r in rows}
            self.ticks += 1
            for name in sorted(self.owned - held):
                await self._lose(name)
            for name in sorted(held - self.owned):
                try:
                    await self.gained(name)
                except Exception:
                    # Not started here: give the lease back so another instance may try.
                    log.exception("line %s: taking it over failed; lease given back", name)
                    await self._conn.execute(
                        "DELETE FROM line_leases WHERE owner = $1 AND line = $2",
                        self.owner, name)
                    continue
                self.owned.add(name)
                log.info("line %s: owned by this instance (%s)", name, self.owner)
        return set(self.owned)

    async def _lose(self, name: str) -> None:
        self.owned.discard(name)
        log.info("line %s: no longer run by this instance (%s)", name, self.owner)
        try:
            await self.lost(name)
        except Exception:
            log.exception("line %s: stopping it after its lease went failed", name)

    async def holders(self) -> dict[str, tuple[str, float]]:
        """Every lease: line -> (owner, seconds left by the database's clock)."""
        assert self._conn is not None
        rows = await self._conn.fetch(
            f"SELECT line, owner, expires_at - {_NOW} FROM line_leases ORDER BY line")
        return {r[0]: (r[1], float(r[2])) for r in rows}

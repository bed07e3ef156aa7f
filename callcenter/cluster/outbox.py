"""Live events across instances: every event goes through the ``bus_outbox`` table of the shared
PostgreSQL, and every instance (its publisher too) delivers the outbox's rows to its own bus in
id order, with the row's id as the event's sequence number.

Why the outbox with LISTEN/NOTIFY, not Redis pub/sub: the store is PostgreSQL already (one
service less to run, secure and watch), and pub/sub of either kind forgets what a listener
missed while it was disconnected; the outbox keeps it (``outbox_hours``), so a listener that
reconnects reads the rows after the last id it applied and loses nothing. NOTIFY only wakes
the listeners (its payload is the last id); the rows are the truth. Redis would be faster per
message, but a call centre's event rate (tens per second at a 300-seat peak) is far below what
one PostgreSQL insert per batch gives (benchmarks/scaleout.py).

Ordering: a writer takes a transaction-scoped advisory lock, gives its rows ``MAX(id) + 1, ...``
and commits before the lock goes, so ids are contiguous and become visible in id order on every
instance: a reader never sees id 7 before id 6 is committed. The same numbers on every instance
make websocket resume work across them (the console keeps the last sequence it saw; the hub's
``boot`` is the cluster's, from ``cluster_meta``).

On SQLite (one instance) none of this runs: the plain :class:`~callcenter.bus.EventBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from callcenter.bus import BusEvent, EventBus, _dumps

log = logging.getLogger(__name__)

CHANNEL = "callcenter_bus"
REDACT = "bus.redact"  # a redaction to apply to every instance's replay window
LOCK_KEY = 0x63630001  # pg_advisory_xact_lock key of the outbox writers ("cc" 1)
BATCH = 500  # rows per insert and per catch-up read
MAX_QUEUED = 50_000  # events waiting for the database; beyond, the oldest are dropped
PRELOAD = 2000  # outbox rows loaded into the replay window at start
PRUNE_SECONDS = 600
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
# The listener reads the outbox this often even without a NOTIFY, each read bounded: a
# connection that died without a word (half-open TCP) is found and replaced, not trusted.
POLL_SECONDS = 5.0
READ_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class _Pending:
    topic: str
    at: float
    data: dict[str, Any]
    text: str


class ClusterBus(EventBus):
    """The bus of an instance in a cluster: :meth:`publish` hands the event to the outbox;
    subscribers receive it, with its global sequence number, once it is committed there (a
    round trip to the database, on the publisher too). Without a relay attached (before
    start-up, after shutdown) it is the local bus."""

    def __init__(self, history: int = 20_000) -> None:
        super().__init__(history)
        self.relay: OutboxRelay | None = None

    def publish(self, topic: str, data: dict[str, Any], at: float | None = None) -> BusEvent:
        if self.relay is None:
            return super().publish(topic, data, at)
        at = time.time() if at is None else at
        self.relay.send(topic, data, at)
        # Not sequenced yet: no caller uses the returned event (subscribers get the real one).
        return BusEvent(0, topic, at, data)

    def redact(self, needle: str,
               rewrite: Callable[[dict[str, Any]], dict[str, Any] | None]) -> int:
        """Redacted here at once, and on every other instance through the outbox: the new
        texts go as a ``bus.redact`` row that each instance applies to its replay window
        (never shown live; replayed, it is an event of an unknown type with no data)."""
        before = dict(self._history_texts(needle))
        count = super().redact(needle, rewrite)
        if self.relay is not None and count:
            after = dict(self._history_numbers(before))
            texts = [[n, t] for n, t in after.items() if before[n] != t]
            self.relay.send(REDACT, {"texts": texts}, time.time())
        return count

    def _history_texts(self, needle: str) -> list[tuple[int, str]]:
        return [(n, t) for n, t in self._history if needle in t]

    def _history_numbers(self, numbers: dict[int, str]) -> list[tuple[int, str]]:
        return [(n, t) for n, t in self._history if n in numbers]

    def apply(self, seq: int, topic: str, at: float, data: dict[str, Any],
              data_text: str | None = None, *, deliver: bool = True) -> BusEvent:
        if topic != REDACT:
            return super().apply(seq, topic, at, data, data_text, deliver=deliver)
        texts = {int(n): str(t) for n, t in data.get("texts", [])}
        self.replace_texts(texts)
        return super().apply(seq, topic, at, {}, "{}", deliver=False)


class OutboxRelay:
    """Writes this instance's events to the outbox and applies every instance's to ``bus``.
    Owns two connections: the writer's and the listener's (LISTEN, then the catch-up reads)."""

    def __init__(self, dsn: str, bus: EventBus, origin: str, *,
                 retention_hours: float = 24.0,
                 connect: Callable[..., Any] = asyncpg.connect) -> None:
        self.dsn = dsn
        self.bus = bus
        self.origin = origin
        self.retention = retention_hours * 3600.0
        self._connect = connect
        self._queue: deque[_Pending] = deque()
        self._queued = asyncio.Event()
        self._wake = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._writer_lock = asyncio.Lock()  # one statement at a time on the writer's conn
        self._writer: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0  # events dropped because the database was away too long
        self.reconnects = 0
        self.connected = asyncio.Event()  # the listener is connected and caught up

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        """Connect, load the newest rows into the replay window, start the writer and the
        listener. Returns the cluster's boot token (the same on every instance)."""
        self._listener = await self._listen()
        self._writer = await self._connect(self.dsn)
        boot = await _cluster_boot(self._writer)
        rows = await self._listener.fetch(
            "SELECT id, topic, at, data FROM bus_outbox WHERE id > "
            "(SELECT COALESCE(MAX(id), 0) FROM bus_outbox) - $1 ORDER BY id", PRELOAD)
        if rows:
            self.bus.preload([(r[0], _text(r[0], r[1], r[2], r[3])) for r in rows])
            redactions: dict[int, str] = {}
            for r in rows:  # applied on the preloaded window as they were at the time
                if r[1] == REDACT:
                    redactions.update({int(n): str(t) for n, t in json.loads(r[3])["texts"]})
            self.bus.replace_texts(redactions)
        else:
            self.bus.skip_to(0)
        self.connected.set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write_loop(), name="outbox-writer"),
                       loop.create_task(self._listen_loop(), name="outbox-listener"),
                       loop.create_task(self._prune_loop(), name="outbox-prune")]
        return boot

    async def stop(self) -> None:
        """Write what is queued (briefly), then stop both tasks and close the connections."""
        if self._queue and self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush_all(), 2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for conn in (self._writer, self._listener):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1.0)
        self._writer = self._listener = None

    async def _flush_all(self) -> None:
        while self._queue:
            await self._write_batch()

    # -- publishing --------------------------------------------------------------------------

    def send(self, topic: str, data: dict[str, Any], at: float) -> None:
        # The JSON is made once here, for the outbox row and this instance's subscribers.
        self._queue.append(_Pending(topic, at, data, _dumps(data)))
        if len(self._queue) > MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("outbox: the database is away; %d live events dropped so far",
                          self.dropped)
        self._queued.set()

    async def _write_loop(self) -> None:
        failures = 0
        while True:
            await self._queued.wait()
            try:
                while self._queue:
                    await self._write_batch()
                self._queued.clear()
                failures = 0
            except Exception as exc:  # the database or the connection: retried, in order
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("outbox: write failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                await self._reconnect_writer()

    async def _reconnect_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer.close(timeout=1.0)
        self._writer = None
        with contextlib.suppress(Exception):  # tried again after the next failure
            self._writer = await self._connect(self.dsn)

    async def _write_batch(self) -> None:
        async with self._writer_lock:
            await self._write_batch_locked()

    async def _write_batch_locked(self) -> None:
        if self._writer is None:
            raise asyncpg.InterfaceError("the outbox writer is not connected")
        batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
        async with self._writer.transaction():
            await self._writer.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            top = await self._writer.fetchval("SELECT COALESCE(MAX(id), 0) FROM bus_outbox")
            await self._writer.execute(
                "INSERT INTO bus_outbox (id, topic, at, data, origin)"
                " SELECT $1 + u.n, u.topic, u.at, u.data, $5"
                " FROM unnest($2::text[], $3::float8[], $4::text[]) WITH ORDINALITY"
                " AS u(topic, at, data, n)",
                top, [p.topic for p in batch], [p.at for p in batch],
                [p.text for p in batch], self.origin)
            first = top + 1
            last = first + len(batch) - 1
            await self._writer.execute("SELECT pg_notify($1, $2)", CHANNEL, str(last))
        for _ in batch:
            self._queue.popleft()
        # Committed: deliver here at once when nothing of another instance's came between,
        # with the dicts already made; otherwise the listener's catch-up reads them in order.
        async with self._apply_lock:
            if first == self.bus.last_seq + 1:
                for offset, pending in enumerate(batch):
                    self.bus.apply(first + offset, pending.topic, pending.at, pending.data,
                                   pending.text)
            elif last > self.bus.last_seq:
                self._wake.set()

    # -- listening ---------------------------------------------------------------------------

    async def _listen(self) -> asyncpg.Connection:
        conn = await self._connect(self.dsn)
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(lambda _conn: self._wake.set())
        return conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            if int(payload) <= self.bus.last_seq:
                return  # applied already (our own write, delivered directly)
        self._wake.set()

    async def _listen_loop(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            # Python 3.11's wait_for can turn a cancellation that meets its timeout into a
            # TimeoutError: stop() must still end this task.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            self._wake.clear()
            try:
                if self._listener is None or self._listener.is_closed():
                    self.connected.clear()
                    self._listener = await self._listen()
                    self.reconnects += 1
                    log.info("outbox: listener reconnected; catching up after %d",
                             self.bus.last_seq)
                await self.catch_up()
                self.connected.set()
                failures = 0
            except Exception as exc:  # the connection (or the database) went: reconnect
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                self.connected.clear()  # /ready says so while it is away
                log.warning("outbox: listener lost (%r); reconnecting in %.1f s", exc, delay)
                if self._listener is not None:
                    with contextlib.suppress(Exception):
                        await self._listener.close(timeout=1.0)
                self._listener = None
                await asyncio.sleep(delay)
                self._wake.set()

    async def catch_up(self) -> int:
        """Apply every row after the last applied one, in id order; returns how many."""
        applied = 0
        async with self._apply_lock:
            assert self._listener is not None
            while True:
                rows = await asyncio.wait_for(self._listener.fetch(
                    "SELECT id, topic, at, data FROM bus_outbox WHERE id > $1 ORDER BY id"
                    " LIMIT $2", self.bus.last_seq, BATCH), READ_TIMEOUT)
                for r in rows:
                    self.bus.apply(r[0], r[1], r[2], json.loads(r[3]), r[3])
                applied += len(rows)
                if len(rows) < BATCH:
                    return applied

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            try:
                gone = await self.prune()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox: pruning failed (%s); next try in %d s", exc,
                            PRUNE_SECONDS)
                continue
            if gone:
                log.info("outbox: %d events older than %g h pruned", gone,
                         self.retention / 3600)

    async def prune(self) -> int:
        """Drop rows older than the retention; the newest row always stays (it carries the
        sequence on). Returns how many went."""
        if self._writer is None:
            raise asyncpg.InterfaceError("the outbox writer is not connected")
        cutoff = time.time() - self.retention
        async with self._writer_lock:
            result = await self._writer.execute(
                "DELETE FROM bus_outbox WHERE at < $1 AND id < (SELECT MAX(id) FROM"
                " bus_outbox)", cutoff)
        return int(result.split()[-1])


def _text(seq: int, topic: str, at: float, data: str) -> str:
    return f'{{"seq":{seq},"type":{_dumps(topic)},"at":{_dumps(at)},"data":{data}}}'


async def _cluster_boot(conn: asyncpg.Connection) -> str:
    """The cluster's name for its sequence numbers, made once (the hub's ``boot``)."""
    import secrets

    await conn.execute("INSERT INTO cluster_meta (key, value) VALUES ('boot', $1)"
                       " ON CONFLICT (key) DO NOTHING", secrets.token_hex(6))
    return str(await conn.fetchval("SELECT value FROM cluster_meta WHERE key = 'boot'"))

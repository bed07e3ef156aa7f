"""Wires an instance into its cluster (PostgreSQL store): the outbox bus, the line leases and a
small broadcast channel for state that is shared but not stored (the login throttle).

Used by the composition root (callcenter/app/) only when the store is PostgreSQL; on SQLite
nothing here runs and the product is one process as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from callcenter.cluster.leases import LineLeases
from callcenter.cluster.outbox import ClusterBus, OutboxRelay
from callcenter.config import ClusterConfig

log = logging.getLogger(__name__)

BROADCAST = "callcenter_broadcast"
MAX_BROADCAST = 4000  # bytes: NOTIFY takes up to 8000


def instance_name(config: ClusterConfig) -> str:
    """This instance's name across its restarts (its fax jobs and SMS parts are claimed in
    it, and settled by its next start): give each instance its own instance_id."""
    return config.instance_id or socket.gethostname()


def owner_name(config: ClusterConfig) -> str:
    """This process's name in the leases: unique even when two instances share a name (a
    restarted instance must not inherit the leases of the one that was still running)."""
    return f"{instance_name(config)}/{os.getpid()}/{secrets.token_hex(2)}"


@dataclass
class Cluster:
    dsn: str
    config: ClusterConfig
    owner: str
    bus: ClusterBus
    relay: OutboxRelay
    boot: str
    leases: LineLeases | None = None
    _handlers: dict[str, list[Callable[[dict[str, Any]], None]]] = field(default_factory=dict)
    _broadcast: asyncpg.Connection | None = None
    _pid: int = 0
    _closing: bool = False
    listening: asyncio.Event = field(default_factory=asyncio.Event)

    # -- broadcast: best effort, for shared state that is not stored -------------------------

    async def _open_broadcast(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        await conn.add_listener(BROADCAST, self._received)
        conn.add_termination_listener(self._broadcast_lost)
        self._broadcast = conn
        self._pid = conn.get_server_pid()
        self.listening.set()

    def _broadcast_lost(self, _conn: Any) -> None:
        if self._closing:
            return
        # Without it, guesses and line changes of the other instances would go unheard here
        # until a restart.
        self.listening.clear()
        self._broadcast = None
        log.warning("cluster: the broadcast connection was lost; reconnecting")
        task = asyncio.get_running_loop().create_task(self._reopen_broadcast())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _reopen_broadcast(self) -> None:
        delays = (0.2, 0.5, 1.0, 2.0, 5.0)
        attempt = 0
        while not self._closing:
            try:
                await self._open_broadcast()
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                delay = delays[min(attempt, len(delays) - 1)]
                attempt += 1
                log.warning("cluster: broadcast reconnect failed (%s); again in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay)

    def _received(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid == self._pid:
            return  # our own
        try:
            message = json.loads(payload)
            handlers = self._handlers.get(str(message["kind"]), [])
            body = message["body"]
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: a broadcast that is not ours was ignored")
            return
        for handler in handlers:
            try:
                handler(body)
            except Exception:
                log.exception("cluster: a %s broadcast handler failed", message["kind"])

    def on(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def broadcast(self, kind: str, body: dict[str, Any]) -> None:
        """Tell the other instances (not this one); dropped when the database is away."""
        payload = json.dumps({"kind": kind, "body": body}, ensure_ascii=False)
        if len(payload.encode()) > MAX_BROADCAST or self._broadcast is None:
            return
        task = asyncio.get_running_loop().create_task(self._send(payload))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _send(self, payload: str) -> None:
        conn = self._broadcast
        if conn is None or conn.is_closed():
            return
        try:
            await conn.execute("SELECT pg_notify($1, $2)", BROADCAST, payload)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cluster: broadcast failed (%s)", exc)

    def gate(self, name: str) -> bool:
        return self.leases is not None and name in self.leases.owned


_pending: set[asyncio.Task[None]] = set()
LINES_CHANGED = "lines_changed"


class _Announcing:
    """The line manager's store, telling the other instances when a line was saved or
    deleted here."""

    def __init__(self, store: Any, announce: Callable[[], None]) -> None:
        self._store = store
        self._announce = announce

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def save_line(self, *args: Any, **kwargs: Any) -> None:
        await self._store.save_line(*args, **kwargs)
        self._announce()

    async def delete_line(self, name: str) -> None:
        await self._store.delete_line(name)
        self._announce()


async def _reload(manager: Any, leases: LineLeases) -> None:
    try:
        changed = await manager.reload()
    except Exception:
        log.exception("lines: reloading after another instance's change failed")
        return
    if changed:
        log.info("lines changed on another instance: %s", ", ".join(changed))
        manager.changed.set()  # also when no line started or stopped here (standby)
        leases.wake()


@contextlib.asynccontextmanager
async def cluster_running(dsn: str, config: ClusterConfig, bus: ClusterBus
                          ) -> AsyncIterator[Cluster]:
    """The outbox relay attached to ``bus`` and the broadcast channel; on exit the relay
    writes what is queued and both close."""
    owner = owner_name(config)
    relay = OutboxRelay(dsn, bus, owner, retention_hours=config.outbox_hours)
    boot = await relay.start()
    bus.relay = relay
    cluster = Cluster(dsn, config, owner, bus, relay, boot)
    try:
        await cluster._open_broadcast()
        log.info("cluster: instance %s, events from sequence %d", owner, bus.last_seq)
        yield cluster
    finally:
        cluster._closing = True
        if cluster._broadcast is not None:
            with contextlib.suppress(Exception):
                await cluster._broadcast.close(timeout=1.0)
        bus.relay = None
        await relay.stop()


@contextlib.asynccontextmanager
async def leased_lines(cluster: Cluster, manager: Any, call_log: Any,
                       after_takeover: Callable[[], Awaitable[Any]],
                       forget: Callable[[str], Any] | None = None) -> AsyncIterator[None]:
    """Runs on this instance only the lines whose lease it holds. Taking a line over: the
    calls its previous instance left open are closed and kept for re-adoption, the line
    starts (its connect resyncs the calls still up), and ``after_takeover`` finishes the
    calls no line re-adopted once the lines have resynced. Losing one while alive (fenced,
    or the lease passed on while this process was paused): ``forget(name)`` drops its calls
    from this instance's live calls, unwritten -- the new owner follows them."""
    tasks: set[asyncio.Task[Any]] = set()

    async def gained(name: str) -> None:
        await call_log.take_over(name)
        line = await manager.claim(name)
        if line is None:
            raise RuntimeError(manager.start_error(name) or "the line did not start")
        task = asyncio.get_running_loop().create_task(after_takeover(),
                                                      name=f"takeover-{name}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def lost(name: str) -> None:
        await manager.release(name)
        if forget is not None:
            forgotten = forget(name)
            if forgotten:
                log.warning("line %s: %d live calls left to the instance that takes it over",
                            name, len(forgotten))

    leases = LineLeases(cluster.dsn, cluster.owner, manager.enabled_names, gained, lost,
                        lease_seconds=cluster.config.lease_seconds)
    cluster.leases = leases
    manager.gate = cluster.gate
    # A line added, edited or deleted here is reloaded by the other instances (its owner
    # restarts it with the new settings); a new enabled line is leased at the next tick.
    def announce() -> None:
        cluster.broadcast(LINES_CHANGED, {})
        leases.wake()  # a line added or enabled here: tried for at once

    manager.store = _Announcing(manager.store, announce)

    def reload(_body: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(_reload(manager, leases))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    cluster.on(LINES_CHANGED, reload)
    await leases.start()
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await leases.stop()

"""Lines in a cluster: the line manager of each instance runs only the lines it leases; a line
changed on one instance is applied by the instance running it (callcenter/cluster/runtime.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from callcenter.cluster.outbox import ClusterBus
from callcenter.cluster.runtime import cluster_running, leased_lines
from callcenter.config import ClusterConfig
from callcenter.lines.audit import CLI_ACTOR
from callcenter.lines.manager import LineManager
from callcenter.store.postgres import PostgresStore
from tests.lines.test_manager import fake_kind, rec


class _Registry:
    def __init__(self) -> None:
        self.forgotten: list[str] = []
        self.forgot = asyncio.Event()

    def forget_line(self, line: str) -> list[str]:
        self.forgotten.append(line)
        self.forgot.set()
        return []


class _CallLog:
    def __init__(self) -> None:
        self.taken: list[str] = []

    async def take_over(self, line: str) -> int:
        self.taken.append(line)
        return 0


@dataclass
class Node:
    manager: LineManager
    log: list[tuple[str, str, int]]
    call_log: _CallLog
    registry: _Registry

    async def until(self, check, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self.manager.changed.clear()
                await self.manager.changed.wait()


@contextlib.asynccontextmanager
async def node(url: str, name: str) -> AsyncIterator[Node]:
    store = await PostgresStore.open(url)
    try:
        config = ClusterConfig(instance_id=name, lease_seconds=2.0)
        async with cluster_running(url, config, ClusterBus()) as cluster:
            log: list[tuple[str, str, int]] = []
            manager = LineManager(store)
            manager.register(fake_kind(log))
            manager.gate = cluster.gate
            await manager.load()
            call_log = _CallLog()
            registry = _Registry()

            async def after() -> None:
                return None

            try:
                async with leased_lines(cluster, manager, call_log, after,
                                        forget=registry.forget_line):
                    yield Node(manager, log, call_log, registry)
            finally:
                await manager.close()
    finally:
        await store.close()


async def test_only_the_lease_holder_runs_a_line_and_applies_edits_made_elsewhere(
        pg_url: str) -> None:
    async with node(pg_url, "a") as a, node(pg_url, "b") as b:
        await b.manager.add(rec("office", port=1), CLI_ACTOR)  # added on B
        await a.until(lambda: "office" in a.manager.records)  # A learns of it
        await b.until(lambda: "office" in a.manager.running or "office" in b.manager.running)
        owner, other = (a, b) if "office" in a.manager.running else (b, a)
        assert "office" not in other.manager.running
        assert other.manager.status("office").detail.startswith("standby")
        assert owner.call_log.taken == ["office"] and other.call_log.taken == []
        # Edited on the instance that does not run it: the owner restarts it, alone.
        await other.manager.edit("office", CLI_ACTOR, settings={"port": 2})
        await owner.until(lambda: owner.log[-1:] == [("start", "office", 2)])
        assert ("start", "office", 2) not in other.log
        assert owner.log == [("start", "office", 1), ("stop", "office", 1),
                             ("start", "office", 2)]


async def test_a_clean_stop_hands_the_line_to_the_other_instance(pg_url: str) -> None:
    async with node(pg_url, "b") as b:
        async with node(pg_url, "a") as a:
            await a.manager.add(rec("office"), CLI_ACTOR)
            await a.until(lambda: "office" in a.manager.running
                          or "office" in b.manager.running, 15)
            if "office" in b.manager.running:
                return  # B won the race for the new line: nothing to hand over here
        await b.until(lambda: "office" in b.manager.running)
        assert b.call_log.taken == ["office"]


async def test_a_line_lost_while_alive_leaves_its_calls_to_the_new_owner(pg_url: str) -> None:
    """The lease went to another instance while this one was alive (paused, or fenced): the
    line stops here and its live calls are dropped unwritten, not left up for ever here nor
    ended here as well as by the new owner."""
    import asyncpg

    async with node(pg_url, "a") as a:
        await a.manager.add(rec("office"), CLI_ACTOR)
        await a.until(lambda: "office" in a.manager.running)
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute("UPDATE line_leases SET owner = 'elsewhere', expires_at ="
                                " expires_at + 3600 WHERE line = 'office'")
        finally:
            await admin.close()
        await asyncio.wait_for(a.registry.forgot.wait(), 15)
        assert a.registry.forgotten == ["office"]
        assert "office" not in a.manager.running


async def test_the_broadcast_channel_comes_back_after_its_connection_was_cut(
        pg_url: str) -> None:
    """Shared login throttling and line changes travel on it: a database restart or a network
    blip must not leave an instance deaf to them until it restarts."""
    import asyncpg

    config = ClusterConfig(lease_seconds=2.0)
    async with cluster_running(pg_url, config, ClusterBus()) as a, \
            cluster_running(pg_url, config, ClusterBus()) as b:
        heard = asyncio.Event()
        a.on("probe", lambda body: heard.set())
        lost = asyncio.Event()
        a._broadcast.add_termination_listener(lambda _conn: lost.set())
        old_pid = a._pid
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", a._pid)
        finally:
            await admin.close()
        await asyncio.wait_for(lost.wait(), 15)
        await asyncio.wait_for(a.listening.wait(), 15)  # listening again
        assert a._pid != old_pid
        b.broadcast("probe", {})
        await asyncio.wait_for(heard.wait(), 15)

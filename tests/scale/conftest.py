"""Fixtures of the scale-out tests: they need PostgreSQL (the test run's, tests/pg_server.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from callcenter.bus import BusEvent, EventBus


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL here unless a test is parametrised over both (both_backends)."""
    return getattr(request, "param", "postgres")


class Seen:
    """Events a bus delivered, and a way to wait for a sequence number without sleeping."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[BusEvent] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Event]] = []
        bus.subscribe(self._on)

    def _on(self, event: BusEvent) -> None:
        self.events.append(event)
        for check, flag in self._waiters:
            if check():
                flag.set()

    async def until(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        if check():
            return
        flag = asyncio.Event()
        self._waiters.append((check, flag))
        try:
            await asyncio.wait_for(flag.wait(), timeout)
        finally:
            self._waiters.remove((check, flag))

    async def count(self, n: int, timeout: float = 20.0) -> None:
        await self.until(lambda: len(self.events) >= n, timeout)

"""The calls of a replaced line (callcenter/lines/calls.py): re-adopted by the newest line's
resync, closed when it did not see them again; never closed by a replaced line's late task."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from callcenter.line_events import CallEnded, LineEvent
from callcenter.lines.calls import LineCalls


@dataclass
class Call:
    id: str
    line: str
    answered_at: float | None = 1.0


class Registry:
    def __init__(self, *calls: Call) -> None:
        self.calls = {c.id: c for c in calls}
        self.ended: list[str] = []

    def live(self) -> list[Call]:
        return list(self.calls.values())

    def handle(self, event: LineEvent) -> None:
        if isinstance(event, CallEnded):
            self.calls.pop(event.call_key, None)
            self.ended.append(event.call_key)


class Line:
    def __init__(self) -> None:
        self.synced = asyncio.Event()


def line_of(calls: LineCalls, *reports: str) -> Any:
    line = Line()
    _, seen = calls.sink()
    calls.adopt(line, seen)  # type: ignore[arg-type]
    seen.update(reports)
    return line


async def test_two_edits_within_the_grace_keep_what_the_newest_line_readopted() -> None:
    registry = Registry(Call("c1", "a"), Call("c2", "a"))
    calls = LineCalls(registry, grace=0.05)  # type: ignore[arg-type]
    first, second, third = line_of(calls), line_of(calls), line_of(calls, "c1")
    await calls.changed("a", None, first)
    await calls.changed("a", first, second)  # never syncs: its wait runs out
    await calls.changed("a", second, third)
    third.synced.set()
    await asyncio.gather(*calls._tasks, return_exceptions=True)
    assert registry.ended == ["c2"] and list(registry.calls) == ["c1"]
    await calls.close()


async def test_a_stop_during_the_wait_closes_once_and_the_late_task_does_nothing() -> None:
    registry = Registry(Call("c1", "a"))
    calls = LineCalls(registry, grace=0.05)  # type: ignore[arg-type]
    first, second = line_of(calls), line_of(calls)
    await calls.changed("a", None, first)
    await calls.changed("a", first, second)
    await calls.changed("a", second, None)
    assert registry.ended == ["c1"]
    registry.calls["c3"] = Call("c3", "a")  # the line added again meanwhile, a new call
    await asyncio.gather(*calls._tasks, return_exceptions=True)
    assert registry.ended == ["c1"]
    await calls.close()


async def test_a_failed_restart_keeps_the_calls_for_the_grace_then_closes_them() -> None:
    registry = Registry(Call("c1", "a"))
    calls = LineCalls(registry, grace=0.05)  # type: ignore[arg-type]
    first = line_of(calls)
    await calls.changed("a", None, first)
    await calls.changed("a", first, None, restarting=True)  # the edited line did not start
    assert registry.ended == []  # not "stopped by an admin" at once
    await asyncio.gather(*calls._tasks, return_exceptions=True)
    assert registry.ended == ["c1"]
    await calls.close()


async def test_a_retry_that_starts_readopts_the_calls_of_a_failed_restart() -> None:
    registry = Registry(Call("c1", "a"), Call("c2", "a"))
    calls = LineCalls(registry, grace=0.05)  # type: ignore[arg-type]
    first, retry = line_of(calls), line_of(calls, "c1")
    await calls.changed("a", None, first)
    await calls.changed("a", first, None, restarting=True)
    await calls.changed("a", None, retry)
    retry.synced.set()
    await asyncio.gather(*calls._tasks, return_exceptions=True)
    assert registry.ended == ["c2"]
    await calls.close()


async def test_the_follower_keeps_a_removed_lines_policy_for_its_closed_calls() -> None:
    # The call log writes a closed call (and decides its callback task) later: the policy
    # of the line must still be there, not the default.
    from callcenter.lines.records import LineRecord

    registry = Registry(Call("c1", "a"))
    calls = LineCalls(registry, grace=0.05)  # type: ignore[arg-type]
    policies: dict[str, str | None] = {}
    records = {"a": LineRecord("a", "fake", True, {"callback_on": "never"})}
    follow = calls.follower(records, policies.__setitem__)
    line = line_of(calls)
    await follow("a", None, line)
    assert policies == {"a": "never"}
    del records["a"]
    await follow("a", line, None)
    assert registry.ended == ["c1"] and policies == {"a": "never"}
    await calls.close()


async def test_a_checks_throwaway_line_is_not_kept() -> None:
    import gc
    import weakref

    calls = LineCalls(Registry(), grace=0.05)  # type: ignore[arg-type]
    line = line_of(calls)  # built for a check: adopted, never started, dropped
    gone = weakref.ref(line)
    del line
    gc.collect()
    assert gone() is None and len(calls._seen) == 0

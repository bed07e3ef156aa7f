"""Calls of a line that an admin replaced or removed: kept in the log, re-adopted or closed.

A replaced line starts with a fresh view of the PBX: its first resync re-adopts the calls
still up (the registry keeps them live, same ids). Once that resync is done, the old line's
calls it did not see again ended during the switch and are closed; a line removed or
disabled closes its calls at once. Either way each call stays in the log with its cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping

from callcenter.calls.registry import CallRegistry
from callcenter.line_events import CallEnded, EndState, LineEvent
from callcenter.lines.lifecycle import Line
from callcenter.lines.records import LineRecord

log = logging.getLogger(__name__)

# How long a new line has for its first resync before the old line's calls are closed.
READOPT_GRACE = 60.0


class LineCalls:
    def __init__(self, registry: CallRegistry, grace: float = READOPT_GRACE) -> None:
        self.registry = registry
        self._grace = grace
        # line -> call keys it reported. Weak: the throwaway lines every check builds are
        # adopted too and never replaced (an id() could be reused by a later line).
        self._seen: weakref.WeakKeyDictionary[Line, set[str]] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()
        # One pending re-adopt per line name: a second edit within the grace cancels the
        # first one's, whose line is gone (it would close the calls the newest line re-adopted).
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._current: dict[str, Line] = {}

    def sink(self) -> tuple[Callable[[LineEvent], None], set[str]]:
        """A sink for one new line: passes events on and remembers which calls it saw."""
        seen: set[str] = set()

        def handle(event: LineEvent) -> None:
            seen.add(event.call_key)
            self.registry.handle(event)

        return handle, seen

    def adopt(self, line: Line, seen: set[str]) -> None:
        self._seen[line] = seen

    async def changed(self, name: str, old: Line | None, new: Line | None, *,
                      restarting: bool = False) -> None:
        """``old`` replaced by ``new`` (None: none). ``restarting``: the line is still
        wanted but its new start failed -- its calls wait the grace like a replacement's
        (a retry that starts re-adopts them), then are closed."""
        if old is not None:
            self._seen.pop(old, None)
        pending = self._pending.pop(name, None)
        if pending is not None:
            # Its line was replaced before its resync: the newest line's resync decides
            # (what it sees again is kept, as the replaced one's would have been).
            pending.cancel()
        if new is None:
            self._current.pop(name, None)
        else:
            self._current[name] = new
        if old is None and pending is None:
            return
        if new is None and not restarting:
            self.close_calls(name, set(), f"line {name} was stopped by an admin")
            return
        job = self._after_resync(name, new) if new is not None else self._after_grace(name)
        task = asyncio.create_task(job, name=f"readopt-{name}")
        self._tasks.add(task)
        self._pending[name] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: self._pending.get(name) is t
                               and self._pending.pop(name, None))

    async def _after_resync(self, name: str, new: Line) -> None:
        synced = getattr(new, "synced", None)
        if isinstance(synced, asyncio.Event):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(synced.wait(), self._grace)
        if self._current.get(name) is not new:
            return  # replaced or stopped meanwhile: whoever did that decides
        # What the line reported, and what it tracks but holds back still (an Asterisk line
        # waits for a caller's presentation before it reports the call).
        keep = set(self._seen.get(new, set()))
        live = getattr(new, "live_call_keys", None)
        if callable(live):
            keep |= set(live())
        self.close_calls(name, keep,
                         f"line {name} was changed by an admin; the call was not up any more")

    async def _after_grace(self, name: str) -> None:
        await asyncio.sleep(self._grace)
        if name not in self._current:
            self.close_calls(name, set(), f"line {name} could not be started again after an "
                             "admin's change")

    def close_calls(self, name: str, keep: set[str], cause: str) -> list[str]:
        closed = []
        now = time.time()
        for call in self.registry.live():
            if call.line != name or call.id in keep:
                continue
            state = EndState.ANSWERED if call.answered_at else EndState.FAILED
            log.info("call %s of line %s: closed (%s)", call.id, name, cause)
            self.registry.handle(CallEnded(call.id, now, state, cause=cause))
            closed.append(call.id)
        return closed

    def follower(self, records: Mapping[str, LineRecord],
                 set_callback_on: Callable[[str, str | None], None]
                 ) -> Callable[[str, Line | None, Line | None], Awaitable[None]]:
        """The line manager's listener: the call log's policy follows the line, its calls are
        re-adopted or closed."""

        async def follow(name: str, old: Line | None, new: Line | None) -> None:
            record = records.get(name)
            if new is not None and record is not None:
                set_callback_on(name, record.settings.get("callback_on"))
            # A line removed keeps its policy: the calls closed now are written (and their
            # callback task decided) by the call log later, under the policy they had.
            await self.changed(name, old, new, restarting=new is None and record is not None
                               and record.enabled)

        return follow

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""The calls up on the other instances' lines, as their events tell them: ``GET
/api/calls/live`` on any instance lists every call of the cluster (a console that reloads
after a reset, or that is served by an instance running no line, sees them all).

Each call's latest event is kept (its data has the shape of the registry's snapshot) until
the call ends; an entry no event updated for ``stale_after`` seconds is dropped (its line's
instance died and the call ended before another took the line over), and at most
``max_calls`` are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from callcenter.bus import BusEvent, EventBus

ENDS = frozenset({"call.ended", "call.missed"})


class RemoteLiveCalls:
    def __init__(self, bus: EventBus, *, stale_after: float = 12 * 3600.0,
                 max_calls: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.stale_after = stale_after
        self.max_calls = max_calls
        self.clock = clock
        self._calls: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        # What the replay window holds already (an instance that starts while calls are up).
        for event in bus.since(bus.oldest_seq - 1) or ():
            self._on_event(event)
        self.unsubscribe = bus.subscribe(self._on_event)

    def _on_event(self, event: BusEvent) -> None:
        if not event.topic.startswith("call."):
            return
        call = event.data.get("call")
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            return
        call_id = call["id"]
        if event.topic in ENDS:
            self._calls.pop(call_id, None)
            return
        self._calls[call_id] = (event.at, {"call": call, "match": event.data.get("match")})
        self._calls.move_to_end(call_id)
        while len(self._calls) > self.max_calls:
            self._calls.popitem(last=False)

    def snapshots(self, local: Collection[str]) -> list[dict[str, Any]]:
        """The calls not in ``local`` (this instance's registry has those, up to date)."""
        cutoff = self.clock() - self.stale_after
        while self._calls:
            oldest, (seen, _snap) = next(iter(self._calls.items()))
            if seen >= cutoff:
                break
            del self._calls[oldest]
        return [snap for call_id, (_seen, snap) in self._calls.items() if call_id not in local]

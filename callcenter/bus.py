"""In-process event bus: core events with a sequence number, a replay window, subscribers.

Publishing is synchronous and cheap (a dict append and one call per subscriber); subscribers
must not block — the websocket hub puts events on bounded per-connection queues. The replay
window lets a console that reconnects ask for everything after the last sequence it saw.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusEvent:
    seq: int
    topic: str  # "call.ringing", "call.answered", ...
    at: float
    data: dict[str, Any]
    # The event as JSON, made once for every console that receives it.
    text: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.topic, "at": self.at, "data": self.data}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


Subscriber = Callable[[BusEvent], None]


class EventBus:
    def __init__(self, history: int = 20_000) -> None:
        self._seq = 0
        # The replay window keeps JSON text, not the event dicts: 20,000 snapshots of nested
        # dicts were ~220,000 objects for the garbage collector to walk, and its full
        # collections stalled screen-pops by 100 ms (benchmarks/screenpop_latency.py).
        self._history: deque[tuple[int, str]] = deque(maxlen=history)
        self._subscribers: list[Subscriber] = []

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, topic: str, data: dict[str, Any], at: float | None = None) -> BusEvent:
        self._seq += 1
        at = time.time() if at is None else at
        text = _dumps({"seq": self._seq, "type": topic, "at": at, "data": data})
        event = BusEvent(self._seq, topic, at, data, text)
        self._history.append((self._seq, text))
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("bus subscriber %r failed on %s", subscriber, topic)
        return event

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def since(self, seq: int) -> list[BusEvent] | None:
        """Events after ``seq``, or None when some of them already left the replay window."""
        if seq >= self._seq:
            return []
        if not self._history or self._history[0][0] > seq + 1:
            return None
        start = seq + 1 - self._history[0][0]
        out = []
        for number, text in list(self._history)[start:]:
            raw = json.loads(text)
            out.append(BusEvent(number, raw["type"], raw["at"], raw["data"], text))
        return out

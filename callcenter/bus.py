"""In-process event bus: core events with a sequence number, a replay window, subscribers.

Publishing is synchronous and cheap (a dict append and one call per subscriber); subscribers
must not block — the websocket hub puts events on bounded per-connection queues. The replay
window lets a console that reconnects ask for everything after the last sequence it saw.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusEvent:
    seq: int
    topic: str  # "call.ringing", "call.answered", ...
    at: float
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.topic, "at": self.at, "data": self.data}


Subscriber = Callable[[BusEvent], None]


class EventBus:
    def __init__(self, history: int = 20_000) -> None:
        self._seq = 0
        self._history: deque[BusEvent] = deque(maxlen=history)
        self._subscribers: list[Subscriber] = []

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, topic: str, data: dict[str, Any], at: float | None = None) -> BusEvent:
        self._seq += 1
        event = BusEvent(self._seq, topic, time.time() if at is None else at, data)
        self._history.append(event)
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
        if not self._history or self._history[0].seq > seq + 1:
            return None
        start = seq + 1 - self._history[0].seq
        return list(self._history)[start:]

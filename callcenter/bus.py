"""In-process event bus: core events with a sequence number, a replay window, subscribers.

Publishing is synchronous and cheap (a dict append and one call per subscriber); subscribers
must not block — the websocket hub puts events on bounded per-connection queues. The replay
window lets a console that reconnects ask for everything after the last sequence it saw.
"""

from __future__ import annotations

import itertools
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

    @property
    def oldest_seq(self) -> int:
        """The first sequence still in the replay window (``last_seq + 1`` when it is empty)."""
        return self._history[0][0] if self._history else self._seq + 1

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

    def apply(self, seq: int, topic: str, at: float, data: dict[str, Any],
              data_text: str | None = None, *, deliver: bool = True) -> BusEvent:
        """Deliver an event whose sequence number was given elsewhere (the cluster's outbox,
        callcenter/cluster/outbox.py): the same on every instance. It must follow
        ``last_seq``; ``data_text`` is ``data`` as JSON when the caller has it already."""
        if seq <= self._seq:
            raise ValueError(f"event {seq} is not after {self._seq}")
        if seq != self._seq + 1:
            self.skip_to(seq - 1)
        self._seq = seq
        if data_text is None:
            data_text = _dumps(data)
        text = (f'{{"seq":{seq},"type":{_dumps(topic)},"at":{_dumps(at)},'
                f'"data":{data_text}}}')
        event = BusEvent(seq, topic, at, data, text)
        self._history.append((seq, text))
        if deliver:
            self._deliver(event)
        return event

    def replace_texts(self, texts: dict[int, str]) -> int:
        """Put these texts in place of the events with those numbers still in the window (a
        redaction made on another instance); returns how many were replaced."""
        replaced = 0
        for i, (number, _text) in enumerate(self._history):
            if number in texts:
                self._history[i] = (number, texts[number])
                replaced += 1
        return replaced

    def _deliver(self, event: BusEvent) -> None:
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("bus subscriber %r failed on %s", subscriber, event.topic)

    def skip_to(self, seq: int) -> None:
        """Continue after ``seq`` with an empty replay window (the events between were
        lost to this bus): a console resuming from before gets a reset, never a gap."""
        self._history.clear()
        self._seq = seq

    def preload(self, events: list[tuple[int, str]]) -> None:
        """Fill the replay window with events already sequenced (id, JSON text as
        :meth:`apply` makes it), oldest first, without telling subscribers: an instance that
        starts can resume the consoles of one that stopped."""
        if not events:
            return
        self.skip_to(events[0][0] - 1)
        for number, text in events:
            if number != self._seq + 1:
                self.skip_to(number - 1)
            self._history.append((number, text))
            self._seq = number

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def redact(self, needle: str,
               rewrite: Callable[[dict[str, Any]], dict[str, Any] | None]) -> int:
        """Replace earlier events in the replay window with redacted copies (same sequence
        numbers, topic and time), so a console that resumes is never replayed what must no
        longer be shown. Only events whose JSON text contains ``needle`` are parsed;
        ``rewrite`` returns the new data, or None to keep the event. Returns how many were
        replaced. Subscribers are not told: what they already received was theirs."""
        copies: list[tuple[int, str]] = []
        for i, (_number, text) in enumerate(self._history):
            if needle in text:
                raw = json.loads(text)
                data = rewrite(raw["data"])
                if data is not None:
                    copies.append((i, _dumps({**raw, "data": data})))
        for i, text in copies:
            self._history[i] = (self._history[i][0], text)
        return len(copies)

    def since(self, seq: int, limit: int | None = None) -> list[BusEvent] | None:
        """Events after ``seq``, or None when some of them already left the replay window or
        there are more than ``limit``. Both are decided by sequence number alone, so a console
        that is too far behind costs nothing; only the events returned are parsed."""
        if seq >= self._seq:
            return []
        if seq + 1 < self.oldest_seq:
            return None
        count = self._seq - seq
        if limit is not None and count > limit:
            return None
        # Walk from the newest end: the deque is indexed in O(n) from the nearer end only.
        tail = list(itertools.islice(reversed(self._history), count))
        tail.reverse()
        return [_load_event(number, text) for number, text in tail]


def _load_event(number: int, text: str) -> BusEvent:
    raw = json.loads(text)
    return BusEvent(number, raw["type"], raw["at"], raw["data"], text)

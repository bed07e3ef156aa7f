"""The hub's fan-out against the rule it replaced (f3f0b86): each console kept the set of calls
it had been sent, and got a call's event when the event was visible to its user or the call was
in its set (the set forgot the call at its end). Random consoles open and close (several per
user, some closing while still listed), calls change who may see them between events, end,
go on after their end, and the sequence has gaps (a cluster's outbox, callcenter/bus.py
``apply``): every console gets exactly the events the old rule gave it."""

from __future__ import annotations

import asyncio
import types
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from callcenter.bus import BusEvent, EventBus
from callcenter.models import Role, User
from ui.hub import CLOSE_TRY_AGAIN, Connection, Hub

USERS = [User(i, f"u{i}", f"User {i}", Role.MANAGER) for i in range(1, 4)]
CALLS = ["office:1", "office:2"]
TOPICS = ["call.ringing", "call.updated", "call.answered", "call.ended", "call.missed"]


@dataclass(eq=False)
class OldConsole:
    user: User
    calls: set[str] = field(default_factory=set)
    got: list[int] = field(default_factory=list)
    closing: bool = False


def old_fan_out(consoles: list[OldConsole], event: BusEvent, visible: Any) -> None:
    """``Hub._on_event``'s choice of consoles as it was before f3f0b86."""
    call_id = (event.data.get("call") or {}).get("id")
    final = event.topic in ("call.ended", "call.missed")
    for con in consoles:
        if con.closing:
            continue
        if call_id not in con.calls and not visible(con.user, event.data, False):
            continue
        if call_id is not None:
            if final:
                con.calls.discard(call_id)
            else:
                con.calls.add(call_id)
        con.got.append(event.seq)


def sees(user: User, data: dict[str, Any], _see_all: bool) -> bool:
    return user.id in data["who"]


def received(conn: Connection) -> list[int]:
    seqs = []
    while not conn.queue.empty():
        item = conn.queue.get_nowait()
        assert item is not None
        seqs.append(item[0])
    return seqs


an_event = st.tuples(st.just("event"), st.integers(0, len(CALLS)), st.sampled_from(TOPICS),
                     st.frozensets(st.sampled_from([u.id for u in USERS])), st.integers(1, 3))
op = st.one_of(
    st.tuples(st.just("open"), st.integers(0, len(USERS) - 1)),
    st.tuples(st.just("close"), st.integers(0, 20)),
    st.tuples(st.just("drop"), st.integers(0, 20)),  # closing, still in ``connections``
    an_event, an_event, an_event,
)


RING, END, UPDATE = "call.ringing", "call.ended", "call.updated"


@settings(max_examples=1000, deadline=None)
@given(st.lists(op, min_size=10, max_size=80))
# Shown, then no longer the user's: the end still comes; after it, the call goes by visibility.
@example([("open", 0), ("event", 0, RING, frozenset({1}), 1),
          ("event", 0, END, frozenset(), 1), ("event", 0, UPDATE, frozenset(), 1)])
# A second console of the same user, opened after the pop, has not shown the call.
@example([("open", 0), ("event", 0, RING, frozenset({1}), 2), ("open", 0),
          ("event", 0, UPDATE, frozenset(), 1), ("event", 0, END, frozenset(), 3)])
# The last visible event is the one the console subscribed at.
@example([("event", 0, RING, frozenset(), 1), ("open", 0),
          ("event", 0, UPDATE, frozenset({1}), 2), ("open", 0),
          ("event", 0, END, frozenset(), 1)])
def test_every_console_gets_what_the_per_console_sets_gave_it(ops: list[tuple[Any, ...]]
                                                               ) -> None:
    bus = EventBus()
    hub = Hub(visible=sees, queue_size=1000)
    hub.services = types.SimpleNamespace(  # type: ignore[assignment]
        bus=bus, config=types.SimpleNamespace(
            console=types.SimpleNamespace(managers_see_all_clients=False)))
    bus.subscribe(hub._on_event)
    pairs: list[tuple[Connection, OldConsole]] = []
    got: dict[Connection, list[int]] = {}
    for step in ops:
        if step[0] == "open":
            user = USERS[step[1]]
            # What ``Hub.endpoint`` does when it subscribes a console.
            conn = Connection(None, user, asyncio.Queue(1000))  # type: ignore[arg-type]
            conn.since = bus.last_seq
            hub.connections.add(conn)
            pairs.append((conn, OldConsole(user)))
            got[conn] = []
        elif step[0] in ("close", "drop") and pairs:
            conn, old = pairs[step[1] % len(pairs)]
            if step[0] == "drop":
                conn.drop(CLOSE_TRY_AGAIN)
                old.closing = True
            else:
                hub.connections.discard(conn)
                pairs.remove((conn, old))
        elif step[0] == "event":
            _, call, topic, who, gap = step
            data: dict[str, Any] = {"who": sorted(who)}
            if call < len(CALLS):  # else an event of no call (an SMS, a fax)
                data["call"] = {"id": CALLS[call]}
            event = bus.apply(bus.last_seq + gap, topic, 0.0, data)
            old_fan_out([old for _, old in pairs], event, sees)
            for conn, _ in pairs:
                got[conn] += received(conn)
            for conn, old in pairs:
                assert got[conn] == old.got, (conn.user.id, conn.since)

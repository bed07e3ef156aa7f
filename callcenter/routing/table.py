"""Secretary groups compiled into a table the screen-pop path reads without any I/O.

A call is routed by its most specific key: the number dialled (DID), else its queue, else its
line. A secretary who belongs to a group sees the calls routed to their groups, the calls that
involve them (rang or answered at their extension, transferred to them), and every call no
group claims (an unrouted call must reach someone). A secretary in no group sees every call,
as before routing existed. Admins and managers are not affected (managers keep their own rule).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.calls.visibility import can_see_event, involves
from callcenter.models import Role, User

TAIL = 10  # DIDs also match on their last 10 digits: "+7 495 ..." and "8495..." are one DID


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


@dataclass(slots=True)
class Group:
    id: int
    name: str
    members: list[int] = field(default_factory=list)
    dids: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Immutable: a change builds a new table and swaps the reference."""

    by_did: Mapping[str, frozenset[int]]
    by_did_tail: Mapping[str, frozenset[int]]
    by_queue: Mapping[str, frozenset[int]]
    by_line: Mapping[str, frozenset[int]]
    of_user: Mapping[int, frozenset[int]]

    @classmethod
    def empty(cls) -> RoutingTable:
        return cls({}, {}, {}, {}, {})

    @classmethod
    def build(cls, groups: Iterable[Group], secretaries: Collection[int] | None = None
              ) -> RoutingTable:
        """``secretaries``: the enabled secretaries; a group with none of them claims no
        call (nobody would see it). None: every member counts."""
        did: dict[str, set[int]] = {}
        tail: dict[str, set[int]] = {}
        queue: dict[str, set[int]] = {}
        line: dict[str, set[int]] = {}
        user: dict[int, set[int]] = {}
        for g in groups:
            if secretaries is not None and not any(m in secretaries for m in g.members):
                continue
            for d in g.dids:
                d = digits(d)
                if d:
                    did.setdefault(d, set()).add(g.id)
                    tail.setdefault(d[-TAIL:], set()).add(g.id)
            for q in g.queues:
                queue.setdefault(q, set()).add(g.id)
            for name in g.lines:
                line.setdefault(name, set()).add(g.id)
            for uid in g.members:
                user.setdefault(uid, set()).add(g.id)

        def freeze(m: dict[Any, set[int]]) -> dict[Any, frozenset[int]]:
            return {k: frozenset(v) for k, v in m.items()}

        return cls(freeze(did), freeze(tail), freeze(queue), freeze(line), freeze(user))

    def groups_for(self, call: Mapping[str, Any]) -> frozenset[int] | None:
        """The groups a call is routed to; None when no group claims it."""
        called = call.get("called")
        if called and (self.by_did or self.by_did_tail):
            d = digits(str(called))
            found = self.by_did.get(d) or (self.by_did_tail.get(d[-TAIL:]) if d else None)
            if found:
                return found
        queue = call.get("queue")
        if queue and queue in self.by_queue:
            return self.by_queue[queue]
        line = call.get("line")
        if line and line in self.by_line:
            return self.by_line[line]
        return None

    def can_see_event(self, user: User, data: dict[str, Any], managers_see_all: bool) -> bool:
        if not can_see_event(user, data, managers_see_all):
            return False
        if user.role is not Role.SECRETARY:
            return True
        mine = self.of_user.get(user.id)
        if not mine:
            return True  # in no group: every call
        call = data.get("call")
        if call is None:
            return True
        routed = self.groups_for(call)
        if routed is None or not routed.isdisjoint(mine):
            return True
        return involves(user, call, data.get("match"))

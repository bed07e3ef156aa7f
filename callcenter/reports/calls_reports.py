"""The call reports: calls by manager, missed calls and callbacks, load.

Definitions (the known-answer tests compute the same from their own rows):

* answered (by a person): ``answered_at`` is set. Time to answer: ``answered_at`` minus
  ``ringing_at`` — the caller's whole wait, queue and IVR included.
* missed: an inbound call no person answered that has ended, except one the PBX handled
  itself (IVR, announcement) while the office was open. Its kind, first match wins:
  ``after_hours`` (rang while the office hours say closed; no hours set: never),
  ``abandoned``, ``no_answer``, ``other_missed`` (busy, failed, a lost end).
* transfers: the successful ones in the call's transfer list; made by the user whose
  extension it came from, received by the user whose extension it went to (the extension
  map as it is now).
* own-client share (per manager): of the person-answered inbound calls from the manager's
  clients, the share the manager answered.
* callbacks: the callback tasks opened for calls that rang in the period; time to callback is
  task done minus call rang; within SLA: done within ``[reports] callback_sla_minutes``.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callcenter.reports.engine import Context, ratio, result
from callcenter.reports.model import Grouping, Table
from callcenter.reports.periods import percentile, utc_text
from callcenter.reports.registry import LOAD_BY, OPEN_CALLBACKS

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MISS_KINDS = ("abandoned", "no_answer", "after_hours", "other_missed")
LONGEST_CALL = timedelta(days=1)  # a callback is opened when its call ends


def miss_kind(ctx: Context, ringing_at: str, answered_at: str | None, pbx: int, state: str,
              reason: str | None) -> str | None:
    """The kind of missed call, None when the call is not missed (see the module doc)."""
    if answered_at is not None or state == "ringing":
        return None  # answered by a person, or still going on
    if not ctx.is_open(ringing_at):
        return "after_hours"
    if pbx:
        return None  # the office's own IVR or announcement, while open
    if reason == "abandoned":
        return "abandoned"
    if reason == "no_answer":
        return "no_answer"
    return "other_missed"


def _wait(ringing_at: str, answered_at: str) -> float:
    return max(0.0, (datetime.fromisoformat(answered_at)
                     - datetime.fromisoformat(ringing_at)).total_seconds())


# -- calls by manager -------------------------------------------------------------------------

@dataclass
class _Agent:
    inbound_answered: int = 0
    outbound: int = 0
    outbound_answered: int = 0
    talk: float = 0.0
    waits: list[float] = field(default_factory=list)
    made: int = 0
    received: int = 0
    own_calls: int = 0  # answered inbound calls of their clients (anyone answered)
    own_answered: int = 0  # ... that they answered themselves

    def add(self, other: _Agent) -> None:
        for name in ("inbound_answered", "outbound", "outbound_answered", "talk", "made",
                     "received", "own_calls", "own_answered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.waits += other.waits

    def row(self, label: str) -> tuple[Any, ...]:
        waits = self.waits
        return (label, self.inbound_answered, self.outbound, self.outbound_answered, self.talk,
                sum(waits) / len(waits) if waits else None, percentile(waits, 0.9),
                self.made, self.received, self.own_calls, ratio(self.own_answered,
                                                                self.own_calls))


CBM_FIELDS = ("ringing_at", "direction", "answered_at", "answered_by_user", "user_id",
              "manager_id", "talk_seconds", "transfers")


async def calls_by_manager(ctx: Context) -> Any:
    rows = await ctx.store.report_calls(ctx.call_where(users=()), CBM_FIELDS)
    by_user = ctx.grouping is Grouping.USER
    buckets = ctx.buckets()
    wanted = set(ctx.user_filter)
    counts: Callable[[int | None], bool] = (
        (lambda u: u in wanted) if wanted else (lambda u: by_user is False or u is not None))
    ext_user = ctx.ext_users()
    stats: dict[Any, _Agent] = defaultdict(_Agent)
    for ringing_at, direction, answered_at, answered_by, placed_by, manager, talk, transfers \
            in rows:
        key_of: Callable[[int | None], Any]
        if by_user:
            def key_of(u: int | None) -> Any:
                return u
        else:
            i = buckets.index(ringing_at)
            if i < 0:
                continue
            label = buckets.labels[i]

            def key_of(u: int | None, label: str = label) -> Any:
                return label
        if direction == "inbound" and answered_at is not None:
            if counts(answered_by):
                s = stats[key_of(answered_by)]
                s.inbound_answered += 1
                s.waits.append(_wait(ringing_at, answered_at))
                s.talk += talk or 0.0
            if manager is not None and counts(manager):
                s = stats[key_of(manager)]
                s.own_calls += 1
                s.own_answered += answered_by == manager
        elif direction == "outbound" and counts(placed_by):
            s = stats[key_of(placed_by)]
            s.outbound += 1
            if answered_at is not None:
                s.outbound_answered += 1
                s.talk += talk or 0.0
        if transfers and transfers != "[]":
            for t in json.loads(transfers):
                if t.get("result") != "success":
                    continue
                giver, taker = ext_user.get(t.get("from") or ""), ext_user.get(t.get("to") or "")
                if giver is not None and counts(giver):
                    stats[key_of(giver)].made += 1
                if taker is not None and counts(taker):
                    stats[key_of(taker)].received += 1
    total = _Agent()
    out: list[tuple[Any, ...]] = []
    if by_user:
        ids = set(wanted) if wanted else {u for u in stats if u is not None} | {
            uid for uid, (_n, role, _e, active) in ctx.users.items()
            if role == "manager" and active}
        for uid in sorted(ids, key=lambda u: (ctx.user_name(u).casefold(), u)):
            s = stats.get(uid, _Agent())
            total.add(s)
            out.append(s.row(ctx.user_name(uid)))
    else:
        for label in buckets.row_labels():
            s = stats.get(label, _Agent())
            total.add(s)
            out.append(s.row(label))
    return result(ctx, out, total.row(""))


# -- missed calls ------------------------------------------------------------------------------

MISSED_FIELDS = ("ringing_at", "answered_at", "handled_by_pbx", "state", "reason", "line")


@dataclass
class _Missed:
    inbound: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MISS_KINDS, 0))
    callbacks: int = 0
    times: list[float] = field(default_factory=list)  # done callbacks: seconds to callback
    within: int = 0

    def add(self, other: _Missed) -> None:
        self.inbound += other.inbound
        for k in MISS_KINDS:
            self.kinds[k] += other.kinds[k]
        self.callbacks += other.callbacks
        self.times += other.times
        self.within += other.within

    def row(self, label: str) -> tuple[Any, ...]:
        missed = sum(self.kinds.values())
        return (label, self.inbound, missed, ratio(missed, self.inbound),
                *(self.kinds[k] for k in MISS_KINDS), self.callbacks, len(self.times),
                percentile(self.times, 0.5), percentile(self.times, 0.9),
                ratio(self.within, self.callbacks))


async def missed_calls(ctx: Context) -> Any:
    where = ctx.call_where(direction="inbound")
    by_line = ctx.grouping is Grouping.LINE
    buckets = ctx.buckets()
    stats: dict[str, _Missed] = defaultdict(_Missed)

    def key(ringing_at: str, line: str) -> str | None:
        if by_line:
            return line
        i = buckets.index(ringing_at)
        return buckets.labels[i] if i >= 0 else None

    for ringing_at, answered_at, pbx, state, reason, line in await ctx.store.report_calls(
            where, MISSED_FIELDS):
        k = key(ringing_at, line)
        if k is None:
            continue
        s = stats[k]
        s.inbound += 1
        kind = miss_kind(ctx, ringing_at, answered_at, pbx, state, reason)
        if kind is not None:
            s.kinds[kind] += 1
    opened_before = utc_text(ctx.period.after + LONGEST_CALL)
    for ringing_at, line, done, done_at, _task in await ctx.store.report_callbacks(
            where, opened_before):
        k = key(ringing_at, line)
        if k is None:
            continue
        s = stats[k]
        s.callbacks += 1
        if done and done_at:
            seconds = max(0.0, (datetime.fromisoformat(done_at)
                                - datetime.fromisoformat(ringing_at)).total_seconds())
            s.times.append(seconds)
            s.within += seconds <= ctx.sla_seconds
    labels = sorted(stats) if by_line else buckets.row_labels()
    total = _Missed()
    out = []
    for label in labels:
        s = stats.get(label, _Missed())
        total.add(s)
        out.append(s.row(label))
    return result(ctx, out, total.row(""), {"open_callbacks": await _open_callbacks(ctx)})


async def _open_callbacks(ctx: Context) -> Table:
    rows = []
    for task_id, phone, client, assignee, role, created_at, due_at in \
            await ctx.store.report_open_callbacks(ctx.manager_id, ctx.f.client_id):
        age = (ctx.now - datetime.fromisoformat(created_at)).total_seconds()
        rows.append((task_id, phone or "", client or "", assignee or (role or ""),
                     created_at, due_at, max(0.0, age)))
    return Table(OPEN_CALLBACKS, rows)


# -- load --------------------------------------------------------------------------------------

LOAD_FIELDS = ("ringing_at", "ended_at", "direction", "answered_at", "handled_by_pbx",
               "state", "reason", "line", "called", "queue", "talk_seconds")


@dataclass
class _Load:
    calls: int = 0
    inbound: int = 0
    outbound: int = 0
    answered: int = 0
    missed: int = 0
    talk: float = 0.0
    ends: list[str] = field(default_factory=list)  # heap of the ends of calls going on
    peak: int = 0
    peak_at: str | None = None

    def add_call(self, ringing_at: str, ended_at: str | None, direction: str,
                 answered: bool, missed: bool, talk: float | None) -> None:
        self.calls += 1
        self.inbound += direction == "inbound"
        self.outbound += direction == "outbound"
        self.answered += answered
        self.missed += missed
        self.talk += talk or 0.0
        if ended_at is None:
            return  # going on, or its end was never seen: no interval to count
        ends = self.ends
        while ends and ends[0] <= ringing_at:
            heapq.heappop(ends)
        heapq.heappush(ends, ended_at)
        if len(ends) > self.peak:
            self.peak, self.peak_at = len(ends), ringing_at

    def row(self, label: str) -> tuple[Any, ...]:
        return (label, self.calls, self.inbound, self.outbound, self.answered, self.missed,
                self.talk, self.peak, self.peak_at)


async def load(ctx: Context) -> Any:
    hours = ctx.period.buckets(Grouping.HOUR)
    cell_of = [(s.weekday(), s.hour) for s in hours.starts]
    cells: dict[tuple[int, int], list[int]] = {(d, h): [0, 0, 0] for d in range(7)
                                               for h in range(24)}
    overall = _Load()
    per: dict[str, dict[str, _Load]] = {"per_line": defaultdict(_Load),
                                        "per_did": defaultdict(_Load),
                                        "per_queue": defaultdict(_Load)}
    lines, dids, queues = per["per_line"], per["per_did"], per["per_queue"]
    for (ringing_at, ended_at, direction, answered_at, pbx, state, reason, line, called,
         queue, talk) in await ctx.store.report_calls(ctx.call_where(), LOAD_FIELDS):
        i = hours.index(ringing_at)
        if i < 0:
            continue
        answered = answered_at is not None
        missed = direction == "inbound" and miss_kind(
            ctx, ringing_at, answered_at, pbx, state, reason) is not None
        cell = cells[cell_of[i]]
        cell[0] += 1
        cell[1] += answered
        cell[2] += missed
        overall.add_call(ringing_at, ended_at, direction, answered, missed, talk)
        lines[line].add_call(ringing_at, ended_at, direction, answered, missed, talk)
        if direction == "inbound" and called:
            dids[called].add_call(ringing_at, ended_at, direction, answered, missed, talk)
        if queue:
            queues[queue].add_call(ringing_at, ended_at, direction, answered, missed, talk)
    rows = [(d, f"report.weekday.{WEEKDAYS[d]}", h, *cells[(d, h)]) for d in range(7)
            for h in range(24)]
    totals = (None, None, None, sum(c[0] for c in cells.values()),
              sum(c[1] for c in cells.values()), sum(c[2] for c in cells.values()))
    sections = {name: Table(LOAD_BY, [s.row(k) for k, s in sorted(group.items())])
                for name, group in per.items()}
    sections["peak"] = Table(LOAD_BY, [overall.row("all")])
    return result(ctx, rows, totals, sections)

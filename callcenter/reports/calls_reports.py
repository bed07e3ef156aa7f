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

import dataclasses
import heapq
import json
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callcenter.reports.engine import Context, ratio, result
from callcenter.reports.model import Grouping, Table
from callcenter.reports.periods import percentile, utc_text
from callcenter.reports.registry import LOAD_BY, OPEN_CALLBACKS
from callcenter.store.sqlite_reports import OUTCOME_ANSWERED, OUTCOME_PBX, OUTCOME_UNANSWERED

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
    rows = await ctx.store.report_calls(ctx.call_where(users=(), only="worked"), CBM_FIELDS)
    by_user = ctx.grouping is Grouping.USER
    buckets = ctx.buckets()
    bounds, labels, last = buckets.bounds, buckets.labels, len(buckets.labels)
    wanted = set(ctx.user_filter)
    ext_user = ctx.ext_users()
    stats: dict[Any, _Agent] = defaultdict(_Agent)
    parse = datetime.fromisoformat
    for ringing_at, direction, answered_at, answered_by, placed_by, manager, talk, transfers \
            in rows:
        # the row's key: the user a figure belongs to, or the time bucket for every figure
        label = None
        if not by_user:
            i = bisect_right(bounds, ringing_at) - 1
            if not 0 <= i < last:
                continue
            label = labels[i]
        if direction == "inbound":
            if (answered_by is not None or not by_user) and (not wanted
                                                             or answered_by in wanted):
                s = stats[answered_by if label is None else label]
                s.inbound_answered += 1
                s.waits.append(max(0.0, (parse(answered_at)
                                         - parse(ringing_at)).total_seconds()))
                s.talk += talk or 0.0
            if manager is not None and (not wanted or manager in wanted):
                s = stats[manager if label is None else label]
                s.own_calls += 1
                s.own_answered += answered_by == manager
        elif (placed_by is not None or not by_user) and (not wanted or placed_by in wanted):
            s = stats[placed_by if label is None else label]
            s.outbound += 1
            if answered_at is not None:
                s.outbound_answered += 1
                s.talk += talk or 0.0
        if transfers != "[]" and transfers:
            for t in json.loads(transfers):
                if t.get("result") != "success":
                    continue
                giver, taker = ext_user.get(t.get("from") or ""), ext_user.get(t.get("to") or "")
                if giver is not None and (not wanted or giver in wanted):
                    stats[giver if label is None else label].made += 1
                if taker is not None and (not wanted or taker in wanted):
                    stats[taker if label is None else label].received += 1
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

    # every inbound call counts in its bucket; only those no person answered are read
    hourly = by_line or all(b[13:] == ":00:00.000+00:00" for b in buckets.bounds)
    if hourly:
        for hour, line, n in await ctx.store.report_hour_counts(where):
            k = key(f"{hour}:00:00.000+00:00", line)
            if k is not None:
                stats[k].inbound += n
    rows = await ctx.store.report_calls(
        where if not hourly else dataclasses.replace(where, only="unanswered"), MISSED_FIELDS)
    for ringing_at, answered_at, pbx, state, reason, line in rows:
        k = key(ringing_at, line)
        if k is None:
            continue
        s = stats[k]
        if not hourly:
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

LOAD_FIELDS = ("ringing_at", "ended_at", "direction", "outcome", "line", "called", "queue",
               "talk_seconds")


def _peak(ends: list[str], state: list[Any], ringing_at: str, ended_at: str) -> None:
    """One more call in a sweep over calls by start: ``ends`` is the heap of the ends of
    those going on; ``state`` is [peak, peak at]. A call that ends as another starts does
    not overlap it."""
    while ends and ends[0] <= ringing_at:
        heapq.heappop(ends)
    heapq.heappush(ends, ended_at)
    if len(ends) > state[0]:
        state[0], state[1] = len(ends), ringing_at


async def load(ctx: Context) -> Any:
    hours = ctx.period.buckets(Grouping.HOUR)
    bounds, last = hours.bounds, len(hours.labels)
    cell_of = [(s.weekday(), s.hour) for s in hours.starts]
    cells: dict[tuple[int, int], list[int]] = {(d, h): [0, 0, 0] for d in range(7)
                                               for h in range(24)}
    cell_list = [cells[c] for c in cell_of]
    # (line, DID, queue, direction, answered, missed) -> [calls, talk]: one update a call;
    # the per-line, per-DID and per-queue tables are sums over it
    kinds: dict[tuple[Any, ...], list[Any]] = {}
    # concurrent calls: overall and per line (the trunks' capacity)
    ends: dict[str | None, list[str]] = defaultdict(list)
    peaks: dict[str | None, list[Any]] = defaultdict(lambda: [0, None])
    opening = ctx.opening()
    for ringing_at, ended_at, direction, outcome, line, called, queue, talk in \
            await ctx.store.report_calls(ctx.call_where(), LOAD_FIELDS):
        i = bisect_right(bounds, ringing_at) - 1
        if not 0 <= i < last:
            continue
        inbound = direction == "inbound"
        answered = outcome == OUTCOME_ANSWERED
        # miss_kind() inline: ended unanswered, and not the PBX's own while open
        missed = inbound and (outcome == OUTCOME_UNANSWERED or (
            outcome == OUTCOME_PBX and opening is not None
            and not bisect_right(opening, ringing_at) & 1))
        cell = cell_list[i]
        cell[0] += 1
        cell[1] += answered
        cell[2] += missed
        key = (line, called if inbound else None, queue, direction, answered, missed)
        found = kinds.get(key)
        if found is None:
            kinds[key] = [1, talk or 0.0]
        else:
            found[0] += 1
            if talk:
                found[1] += talk
        if ended_at is not None:  # going on, or its end never seen: no interval
            _peak(ends[None], peaks[None], ringing_at, ended_at)
            _peak(ends[line], peaks[line], ringing_at, ended_at)
    rows = [(d, f"report.weekday.{WEEKDAYS[d]}", h, *cells[(d, h)]) for d in range(7)
            for h in range(24)]
    totals = (None, None, None, sum(c[0] for c in cells.values()),
              sum(c[1] for c in cells.values()), sum(c[2] for c in cells.values()))
    sections = {}
    for name, at, with_peak in (("per_line", 0, True), ("per_did", 1, False),
                                ("per_queue", 2, False)):
        sums: dict[str, list[Any]] = {}
        for key, (n, seconds) in kinds.items():
            if key[at] is None:
                continue
            acc = sums.setdefault(key[at], [0, 0, 0, 0, 0, 0.0])
            direction, answered, missed = key[3:]
            acc[0] += n
            acc[1] += n if direction == "inbound" else 0
            acc[2] += n if direction == "outbound" else 0
            acc[3] += n if answered else 0
            acc[4] += n if missed else 0
            acc[5] += seconds
        sections[name] = Table(LOAD_BY, [
            (k, *acc, *(peaks[k] if with_peak else (None, None)))
            for k, acc in sorted(sums.items())])
    everything = [sum(r[i] for r in sections["per_line"].rows) for i in range(1, 7)]
    sections["peak"] = Table(LOAD_BY, [("all", *everything, *peaks[None])])
    return result(ctx, rows, totals, sections)

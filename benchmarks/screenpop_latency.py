"""Screen-pop latency: AMI bytes in -> call.ringing delivered on the bus, 1,000,000-number base.

    .venv/bin/python benchmarks/screenpop_latency.py [--rate 5000] [--seconds 20] [--phones 1000000]

The product side runs in this process, pinned to one core, wired as the app wires it: the
SqliteStore on the cached 1M-number database (benchmarks/lookup.py builds it once), CallerMatcher,
EventBus, CallRegistry (a discarding call sink, or --call-log for the real CallLog on a copy of
the database) and the real AsteriskLine, which logs in over TCP on 127.0.0.1. The PBX is a
separate process pinned to the other core: a small AMI server (banner, Login, Ping, an empty
CoreShowChannels) that streams fresh calls rewritten from the recorded inbound traces - every
event, VarSet/Newexten/CEL noise included, callers drawn from the client base - at a steady
--rate events/s paced on absolute deadlines. It notes time.perf_counter() (CLOCK_MONOTONIC, one
clock for both processes) right after writing the message that makes an extension ring (found by
running the product's correlator over the stream beforehand); the product notes it in a bus
subscriber for each call.ringing. Latency = the difference, joined on (call, extension).
The first --warmup seconds are left out of the figures. Target: p99 <= 5 ms.

To tell the product's own pauses from a busy machine it also prints GC pauses (gc.callbacks),
event-loop lateness from a 1 ms ticker with the CPU time the loop used meanwhile, involuntary
context switches and major page faults. The database file is read once first so lookups hit
the page cache as in a running CRM (--cold skips that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import multiprocessing as mp
import os
import random
import resource
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._ami_stream import (
    BANNER,
    LINE,
    TRUNKS,
    base_callers,
    interleaved_calls,
    load_templates,
    mean_events_per_call,
)
from benchmarks.lookup import OUT, prepare
from callcenter.bus import BusEvent, EventBus
from callcenter.calls.log import CallLog
from callcenter.calls.model import LiveCall
from callcenter.calls.registry import CallRegistry, CallSink
from callcenter.config import PbxLineConfig, PhonesConfig
from callcenter.line_events import Answered, CallEnded, RingingChanged
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from pbx.ami.codec import parse_message
from pbx.ami.correlator import AmiCallCorrelator, CorrelatorConfig
from pbx.ami.emulator import response
from pbx.asterisk_line import AsteriskLine

TARGET_P99_MS = 5.0
USER, SECRET = "crm", "crm-secret"
RingKey = tuple[str, str]  # (call id, extension)


# -- the PBX side (separate process) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderOptions:
    rate: float
    seconds: float
    phones: int
    unknown: float
    core: int | None
    seed: int


@dataclass(slots=True)
class Plan:
    messages: list[bytes]
    rings: dict[int, list[RingKey]]  # message index -> screen-pops it causes
    calls: int


def make_plan(opts: SenderOptions) -> Plan:
    templates = load_templates()
    total = int(opts.rate * opts.seconds)
    per_call = mean_events_per_call(templates)
    calls = math.ceil(total / per_call * 1.1) + 20
    callers = base_callers(calls * 2, opts.phones, opts.unknown, random.Random(opts.seed))
    stream = interleaved_calls(templates, callers, calls=calls,
                               calls_per_second=opts.rate / per_call, seed=opts.seed)
    messages = [e.data for e in stream[:total]]
    # Which message makes the registry publish call.ringing for which extension: run the
    # product's correlator over the stream and apply the registry's rule (a ringing extension
    # that was not ringing before; an answer clears the set).
    correlator = AmiCallCorrelator(CorrelatorConfig(line=LINE, trunk_endpoints=TRUNKS))
    ringing: dict[str, set[str]] = {}
    rings: dict[int, list[RingKey]] = {}
    for index, data in enumerate(messages):
        for event in correlator.feed(parse_message(data)):
            if isinstance(event, RingingChanged):
                before = ringing.get(event.call_key, set())
                new = [ext for ext in event.extensions if ext not in before]
                ringing[event.call_key] = set(event.extensions)
                if new:
                    rings.setdefault(index, []).extend((event.call_key, ext) for ext in new)
            elif isinstance(event, Answered):
                ringing[event.call_key] = set()
            elif isinstance(event, CallEnded):
                ringing.pop(event.call_key, None)
    return Plan(messages, rings, len({e.call for e in stream[:total]}))


class AmiSender:
    """Enough of Asterisk's AMI for AsteriskLine, then the paced stream to the first client."""

    def __init__(self, plan: Plan, rate: float) -> None:
        self.plan = plan
        self.rate = rate
        self.results: dict[str, Any] | None = None
        self.finished = asyncio.Event()  # the stream is over
        self.gone = asyncio.Event()  # the client logged off or disconnected
        self._streaming: asyncio.Task[None] | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                action = parse_message(block)
                name = (action.get("Action") or "").lower()
                aid = action.get("ActionID")
                if name == "login":
                    ok = action.get("Username") == USER and action.get("Secret") == SECRET
                    writer.write(response(aid, ("Response", "Success" if ok else "Error"),
                                          ("Message", "Authentication accepted" if ok
                                           else "Authentication failed")))
                elif name == "ping":
                    writer.write(response(aid, ("Response", "Success"), ("Ping", "Pong"),
                                          ("Timestamp", f"{time.time():.6f}")))
                elif name == "coreshowchannels":
                    writer.write(response(aid, ("Response", "Success"), ("EventList", "start"),
                                          ("Message", "Channels will follow")))
                    writer.write(response(aid, ("Event", "CoreShowChannelsComplete"),
                                          ("EventList", "Complete"), ("ListItems", "0")))
                    # The line's resync is done: stream (to the first client only).
                    if self._streaming is None:
                        self._streaming = asyncio.create_task(self.stream(writer))
                elif name == "getvar":  # the line asks each inbound call's CALLERID(pres)
                    writer.write(response(aid, ("Response", "Success"),
                                          ("Variable", action.get("Variable") or ""),
                                          ("Value", "allowed_not_screened")))
                elif name == "logoff":
                    writer.write(response(aid, ("Response", "Goodbye"),
                                          ("Message", "Thanks for all the fish.")))
                    await writer.drain()
                    break
                else:
                    writer.write(response(aid, ("Response", "Error"),
                                          ("Message", "Invalid/unknown command")))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.gone.set()

    async def stream(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)  # let the line finish its login bookkeeping
        messages, rings, rate = self.plan.messages, self.plan.rings, self.rate
        total = len(messages)
        transport = writer.transport
        perf = time.perf_counter
        stamps: list[tuple[str, str, float]] = []
        sent = writes = slow_writes = 0
        max_late = 0.0
        max_buffered = 0
        t0 = perf()
        last = t0
        while sent < total:
            now = perf()
            due = min(total, int((now - t0) * rate) + 1)
            if due > sent:
                max_late = max(max_late, now - (t0 + (due - 1) / rate))
                block = b"".join(messages[sent:due])
                before = perf()
                transport.write(block)
                last = perf()  # the bytes are in the kernel (or queued, see max_buffered)
                slow_writes += last - before > 0.0005  # preempted: the stamp is late
                writes += 1
                max_buffered = max(max_buffered, transport.get_write_buffer_size())
                for index in range(sent, due):
                    for call_id, ext in rings.get(index, ()):
                        stamps.append((call_id, ext, last))
                sent = due
            await asyncio.sleep(max(t0 + sent / rate - perf(), 0.0))
        await writer.drain()
        self.results = {
            "t0": t0, "sent": sent, "elapsed": last - t0, "writes": writes, "stamps": stamps,
            "slow_writes": slow_writes,
            "max_late_ms": max_late * 1e3, "max_buffered": max_buffered,
            "calls": self.plan.calls,
        }
        self.finished.set()


def sender_main(conn: Connection, opts: SenderOptions) -> None:
    if opts.core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {opts.core})
    plan = make_plan(opts)

    async def serve() -> None:
        sender = AmiSender(plan, opts.rate)
        server = await asyncio.start_server(sender.handle, "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        limit = opts.seconds + 60
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sender.finished.wait(), limit)
        conn.send(sender.results)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sender.gone.wait(), 10)
        server.close()
        await server.wait_closed()

    asyncio.run(serve())


# -- the product side (this process) ----------------------------------------------------------


class DiscardSink:
    """A CallSink that keeps nothing (any hook the registry may grow is a no-op too)."""

    def call_changed(self, call: LiveCall) -> None:
        pass

    def recording_started(self, call: LiveCall, path: str) -> None:
        pass

    def call_finished(self, call: LiveCall) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


async def run_product(db: Path, port: int, conn: Connection, call_log: bool,
                      timeout: float) -> tuple[list[tuple[float, str, str]], dict[str, Any]]:
    store = await SqliteStore.open(db)
    bus = EventBus()
    popped: list[tuple[float, str, str]] = []
    perf = time.perf_counter

    def on_bus(event: BusEvent) -> None:
        if event.topic == "call.ringing":
            popped.append((perf(), event.data["call"]["id"], event.data["extension"]))

    bus.subscribe(on_bus)
    log = CallLog(store) if call_log else None
    sink: CallSink = log if log is not None else DiscardSink()
    registry = CallRegistry(CallerMatcher(store.caller_index, PhonesConfig()),
                            store.caller_index, bus, sink)
    if log is not None:
        await log.start()
    config = PbxLineConfig(name=LINE, port=port, username=USER, secret=SECRET,
                           trunk_endpoints=sorted(TRUNKS))
    line = AsteriskLine(config, registry.handle)
    await line.start()
    # (when, how long the loop was late, CPU ms the loop thread used meanwhile), > 2 ms late
    stalls: list[tuple[float, float, float]] = []
    gcs: list[tuple[float, int, float]] = []  # (when, generation, ms)
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = perf()
        else:
            gcs.append((gc_start[0], info["generation"], (perf() - gc_start[0]) * 1e3))

    async def watch_loop() -> None:
        while True:
            before, cpu_before = perf(), time.thread_time()
            await asyncio.sleep(0.001)
            late = perf() - before - 0.001
            if late > 0.002:
                stalls.append((before, late * 1e3, (time.thread_time() - cpu_before) * 1e3))

    gc.callbacks.append(on_gc)
    watcher = asyncio.create_task(watch_loop())
    cpu0, wall0 = time.process_time(), perf()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    deadline = wall0 + timeout
    try:
        while not conn.poll():
            if perf() > deadline:
                raise SystemExit("no result from the sender process in time")
            await asyncio.sleep(0.05)
        results: dict[str, Any] | None = conn.recv()
        if results is None:
            raise SystemExit("the sender never finished its stream")
        results["cpu"] = (time.process_time() - cpu0) / (perf() - wall0)
        results["live_calls"] = len(registry.live())
        results["bus_events"] = bus.last_seq
        usage = resource.getrusage(resource.RUSAGE_SELF)
        results["faults"] = usage.ru_majflt - usage0.ru_majflt
        results["preempted"] = usage.ru_nivcsw - usage0.ru_nivcsw
        results["stalls"] = stalls
        results["objects"] = len(gc.get_objects())
        t_gc = perf()
        gc.collect()
        results["full_gc_ms"] = (perf() - t_gc) * 1e3
        results["gcs"] = gcs
    finally:
        gc.callbacks.remove(on_gc)
        watcher.cancel()
        await line.stop()
        if log is not None:
            await log.stop()
        await store.close()
    return popped, results


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5000, help="AMI events per second")
    parser.add_argument("--seconds", type=float, default=20, help="length of the stream")
    parser.add_argument("--warmup", type=float, default=2, help="seconds left out of figures")
    parser.add_argument("--phones", type=int, default=1_000_000, help="numbers in the base")
    parser.add_argument("--unknown", type=float, default=0.1, help="share of unknown callers")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of the product side (uvicorn picks uvloop)")
    parser.add_argument("--call-log", action="store_true",
                        help="the real CallLog (writes to a copy of the database)")
    parser.add_argument("--cold", action="store_true",
                        help="do not read the database into the page cache first")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    path = prepare(args.phones)
    if not args.cold:  # a running CRM has its hot pages cached; a lookup must not hit the disk
        with path.open("rb") as f:
            while f.read(1 << 24):
                pass
    db = path
    if args.call_log:
        db = OUT / "screenpop-calllog.db"
        db.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as src, \
                contextlib.closing(sqlite3.connect(db)) as dst:
            src.backup(dst)

    ours, sender, product_core, sender_core = start_sender(args)
    if product_core is not None:
        os.sched_setaffinity(0, {product_core})
    try:
        if not ours.poll(120):
            raise SystemExit("the sender process did not start")
        port: int = ours.recv()
        coro = run_product(db, port, ours, args.call_log, args.seconds + 90)
        popped, results = run_loop(args.loop, coro)
    finally:
        sender.join(15)
        if sender.is_alive():
            sender.terminate()
            sender.join(5)
        if args.call_log:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    report(args, popped, results, product_core, sender_core)


def run_loop(loop: str, coro: Coroutine[Any, Any, Any]) -> Any:
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed: using asyncio's loop")
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def start_sender(args: argparse.Namespace, *, daemon: bool = False,
                 target: Callable[[Connection, SenderOptions], None] | None = None,
                 ) -> tuple[Connection, Any, int | None, int | None]:
    """The AMI sender process (``target``, by default this module's) on the last core (the
    product goes on the first): its pipe, the process, and both cores (None where the machine
    does not say)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    product_core = cores[0] if cores else None
    sender_core = cores[-1] if len(cores) > 1 else None
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    opts = SenderOptions(args.rate, args.seconds, args.phones, args.unknown, sender_core,
                         args.seed)
    sender = ctx.Process(target=target or sender_main, args=(theirs, opts), name="ami-sender",
                         daemon=daemon)
    sender.start()
    return ours, sender, product_core, sender_core


def report(args: argparse.Namespace, popped: list[tuple[float, str, str]],
           r: dict[str, Any], product_core: int | None, sender_core: int | None) -> None:
    t0 = r["t0"]
    start = t0 + args.warmup
    sent_at: dict[RingKey, list[float]] = defaultdict(list)
    for call_id, ext, t in r["stamps"]:
        sent_at[(call_id, ext)].append(t)
    got_at: dict[RingKey, list[float]] = defaultdict(list)
    for t, call_id, ext in popped:
        got_at[(call_id, ext)].append(t)
    timeline: list[tuple[float, float]] = []  # (seconds into the stream, latency ms)
    missing = 0
    for key, sent in sent_at.items():
        got = got_at.get(key, [])
        missing += max(len(sent) - len(got), 0)
        timeline.extend((s - t0, (g - s) * 1e3)
                        for s, g in zip(sent, got, strict=False) if s >= start)
    unexpected = sum(max(len(g) - len(sent_at.get(k, [])), 0) for k, g in got_at.items())
    latencies = sorted(ms for _, ms in timeline)
    rate = r["sent"] / r["elapsed"] if r["elapsed"] else 0.0
    print(f"cores: product {product_core}, AMI sender {sender_core}; loop: {args.loop}; "
          f"sink: {'CallLog' if args.call_log else 'discard'}")
    print(f"stream: {r['sent']:,} AMI events ({r['calls']:,} recorded-call copies) in "
          f"{r['elapsed']:.1f} s = {rate:,.0f} events/s; {r['writes']:,} writes "
          f"({r['slow_writes']} took > 0.5 ms), at most {r['max_late_ms']:.1f} ms behind "
          f"schedule, {r['max_buffered']:,} B queued in the sender")
    print(f"product: {r['cpu']:.0%} of its core busy, preempted {r['preempted']:,} times, "
          f"{r['faults']:,} major page faults; {r['bus_events']:,} bus events; "
          f"{len(popped):,} call.ringing received of {len(r['stamps']):,} expected "
          f"({missing} missing, {unexpected} unexpected)")
    if not latencies:
        print("no screen-pops measured")
        return
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"screen-pop latency (AMI bytes written -> call.ringing on the bus), {len(latencies):,} "
          f"pops after {args.warmup:g} s warm-up: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
          f"max {latencies[-1]:.2f} ms, min {latencies[0]:.2f} ms")
    slow = sorted(timeline, key=lambda x: -x[1])[:3]
    over = sum(ms > TARGET_P99_MS for ms in latencies)
    print(f"  pops over {TARGET_P99_MS:g} ms: {over}; worst: " +
          ", ".join(f"{ms:.1f} ms at {at:.1f} s" for at, ms in slow))
    stalls = [(at - t0, ms, cpu) for at, ms, cpu in r["stalls"] if at >= start]
    worst = sorted(stalls, key=lambda x: -x[1])[:3]
    print(f"  product loop late by > 2 ms: {len(stalls)} times; worst: " + ", ".join(
        f"{ms:.1f} ms at {at:.1f} s ({cpu:.1f} ms of it on CPU)" for at, ms, cpu in worst))
    gcs = [(at - t0, gen, ms) for at, gen, ms in r["gcs"] if at >= start]
    longest = sorted(gcs, key=lambda x: -x[2])[:3]
    print(f"  GC: {len(gcs)} collections, {sum(g[1] == 2 for g in gcs)} full, "
          f"{r['objects']:,} objects tracked at the end (a full collection then: "
          f"{r['full_gc_ms']:.1f} ms); longest: " +
          ", ".join(f"gen{gen} {ms:.1f} ms at {at:.1f} s" for at, gen, ms in longest))
    off_cpu = sum(ms - cpu for _, ms, cpu in stalls)
    if off_cpu > 50:
        print(f"WARNING: the product's loop waited {off_cpu:.0f} ms in all for the CPU (other "
              f"processes on core {product_core}, load {os.getloadavg()[0]:.1f}): the figures "
              "include that; rerun on a quiet machine")
    ok = p99 <= TARGET_P99_MS and missing == 0
    print(f"target p99 <= {TARGET_P99_MS:g} ms at {args.rate:,.0f} events/s with "
          f"{args.phones:,} numbers: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

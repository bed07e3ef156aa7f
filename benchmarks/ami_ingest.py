"""AMI ingest benchmark: events per second parsed and tracked, one core.

    .venv/bin/python benchmarks/ami_ingest.py [--calls 600] [--chunk 4096] [--repeats 5]

Builds one large AMI byte stream from the recorded inbound calls (tests/fixtures/ami, rewritten
into distinct interleaved calls by the demo PBX's code, every VarSet/Newexten/CEL event kept),
cuts it into TCP-sized reads, and feeds the same reads, in the same run, to:

* the product path: AmiProtocol.receive_data + messages_received + ActionTracker.receive (as
  AmiConnection's reader does), then AmiCallCorrelator.feed - the figure the target is about;
  also framing/tracking alone, and the full path into CallRegistry.handle (real CallerMatcher on
  a small cached store, EventBus publish) reported separately;
* a minimal hand-written framer (split on CRLFCRLF, decode, split lines into a dict).

Best of N repeats (round-robin), messages per second. Target: parsed and tracked >= 0.7x the
hand-written framer in the same run (and >= 50,000 events/s). Exits non-zero only when it
cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._ami_stream import (
    BANNER,
    LINE,
    TRUNKS,
    base_callers,
    fixtures_dir,
    interleaved_calls,
    load_templates,
    mean_events_per_call,
)
from benchmarks.lookup import OUT, build
from callcenter.bus import EventBus
from callcenter.calls.registry import CallRegistry
from callcenter.config import PhonesConfig
from callcenter.line_events import CallStarted, LineEvent
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from pbx.ami.correlator import AmiCallCorrelator, CorrelatorConfig
from pbx.ami.protocol import ActionTracker, AmiProtocol, EventReceived, ResponseReceived

TARGET = 50_000
TARGET_RATIO = 0.7  # of the hand-written framer on the same bytes, same run
SMALL_STORE = 10_000  # phones in the registry variant's store


def hand_framer(chunks: list[bytes]) -> int:
    """The minimal framer: what a ~20-line hand-written AMI reader does, nothing more."""
    count = 0
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *blocks, buffer = buffer.split(b"\r\n\r\n")
        for block in blocks:
            message: dict[str, str] = {}
            for line in block.decode("utf-8", "replace").split("\r\n"):
                key, _, value = line.partition(": ")
                message.setdefault(key, value)
            count += "Event" in message or "Response" in message
    return count


def product_path(chunks: list[bytes], handle: Callable[[LineEvent], None] | None,
                 correlate: bool) -> tuple[int, int]:
    """What AmiConnection's reader and AsteriskLine._on_event do per read, minus the socket.
    Returns (messages, line events)."""
    protocol = AmiProtocol()
    tracker = ActionTracker()
    feed = AmiCallCorrelator(CorrelatorConfig(line=LINE, trunk_endpoints=TRUNKS)).feed
    messages = produced = 0
    for chunk in chunks:
        protocol.receive_data(chunk)
        for item in protocol.messages_received():
            if isinstance(item, EventReceived | ResponseReceived):
                for out in tracker.receive(item):
                    if isinstance(out, EventReceived):
                        messages += 1
                        if correlate:
                            events = feed(out.message)
                            produced += len(events)
                            if handle is not None:
                                for event in events:
                                    handle(event)
    return messages, produced


def best_of(repeats: int, work: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="recorded-call copies in the stream")
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per simulated read")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--no-registry", action="store_true",
                        help="skip the variant that goes on into CallRegistry.handle")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    templates = load_templates()
    rng = random.Random(11)
    callers = base_callers(args.calls * 2, SMALL_STORE, 0.1, rng)
    per_call = mean_events_per_call(templates)
    stream = interleaved_calls(templates, callers, calls=args.calls,
                               calls_per_second=5_000 / per_call)
    data = BANNER + b"".join(e.data for e in stream)
    chunks = [data[i:i + args.chunk] for i in range(0, len(data), args.chunk)]
    print(f"stream: {len(stream):,} messages of {args.calls:,} interleaved calls from "
          f"{len(templates)} recorded scenarios in {fixtures_dir()} ({len(data) / 1e6:.1f} MB, "
          f"{len(data) / len(stream):.0f} B/message), fed in {len(chunks):,} reads of "
          f"{args.chunk:,} B; best of {args.repeats}")

    # Round-robin, best of each: on a shared machine a slow second would otherwise land on one
    # variant only and skew the ratio the target is about.
    variants: list[tuple[str, Callable[[], object]]] = [
        ("hand-written framer (split, decode, dict)", lambda: hand_framer(chunks)),
        ("product framing: AmiProtocol + ActionTracker",
         lambda: product_path(chunks, None, correlate=False)),
        ("product parsed+tracked: + AmiCallCorrelator.feed",
         lambda: product_path(chunks, None, correlate=True)),
    ]
    best = [float("inf")] * len(variants)
    results: list[object] = [None] * len(variants)
    for _ in range(args.repeats):
        for i, (_name, work) in enumerate(variants):
            t, results[i] = best_of(1, work)
            best[i] = min(best[i], t)
    n, framed, tracked = results
    assert isinstance(n, int) and isinstance(framed, tuple) and isinstance(tracked, tuple)
    rows: list[tuple[str, float, int]] = [
        (variants[0][0], best[0], n), (variants[1][0], best[1], framed[0]),
        (variants[2][0], best[2], tracked[0])]
    tracked_rate = tracked[0] / best[2]
    line_events = tracked[1]

    started = 0
    if not args.no_registry:
        OUT.mkdir(exist_ok=True)
        path = OUT / f"lookup-{SMALL_STORE}.db"
        asyncio.run(build(path, SMALL_STORE))

        async def open_store() -> SqliteStore:
            return await SqliteStore.open(path)

        store = asyncio.run(open_store())
        matcher = CallerMatcher(store.caller_index, PhonesConfig())

        def with_registry() -> tuple[int, int]:
            nonlocal started
            registry = CallRegistry(matcher, store.caller_index, EventBus())
            started = 0

            def handle(event: LineEvent) -> None:
                nonlocal started
                started += isinstance(event, CallStarted)
                registry.handle(event)

            return product_path(chunks, handle, correlate=True)

        t, r = best_of(args.repeats, with_registry)
        assert isinstance(r, tuple)
        rows.append((f"+ CallRegistry.handle (matcher, {SMALL_STORE:,}-phone store, bus)",
                     t, r[0]))
        asyncio.run(store.close())

    hand_rate = rows[0][2] / rows[0][1]
    for name, seconds, count in rows:
        rate = count / seconds
        print(f"  {name:<62} {rate:>9,.0f} msg/s  {seconds * 1e3:7.0f} ms  "
              f"{count:,} msgs  x{rate / hand_rate:.2f} of hand")
    calls = f", {started:,} calls started from {args.calls:,} recorded-call copies"
    print(f"correlator: {line_events:,} line events" + (calls if started else ""))
    ratio = tracked_rate / hand_rate
    print(f"figure: {tracked_rate:,.0f} msg/s parsed and tracked; in-run baseline (hand-written "
          f"framer): {hand_rate:,.0f} msg/s; ratio {ratio:.2f} (target >= {TARGET_RATIO})")
    ok = ratio >= TARGET_RATIO and tracked_rate >= TARGET
    print(f"target ratio >= {TARGET_RATIO} and >= {TARGET:,} events/s (one core): "
          f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

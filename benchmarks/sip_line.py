"""SIP line: concurrent ringing calls, dialog subscriptions, INVITE -> call.ringing latency.

    .venv/bin/python benchmarks/sip_line.py [--rate 50] [--ringing 500] [--subscriptions 500]
                                            [--seconds 20] [--notify-rate 100]

The product runs in this process as the app wires it: the real SipLine (observer + dialog
watcher) on UDP 127.0.0.1, its events into the real CallRegistry on a SqliteStore, call.*
published on the EventBus. The PBX is another process: a registrar and presence server built on
the core's SipEndpoint (it accepts REGISTER and --subscriptions dialog SUBSCRIBEs and sends
NOTIFYs at --notify-rate/s across them, each a full dialog-info document), and a carrier that
sends fresh INVITEs at --rate/s paced on absolute deadlines and CANCELs each one after
--ringing/--rate seconds, so that --ringing calls ring at once. It notes time.perf_counter()
(CLOCK_MONOTONIC, one clock for both processes) right before each INVITE leaves; the product
notes it in a bus subscriber at each call.ringing. Latency = the difference, per call.
Targets: 500 subscriptions, 50 new calls/s, p99 <= 5 ms.

Baseline in the same run: the same datagrams to a bare asyncio DatagramProtocol that only notes
the time (no SIP parsing, no registry, no bus): the transport and scheduling floor of this
machine. The ratio says what the SIP line and the core add on top.

Caller numbers are unknown to the store here (an empty base): the lookup cost against a
1,000,000-number base is measured by benchmarks/screenpop_latency.py.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.bus import BusEvent, EventBus
from callcenter.calls.log import CallLog
from callcenter.calls.registry import CallRegistry
from callcenter.config import PhonesConfig
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from sip.dialog import Dialog
from sip.endpoint import IncomingRequest, SipEndpoint
from sip.observer import call_key
from sip.sip_line import SipLine, SipLineConfig

LINE = "bench"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invite(n: int, target: tuple[str, int], me: int) -> tuple[str, bytes]:
    call_id = f"bench-{os.getpid()}-{n}"
    caller = f"+7916{n % 10_000_000:07d}"
    return call_id, (
        f"INVITE sip:crm@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{n}x;rport\r\n"
        f'From: "Client {n}" <sip:{caller}@pbx>;tag=f{n}\r\nTo: <sip:74951234567@pbx>\r\n'
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@127.0.0.1:{me}>\r\n"
        f"P-Asserted-Identity: <sip:{caller}@carrier>\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n").encode()


def cancel(n: int, call_id: str, target: tuple[str, int], me: int) -> bytes:
    return (f"CANCEL sip:crm@{target[0]}:{target[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{n}x;rport\r\n"
            f"From: <sip:x@pbx>;tag=f{n}\r\nTo: <sip:74951234567@pbx>\r\nCall-ID: {call_id}\r\n"
            "CSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContact: <sip:pbx@127.0.0.1>\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def ack(n: int, call_id: str, target: tuple[str, int], me: int) -> bytes:
    return (f"ACK sip:crm@{target[0]}:{target[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{n}x;rport\r\n"
            f"From: <sip:x@pbx>;tag=f{n}\r\nTo: <sip:74951234567@pbx>\r\nCall-ID: {call_id}\r\n"
            "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


class _Drain(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        pass


# --- the PBX process -------------------------------------------------------------------------

def pbx_main(conn, args, line_port: int, pbx_port: int) -> None:
    os.sched_setaffinity(0, {1}) if hasattr(os, "sched_setaffinity") and os.cpu_count() > 1 \
        else None
    asyncio.run(_pbx(conn, args, line_port, pbx_port))


async def _pbx(conn, args, line_port: int, pbx_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = SipEndpoint("UDP", "127.0.0.1", pbx_port)
    await server.start()
    dialogs: list[Dialog] = []

    def register(incoming: IncomingRequest) -> None:
        incoming.respond(200, headers=[("Expires", "3600")])

    def subscribe(incoming: IncomingRequest) -> None:
        incoming.respond(200, headers=[("Expires", "3600"),
                                       ("Contact", f"<sip:pbx@127.0.0.1:{pbx_port}>")])
        if incoming.request.to.tag is None:
            dialogs.append(Dialog.as_uas(incoming.request, incoming.to_tag))

    server.on_request("REGISTER", register)
    server.on_request("SUBSCRIBE", subscribe)
    conn.send("ready")
    # (the pipe is read on a thread: the loop keeps answering REGISTER and SUBSCRIBE)
    assert await loop.run_in_executor(None, conn.recv) == "go"  # all subscribed
    target = ("127.0.0.1", line_port)
    transport, _ = await loop.create_datagram_endpoint(_Drain, local_addr=("127.0.0.1", 0))
    me = transport.get_extra_info("sockname")[1]
    sent: dict[str, float] = {}
    ring_for = args.ringing / args.rate
    versions = [0] * max(1, len(dialogs))
    notifies = 0

    async def notifier() -> None:
        nonlocal notifies
        if not dialogs:
            return
        start, i = time.perf_counter(), 0
        while True:
            i += 1
            await asyncio.sleep(max(0.0, start + i / args.notify_rate - time.perf_counter()))
            k = i % len(dialogs)
            versions[k] += 1
            d = dialogs[k]
            state = ("<dialog id='d' direction='recipient'><state>early</state></dialog>"
                     if versions[k] % 2 else "")
            body = (f"<?xml version='1.0'?><dialog-info xmlns='urn:ietf:params:xml:ns:"
                    f"dialog-info' version='{versions[k]}' state='full' entity='sip:x@pbx'>"
                    f"{state}</dialog-info>").encode()
            req = d.new_request("NOTIFY", headers=[
                ("Event", "dialog"), ("Subscription-State", "active;expires=3600"),
                ("Content-Type", "application/dialog-info+xml")], body=body)
            task = asyncio.ensure_future(server.request(req))
            task.add_done_callback(lambda _t: None)
            notifies += 1

    async def hang_up(n: int, call_id: str) -> None:
        await asyncio.sleep(ring_for)
        transport.sendto(cancel(n, call_id, target, me), target)
        await asyncio.sleep(0.2)
        transport.sendto(ack(n, call_id, target, me), target)

    async def carrier(phase: str, total: int, dest: tuple[str, int]) -> None:
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
            call_id, data = invite(n + (10**7 if phase == "base" else 0), dest, me)
            sent[call_id] = time.perf_counter()
            transport.sendto(data, dest)
            if phase == "line":
                tasks.append(asyncio.ensure_future(hang_up(n, call_id)))
        await asyncio.gather(*tasks)

    total = int(args.rate * args.seconds)
    conn.send(("baseline-port?", None))
    base_port = await loop.run_in_executor(None, conn.recv)
    await carrier("base", total, ("127.0.0.1", base_port))
    conn.send(("baseline-done", dict(sent)))
    sent.clear()
    notify_task = asyncio.ensure_future(notifier())
    await carrier("line", total, target)
    notify_task.cancel()
    conn.send(("line-done", dict(sent), notifies))
    await loop.run_in_executor(None, conn.recv)
    transport.close()
    await server.close()


# --- the product -----------------------------------------------------------------------------

class _Baseline(asyncio.DatagramProtocol):
    def __init__(self, seen: dict[str, float]) -> None:
        self.seen = seen

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.perf_counter()
        i = data.find(b"Call-ID: ")
        self.seen[data[i + 9:data.find(b"\r\n", i)].decode()] = now


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def product(args) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    line_port, pbx_port = free_port(), free_port()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=pbx_main,
                                           args=(child, args, line_port, pbx_port))
    proc.start()
    assert parent.recv() == "ready"
    tmp = Path(tempfile.mkdtemp())
    store = await SqliteStore.open(tmp / "bench.db")
    bus = EventBus()
    ringing_at: dict[str, float] = {}

    def on_bus(event: BusEvent) -> None:
        if event.topic == "call.ringing":
            ringing_at.setdefault(event.data["call"]["id"], time.perf_counter())

    bus.subscribe(on_bus)
    log = CallLog(store)
    await log.start()
    registry = CallRegistry(CallerMatcher(store.caller_index, PhonesConfig()),
                            store.caller_index, bus, log)
    watch = tuple(str(1000 + i) for i in range(args.subscriptions))
    line = SipLine(SipLineConfig(name=LINE, registrar=f"127.0.0.1:{pbx_port}",
                                 username="crm", listen_host="127.0.0.1",
                                 listen_port=line_port, ring_extensions=("101",),
                                 watch_extensions=watch, keepalive=600, max_calls=5000),
                   registry.handle)
    t0 = time.perf_counter()
    await line.start()
    await asyncio.wait_for(line.registered.wait(), 30)
    if line.watcher is not None:
        await asyncio.wait_for(line.watcher.established.wait(), 120)
    setup = time.perf_counter() - t0
    established = sum(1 for s in (line.watcher.subs.values() if line.watcher else ())
                      if s.dialog is not None)
    # baseline: the same datagrams to a bare protocol
    loop = asyncio.get_running_loop()
    base_seen: dict[str, float] = {}
    base_t, _ = await loop.create_datagram_endpoint(lambda: _Baseline(base_seen),
                                                    local_addr=("127.0.0.1", 0))
    parent.send("go")
    assert (await loop.run_in_executor(None, parent.recv))[0] == "baseline-port?"
    parent.send(base_t.get_extra_info("sockname")[1])
    peak = 0

    async def watch_peak() -> None:
        nonlocal peak
        while True:
            await asyncio.sleep(0.1)
            if line.observer is not None:
                peak = max(peak, line.observer.ringing())

    peak_task = asyncio.ensure_future(watch_peak())

    def recv() -> tuple:
        return parent.recv()

    _, base_sent = await loop.run_in_executor(None, recv)
    _, line_sent, notifies = await loop.run_in_executor(None, recv)
    await asyncio.sleep(1.0)  # the last CANCELs
    peak_task.cancel()
    parent.send("bye")
    proc.join(10)
    base_lat = [(base_seen[c] - t) * 1e3 for c, t in base_sent.items() if c in base_seen]
    line_lat = [(ringing_at[call_key(LINE, c)] - t) * 1e3 for c, t in line_sent.items()
                if call_key(LINE, c) in ringing_at]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"dialog subscriptions: {established} of {args.subscriptions} established in "
          f"{setup:.2f} s; {notifies} NOTIFYs during the run ({args.notify_rate:g}/s)")
    print(f"calls: {len(line_sent)} INVITEs at {args.rate:g}/s, each ringing "
          f"{args.ringing / args.rate:.1f} s: peak {peak} ringing at once; "
          f"{len(line_lat)} reached call.ringing")
    print(f"INVITE -> call.ringing: p50 {pct(line_lat, .5):.2f} ms, p99 "
          f"{pct(line_lat, .99):.2f} ms, max {max(line_lat, default=float('nan')):.2f} ms "
          "(target p99 <= 5 ms)")
    print(f"baseline (bare datagram protocol, same sender): p50 {pct(base_lat, .5):.2f} ms, "
          f"p99 {pct(base_lat, .99):.2f} ms ({len(base_lat)} of {len(base_sent)})")
    if base_lat and line_lat:
        print(f"ratio SIP line / baseline at p99: {pct(line_lat, .99) / pct(base_lat, .99):.1f}x;"
              f" the line adds {pct(line_lat, .99) - pct(base_lat, .99):.2f} ms at p99")
    print(f"product process peak RSS {rss:.0f} MB; malformed/dropped: "
          f"{line.endpoint.stats.malformed if line.endpoint else 0}")
    await line.stop()
    await log.stop()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--ringing", type=int, default=500)
    parser.add_argument("--subscriptions", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--notify-rate", type=float, default=100.0)
    asyncio.run(product(parser.parse_args()))


if __name__ == "__main__":
    main()

"""SMS pool: a 1,000-message campaign over 1, 4 and 8 emulated modems.

The product side runs in this process, as ``callcenter serve`` wires it: the campaign service
and its runner, the SMS core (durable jobs in SQLite), the modem pool and one real ``Modem``
(gsm/modem.py, AT commands over pyserial-asyncio-fast) per modem. The modems are
``python -m gsm.emulator`` on pseudo-terminals in their own process, so their work is not counted
as ours. Every modem takes the same send time per SMS (``--send-time``, scaled down from a real
modem's ~5 s); the SIMs' own per-minute limits are set above what the send time allows, so the
pool's limit is ``modems / send_time`` messages a second.

Printed per run: achieved throughput, timed by the emulator's own send log from each modem's
first to its last send (so start-up and the last report wait are not in it), as a ratio of
that nominal limit (target ≥ 0.95) and of an in-run baseline — a bare ``Modem.send_part`` loop
per modem over the same emulator right after the campaign, nothing durable around it — with
the gap per message in ms that the product adds beyond the send time; the product's CPU per
message (``time.process_time`` from the start until every message is delivered: campaign
runner, SMS core, pool, AT layer, delivery reports); and the end-to-end times until the last
message was sent and delivered.

    .venv/bin/python -m benchmarks.sms_pool                    # 1, 4 and 8 modems
    .venv/bin/python -m benchmarks.sms_pool --modems 4 --messages 200 --send-time 0.05

Exits non-zero only if it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callcenter.bus import BusEvent, EventBus
from callcenter.config import CampaignsConfig, PhonesConfig, SmsConfig
from callcenter.matching import CallerMatcher
from callcenter.models import ClientKind, Role
from callcenter.phones import normalize
from callcenter.sms.campaign_sms import CoreCampaignSms
from callcenter.sms.campaigns import CampaignService
from callcenter.sms.events import Address, AddressKind, SmsEncoding
from callcenter.sms.pool import ModemPool, SimLimits
from callcenter.sms.ports import OutboundPart
from callcenter.sms.service import SmsService
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite import SqliteStore
from gsm.modem import Modem
from gsm.modem_settings import ModemSettings

REPO = Path(__file__).resolve().parents[1]


def phase(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # modem readiness is announced to nobody: polled, bounded


async def emulators(folder: Path, modems: int, send_time: float
                    ) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsm.emulator", "--dir", str(folder), "--modems", str(modems),
        "--send-log", str(folder / "sent.jsonl"), "--send-time", str(send_time),
        "--report-delay", "0.5", cwd=REPO, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not json.loads(line or b"{}").get("ready"):
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc


async def seed(store: SqliteStore, messages: int) -> Any:
    admin = await store.create_user("admin", "Admin", Role.ADMIN)
    await store.import_clients([
        ClientInput(f"Client {i:04d}", ClientKind.PERSON, contacts=[ContactInput(
            f"Person {i:04d}", phones=[PhoneInput(n, normalize(n))])])
        for i, n in enumerate(f"+7916{2000000 + i:07d}" for i in range(messages))])
    return admin


def paced(records: list[dict[str, Any]], send_time: float) -> tuple[float, float]:
    """(messages a second, ms per message beyond the send time) from the emulator's log:
    each modem's first to last send, the modems' rates added up."""
    by_modem: dict[str, list[float]] = {}
    for rec in records:
        by_modem.setdefault(rec["modem"], []).append(rec["t"])
    rate, periods = 0.0, []
    for times in by_modem.values():
        if len(times) < 2:
            continue
        period = (max(times) - min(times)) / (len(times) - 1)
        rate += 1 / period
        periods.append(period)
    gap = (sum(periods) / len(periods) - send_time) * 1000 if periods else float("nan")
    return rate, gap


async def baseline(lines: list[Modem], per_modem: int) -> None:
    """The same emulator driven by a bare loop of ``Modem.send_part``, one per modem."""
    async def loop(line: Modem) -> None:
        for i in range(per_modem):
            await line.send_part(OutboundPart(
                Address(AddressKind.INTERNATIONAL, f"+7916{3000000 + i:07d}"),
                "Offer for Person 0001: 10% off", SmsEncoding.GSM7, 1, 1, None))

    await asyncio.gather(*(loop(line) for line in lines))


async def run(modems: int, messages: int, send_time: float, folder: Path,
              baseline_per_modem: int = 100) -> dict[str, Any]:
    folder.mkdir(parents=True)
    proc = await emulators(folder, modems, send_time)
    store = await SqliteStore.open(folder / "bench.db")
    started: list[Any] = []
    try:
        admin = await seed(store, messages)
        bus = EventBus()
        service = SmsService(store, bus, CallerMatcher(store.caller_index, PhonesConfig()),
                             SmsConfig(timezone="UTC"))
        await service.start()
        sent_at: dict[int, float] = {}
        delivered_at: dict[int, float] = {}
        all_sent, all_delivered = asyncio.Event(), asyncio.Event()

        def on_event(event: BusEvent) -> None:
            if event.topic != "sms.status":
                return
            sms = event.data["sms"]
            now = time.perf_counter()
            if sms["state"] in ("sent", "delivered"):
                sent_at.setdefault(sms["id"], now)
            if sms["state"] == "delivered":
                delivered_at.setdefault(sms["id"], now)
            if len(sent_at) >= messages:
                all_sent.set()
            if len(delivered_at) >= messages:
                all_delivered.set()

        bus.subscribe(on_event)
        lines = [Modem(ModemSettings(name=f"modem{i}", path=str(folder / f"modem{i}")),
                       sms_sink=service.handle, call_sink=lambda event: None)
                 for i in range(modems)]
        for line in lines:
            await line.start()
            started.append(line)
        for line in lines:
            await until(lambda line=line: line.ready, f"{line.name} to be ready", 60)
        phase(f"{modems} modem(s) ready")
        # SIM limits above what the send time allows: the send time is the limit
        per_minute = int(60 / send_time * 2) + 10
        pool = ModemPool(service, [(m, SimLimits(per_minute=per_minute, per_day=10**6))
                                   for m in lines], timezone="UTC")
        await pool.start()
        started.append(pool)
        campaigns = CampaignService(store, CoreCampaignSms(service, store),
                                    CampaignsConfig(max_queued=max(16, 4 * modems)),
                                    time_zone="UTC", bus=bus)
        await campaigns.start_runner()
        try:
            campaign = await campaigns.create(admin, {
                "name": "bench", "template": "Offer for {contact.name}: 10% off",
                "window_start": "00:00", "window_end": "23:59", "per_minute": 0})
            wall0, cpu0 = time.perf_counter(), time.process_time()
            await campaigns.start(admin, campaign["id"])
            await asyncio.wait_for(all_sent.wait(), messages * send_time * 3 + 120)
            wall1, cpu1 = time.perf_counter(), time.process_time()
            phase(f"all {messages} sent")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_delivered.wait(), 60)
            cpu2 = time.process_time()
        finally:
            await campaigns.stop_runner()
            phase("campaign runner stopped")
        await pool.stop()
        started.remove(pool)
        await baseline(lines, baseline_per_modem)
        phase(f"baseline: {baseline_per_modem} bare sends per modem")
        sent_log = [json.loads(line) for line in
                    (folder / "sent.jsonl").read_text().splitlines() if line.strip()]
        limit = modems / send_time
        rate, gap = paced(sent_log[:messages], send_time)
        base_rate, base_gap = paced(sent_log[messages:], send_time)
        sent_log = sent_log[:messages]
        return {
            "modems": modems, "messages": messages, "send_time": send_time,
            "limit_per_s": limit, "achieved_per_s": rate, "ratio": rate / limit,
            "baseline_per_s": base_rate, "ratio_to_baseline": rate / base_rate,
            "gap_ms": gap, "baseline_gap_ms": base_gap,
            "cpu_ms_per_message": (cpu2 - cpu0) / messages * 1000,
            "cpu_to_sent_ms_per_message": (cpu1 - cpu0) / messages * 1000,
            "e2e_sent_s": wall1 - wall0,
            "e2e_delivered_s": (max(delivered_at.values()) - wall0
                                if len(delivered_at) >= messages else None),
            "emulator_sent": len(sent_log),
            "distinct_destinations": len({r["destination"] for r in sent_log}),
        }
    finally:
        for part in reversed(started):
            try:
                await asyncio.wait_for(part.stop(), 15)
            except Exception as exc:  # a part that does not stop must not hang the benchmark
                print(f"stopping {type(part).__name__} {getattr(part, 'name', '')}: "
                      f"{type(exc).__name__} {exc}", file=sys.stderr)
        phase("product stopped")
        await store.close()
        proc.terminate()
        await proc.wait()


def show(r: dict[str, Any]) -> str:
    delivered = (f"{r['e2e_delivered_s']:.1f} s" if r["e2e_delivered_s"] is not None
                 else "not all within 60 s")
    return (f"{r['modems']} modem(s), {r['messages']} messages, send time {r['send_time']} s:"
            f" {r['achieved_per_s']:.2f} msg/s of a {r['limit_per_s']:.2f} msg/s limit ="
            f" ratio {r['ratio']:.3f} (target >= 0.95); of the bare send_part baseline's"
            f" {r['baseline_per_s']:.2f} msg/s = ratio {r['ratio_to_baseline']:.3f}; gap per"
            f" message {r['gap_ms']:.1f} ms (baseline {r['baseline_gap_ms']:.1f} ms); CPU"
            f" {r['cpu_ms_per_message']:.2f} ms per message until all delivered;"
            f" end to end {r['e2e_sent_s']:.1f} s sent, {delivered} delivered;"
            f" emulator log {r['emulator_sent']} sends to {r['distinct_destinations']}"
            " numbers")


async def main_async(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="sms-pool-bench-") as tmp:
        for modems in args.modems:
            result = await run(modems, args.messages, args.send_time,
                               Path(tmp) / f"m{modems}", args.baseline)
            print(show(result), flush=True)
            results.append(result)
    if args.json:
        print(json.dumps(results))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--send-time", type=float, default=0.1,
                        help="seconds each modem takes per SMS (a real one: ~5 s)")
    parser.add_argument("--baseline", type=int, default=100,
                        help="bare send_part sends per modem after the campaign")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(main_async(args)))
    except Exception as exc:  # could not run: say why, exit non-zero
        print(f"sms_pool benchmark could not run: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

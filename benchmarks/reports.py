"""Report benchmark: a year of a 50-seat office (about 1,000,000 calls) and every report,
for one month and for the whole year, through the product's own ReportService.

    .venv/bin/python benchmarks/reports.py [--calls 1000000] [--keep]

Builds a temporary SQLite file through the product's migrations and fills it with
executemany (the call log's own write path would take an hour and is not what is measured),
then times each report once warm (the first run of a report warms the page cache; the
figure printed is the best of --repeat runs). Prints an in-run baseline — a plain
``SELECT count(*)`` and a one-column fetch of the same calls — and each report's ratio to
the fetch, and the database size. Targets: <= 1 s for a month, <= 5 s for the year, one
core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.models import Role, User
from callcenter.reports.model import ReportName
from callcenter.reports.service import ReportService
from callcenter.routing.hours import OfficeHours
from callcenter.store.sqlite import SqliteStore

TZ = ZoneInfo("Europe/Berlin")
FIRST, LAST = date(2025, 12, 1), date(2026, 11, 30)
MONTH = (date(2026, 3, 1), date(2026, 3, 31))  # holds the spring DST change
HOURS = OfficeHours.from_json({"timezone": "Europe/Berlin", "week": {
    d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}})
SEATS, CLIENTS = 50, 5000
LINES = ("office", "trunk2", "gsm1", "gsm2")
DIDS = ("+4930100", "+4930200", "+4930300")
QUEUES = (None, "sales", "support")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def build(path: Path, calls: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = iso(time.time())
    users = []
    for i in range(SEATS):
        role = "secretary" if i < 8 else ("supervisor" if i < 10 else "manager")
        users.append((i + 1, f"u{i}", f"User {i:02d}", role, str(100 + i), now))
    db.executemany("INSERT INTO users (id, login, name, role, extension, created_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", users)
    managers = [u[0] for u in users if u[3] == "manager"]
    db.executemany("INSERT INTO clients (id, name, kind, manager_id, created_at, updated_at)"
                   " VALUES (?, ?, 'company', ?, ?, ?)",
                   [(c, f"Client {c}", managers[c % len(managers)], now, now)
                    for c in range(1, CLIENTS + 1)])
    manager_of = {c: managers[c % len(managers)] for c in range(1, CLIENTS + 1)}
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=TZ).timestamp()
    end = datetime(LAST.year, LAST.month, LAST.day, tzinfo=TZ).timestamp() + 86400
    # Office-hour weighted start times: 85% of calls between 08:00 and 19:00 local.
    stamps = []
    span_days = int((end - start) // 86400)
    for _ in range(calls):
        day = rnd.randrange(span_days)
        hour = rnd.uniform(8, 19) if rnd.random() < 0.85 else rnd.uniform(0, 24)
        stamps.append(start + day * 86400 + hour * 3600)
    stamps.sort()
    rows, tasks = [], []
    for n, t0 in enumerate(stamps):
        direction = "inbound" if rnd.random() < 0.65 else (
            "outbound" if rnd.random() < 0.95 else "internal")
        client = rnd.randint(1, CLIENTS) if rnd.random() < 0.7 else None
        seat = rnd.randrange(SEATS)
        ext, uid = str(100 + seat), seat + 1
        wait = rnd.uniform(1, 60)
        talk = rnd.expovariate(1 / 180)
        state, reason, answered_at, ended, by_user, by_ext, user_id = (
            "answered", None, None, None, None, None, None)
        pbx, transfers = 0, "[]"
        outcome = rnd.random()
        if direction == "outbound":
            user_id = uid
            if outcome < 0.7:
                answered_at, ended = t0 + wait, t0 + wait + talk
            else:
                state, reason, ended = "missed", "no_answer", t0 + wait
        elif outcome < 0.75:
            by_user = user_id = uid
            by_ext = ext
            answered_at, ended = t0 + wait, t0 + wait + talk
            if rnd.random() < 0.1:
                transfers = json.dumps([{"kind": "blind", "from": ext,
                                         "to": str(100 + rnd.randrange(SEATS)),
                                         "at": iso(t0 + wait + 5), "result": "success"}])
        elif outcome < 0.82:
            pbx, ended = 1, t0 + wait
        else:
            state = "missed"
            reason = rnd.choice(("abandoned", "abandoned", "no_answer", "busy"))
            ended = t0 + wait
        call_id = f"b{n}"
        number = f"+4915{rnd.randrange(10**8):08d}"
        rows.append((call_id, rnd.choice(LINES), direction, number, number,
                     rnd.choice(DIDS), client, state, reason, by_user, by_ext, user_id,
                     iso(t0), iso(answered_at) if answered_at else None, iso(ended),
                     wait, talk if answered_at else None, transfers, pbx,
                     rnd.choice(QUEUES)))
        if state == "missed" and direction == "inbound":
            done = rnd.random() < 0.8
            tasks.append(("callback", "Call back", number, client,
                          manager_of.get(client) if client else None,
                          None if client else "secretary", int(done), iso(ended),
                          iso(ended + rnd.expovariate(1 / 1800)) if done else None, call_id))
        if len(rows) >= 50_000:
            _flush(db, rows, tasks)
    _flush(db, rows, tasks)
    _sms_and_faxes(db, rnd, start, end, managers)
    db.commit()
    db.execute("ANALYZE")
    db.close()


def _flush(db: sqlite3.Connection, rows: list, tasks: list) -> None:
    db.executemany(
        "INSERT INTO calls (id, line, direction, caller_raw, caller_e164, called, client_id,"
        " state, reason, answered_by_user, answered_by_ext, user_id, ringing_at, answered_at,"
        " ended_at, ring_seconds, talk_seconds, transfers, handled_by_pbx, queue)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany(
        "INSERT INTO tasks (kind, title, phone, client_id, assignee_id, assignee_role, done,"
        " created_at, done_at, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tasks)
    rows.clear()
    tasks.clear()


def _sms_and_faxes(db: sqlite3.Connection, rnd: random.Random, start: float, end: float,
                   managers: list[int]) -> None:
    msgs = []
    for _ in range(100_000):
        at = rnd.uniform(start, end)
        state = rnd.choice(("sent", "delivered", "delivered", "failed", "received"))
        msgs.append(("in" if state == "received" else "out", "+491700000", None, "x", "gsm7",
                     1, state, rnd.choice(("gsm1", "gsm2", "gsm3")), at, at,
                     at if state in ("sent", "delivered") else None))
    sql = ("INSERT INTO sms_messages (direction, number, campaign_id, text, encoding,"
           " parts_total, state, modem, created_at, updated_at, sent_at)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    db.executemany(sql, msgs)
    for c in range(12):  # a campaign a month, 2,000 recipients each
        at = start + c * (end - start) / 12 + 86400 * 3
        cid = db.execute(
            "INSERT INTO campaigns (name, template, owner_id, state, time_zone, window_start,"
            " window_end, created_at, started_at) VALUES (?, 'Hi', ?, 'finished',"
            " 'Europe/Berlin', '09:00', '21:00', ?, ?) RETURNING id",
            (f"Campaign {c + 1}", managers[0], iso(at), iso(at))).fetchone()[0]
        for r in range(2000):
            number = f"+4916{c:02d}{r:06d}"
            state = rnd.choice(("sent", "delivered", "delivered", "failed"))
            job = db.execute(sql + " RETURNING id", (
                "out", number, cid, "Hi", "gsm7", 1, state, "gsm1", at + r, at + r,
                at + r if state != "failed" else None)).fetchone()[0]
            db.execute("INSERT INTO sms_parts (message_id, seq, total, text, state)"
                       " VALUES (?, 1, 1, 'Hi', ?)", (job, state))
            db.execute("INSERT INTO campaign_recipients (campaign_id, number, text, state,"
                       " job_id) VALUES (?, ?, 'Hi', 'queued', ?)", (cid, number, job))
            if rnd.random() < 0.05:
                db.execute(sql, ("in", number, None, "ok", "gsm7", 1, "received", "gsm1",
                                 at + r + 600, at + r + 600, None))
    faxes = [(rnd.choice(("fax1", "fax2")), "+4930999",
              rnd.choice(("sent", "sent", "failed")), "x.tiff", rnd.randint(1, 9),
              rnd.randint(0, 9), rnd.choice(("sent", "busy", "partial")),
              iso(t := rnd.uniform(start, end)), iso(t)) for _ in range(20_000)]
    db.executemany("INSERT INTO fax_jobs (line, number, state, document, pages,"
                   " pages_confirmed, result, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", faxes)
    db.executemany("INSERT INTO fax_received (line, source_key, received_at, pages, ok, pdf)"
                   " VALUES (?, ?, ?, ?, ?, 'x.pdf')",
                   [(rnd.choice(("fax1", "fax2")), f"k{i}", iso(rnd.uniform(start, end)),
                     rnd.randint(1, 5), int(rnd.random() < 0.9)) for i in range(10_000)])


async def measure(path: Path, repeat: int, only: list[str]) -> None:
    store = await SqliteStore.open(path)
    svc = ReportService(store, timezone=lambda: "Europe/Berlin", callback_sla_minutes=15,
                        office_hours=lambda: HOURS)
    boss = User(9, "u8", "User 08", Role.SUPERVISOR)
    periods = {"month": MONTH, "year": (FIRST, LAST)}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores;"
          " wall times grow with it, CPU times much less")
    print(f"database: {path.stat().st_size / 2**20:.0f} MiB,"
          f" {sqlite3.connect(path).execute('SELECT count(*) FROM calls').fetchone()[0]:,}"
          " calls")
    for label, (first, last) in periods.items():
        lo = datetime(first.year, first.month, first.day, tzinfo=TZ).astimezone(UTC)
        after = last + timedelta(days=1)
        hi = datetime(after.year, after.month, after.day, tzinfo=TZ).astimezone(UTC)
        args = (lo.isoformat(timespec="milliseconds"), hi.isoformat(timespec="milliseconds"))
        count_s = await _best(repeat, lambda a=args: store._db.rows(
            "SELECT count(*) FROM calls WHERE ringing_at >= ? AND ringing_at < ?", a))
        fetch_s = await _best(repeat, lambda a=args: store._db.rows(
            "SELECT ringing_at FROM calls WHERE ringing_at >= ? AND ringing_at < ?", a))
        print(f"\n{label} {first}..{last}: baseline count(*) {count_s * 1000:.0f} ms,"
              f" one-column fetch {fetch_s * 1000:.0f} ms")
        target = 1.0 if label == "month" else 5.0
        for name in ReportName:
            if only and name.value not in only:
                continue
            query = {"from": [first.isoformat()], "to": [last.isoformat()]}
            if name is ReportName.CLIENT_SUMMARY:
                query["client"] = ["17"]
            groupings = {"calls_by_manager": "user", "missed_calls": "day"}
            if name.value in groupings:
                query["group_by"] = [groupings[name.value]]
            seconds = await _best(repeat, lambda q=query, n=name: svc.run_query(
                boss, n.value, q))
            verdict = "ok" if seconds <= target else f"OVER {target:.0f} s"
            print(f"  {name.value:18} {seconds * 1000:7.0f} ms (CPU {CPU[0] * 1000:5.0f} ms)"
                  f"  x{seconds / fetch_s:5.1f} of the fetch  {verdict}")
    await store.close()


CPU: list[float] = []  # the CPU time (both threads) of the last _best's best run


async def _best(repeat: int, work) -> float:
    best = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        await work()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    CPU[:] = [cpu]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--db", type=Path, help="reuse (or build) this database file")
    parser.add_argument("--only", action="append", default=[], help="just this report")
    args = parser.parse_args()
    folder = None
    if args.db is None:
        folder = tempfile.TemporaryDirectory()
        path = Path(folder.name) / "reports.db"
    else:
        path = args.db
    if not path.exists():
        asyncio.run(_migrate(path))
        t0 = time.perf_counter()
        build(path, args.calls)
        print(f"built {args.calls:,} calls in {time.perf_counter() - t0:.0f} s"
              f" (pid {os.getpid()})")
    asyncio.run(measure(path, args.repeat, args.only))
    if folder is not None:
        folder.cleanup()


async def _migrate(path: Path) -> None:
    store = await SqliteStore.open(path)
    await store.close()


if __name__ == "__main__":
    main()

"""A generated office with known answers: users, clients, calls (around both Berlin DST
changes and across midnight), callback tasks, SMS with a campaign, faxes.

The rows are kept as plain dicts so each test computes every expected figure itself, with
its own per-row time-zone arithmetic, never the report engine's code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.models import ClientKind, FieldType, Role
from callcenter.store.base import ClientInput

TZ = ZoneInfo("Europe/Berlin")
HOURS = {"timezone": "Europe/Berlin",
         "week": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}
# Two windows around the DST changes of 2026 (29 March, 25 October).
WINDOWS = ((date(2026, 3, 26), date(2026, 4, 1)), (date(2026, 10, 23), date(2026, 10, 28)))
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CANCELLED = "cancelled: taken back by the campaign before any modem had it"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass
class Office:
    users: dict[str, int] = field(default_factory=dict)  # login -> id
    ext: dict[str, int] = field(default_factory=dict)  # extension -> user id
    managers: list[int] = field(default_factory=list)
    clients: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> manager, segment
    calls: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    sms: list[dict[str, Any]] = field(default_factory=list)
    campaign: dict[str, Any] = field(default_factory=dict)
    recipients: list[dict[str, Any]] = field(default_factory=list)
    optouts: list[dict[str, Any]] = field(default_factory=list)
    fax_jobs: list[dict[str, Any]] = field(default_factory=list)
    fax_received: list[dict[str, Any]] = field(default_factory=list)


async def build(store: Any, seed: int = 12) -> Office:
    rnd = random.Random(seed)
    o = Office()
    for login, role, ext in (("boss", Role.SUPERVISOR, None), ("adm", Role.ADMIN, None),
                             ("sec1", Role.SECRETARY, "101"), ("sec2", Role.SECRETARY, "102"),
                             ("anna", Role.MANAGER, "201"), ("boris", Role.MANAGER, "202"),
                             ("vera", Role.MANAGER, "203")):
        user = await store.create_user(login, login.title(), role, ext, password_hash=None)
        o.users[login] = user.id
        if ext:
            o.ext[ext] = user.id
        if role is Role.MANAGER:
            o.managers.append(user.id)
    await store.create_custom_field("segment", "Segment", FieldType.TEXT)
    for i in range(12):
        manager = o.managers[i % 3] if i < 10 else None
        segment = "vip" if i % 4 == 0 else "regular"
        client = await store.create_client(ClientInput(
            name=f"Client {i}", kind=ClientKind.COMPANY, manager_id=manager,
            custom={"segment": segment}))
        o.clients[client.id] = {"manager": manager, "segment": segment}
    client_ids = list(o.clients)
    exts = list(o.ext)
    n = 0
    for first, last in WINDOWS:
        day = first
        while day <= last:
            for _ in range(rnd.randint(20, 40)):
                n += 1
                o.calls.append(_call(rnd, n, day, client_ids, o, exts))
            # a call that crosses local midnight
            n += 1
            o.calls.append(_call(rnd, n, day, client_ids, o, exts, at=(23, 50)))
            day += timedelta(days=1)
    # either side of the spring change (01:59:59.999 CET, 03:00 CEST) and both 02:30s of the
    # autumn hour that repeats (CEST, then CET)
    for stamp in ("2026-03-29T00:59:59.999+00:00", "2026-03-29T01:00:00.000+00:00",
                  "2026-10-25T00:30:00.000+00:00", "2026-10-25T01:30:00.000+00:00"):
        n += 1
        o.calls.append(_call(rnd, n, date(2026, 3, 1), client_ids, o, exts,
                             exact=datetime.fromisoformat(stamp)))
    for row in o.calls:
        await store.upsert_call({k: v for k, v in row.items() if not k.startswith("_")})
    await _tasks(store, rnd, o)
    await _sms(store, rnd, o)
    await _faxes(store, rnd, o)
    return o


def _call(rnd: random.Random, n: int, day: date, client_ids: list[int], o: Office,
          exts: list[str], at: tuple[int, int] | None = None,
          exact: datetime | None = None) -> dict[str, Any]:
    if exact is not None:
        start = exact
    else:
        h, m = at if at else (rnd.randint(0, 23), rnd.randint(0, 59))
        start = datetime(day.year, day.month, day.day, h, m, rnd.randint(0, 59),
                         rnd.randint(0, 999) * 1000, tzinfo=TZ)
        start = start.astimezone(UTC).astimezone(TZ)  # a gap time becomes a real instant
    direction = rnd.choices(("inbound", "outbound", "internal"), (70, 25, 5))[0]
    if exact is not None:
        direction = "inbound"
    client = rnd.choice([*client_ids, None])
    line = rnd.choice(("office", "gsm1"))
    row: dict[str, Any] = {
        "id": f"c{n}", "line": line, "direction": direction, "caller_raw": f"+4930{n:06d}",
        "caller_e164": f"+4930{n:06d}", "called": rnd.choice(("+4930111", "+4930222")),
        "client_id": client, "ringing_at": iso(start), "transfers": [],
        "queue": rnd.choice((None, "sales", "support")), "handled_by_pbx": 0,
        "answered_by_outside": 0,
    }
    wait = round(rnd.uniform(0, 90), 3)
    talk = round(rnd.uniform(5, 1800), 3)
    if at is not None:
        talk = 1800.0  # crosses midnight
    if direction == "outbound":
        placed = rnd.choice(exts)
        row["user_id"] = o.ext[placed]
        if rnd.random() < 0.7:
            answered = start + timedelta(seconds=wait)
            row |= {"state": "answered", "answered_at": iso(answered),
                    "ended_at": iso(answered + timedelta(seconds=talk)),
                    "talk_seconds": talk, "answered_by_outside": 1}
        else:
            row |= {"state": "missed", "reason": "no_answer",
                    "ended_at": iso(start + timedelta(seconds=wait))}
        return row
    outcome = rnd.choices(("person", "abandoned", "no_answer", "busy", "pbx", "live"),
                          (55, 15, 10, 5, 10, 1))[0]
    if outcome == "person":
        ext = rnd.choice(exts)
        if client is not None and o.clients[client]["manager"] and rnd.random() < 0.4:
            ext = next(e for e, u in o.ext.items() if u == o.clients[client]["manager"])
        answered = start + timedelta(seconds=wait)
        row |= {"state": "answered", "answered_at": iso(answered),
                "ended_at": iso(answered + timedelta(seconds=talk)), "talk_seconds": talk,
                "answered_by_user": o.ext[ext], "answered_by_ext": ext,
                "user_id": o.ext[ext], "ring_seconds": wait}
        if rnd.random() < 0.3:
            to = rnd.choice([e for e in exts if e != ext] + ["+79990001122"])
            row["transfers"] = [{"kind": "blind", "from": ext, "to": to,
                                 "at": iso(answered + timedelta(seconds=10)),
                                 "result": rnd.choice(("success", "success", "failed"))}]
    elif outcome == "pbx":
        row |= {"state": "answered", "handled_by_pbx": 1,
                "ended_at": iso(start + timedelta(seconds=wait))}
    elif outcome == "live":
        row |= {"state": "ringing"}
    else:
        row |= {"state": "missed", "reason": outcome,
                "ended_at": iso(start + timedelta(seconds=wait))}
    return row


async def _insert(store: Any, table: str, row: dict[str, Any]) -> int:
    cols = list(row)
    cur = await store._db.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        " RETURNING id", [row[c] for c in cols])
    got = await cur.fetchone()
    return int(got[0])


async def _tasks(store: Any, rnd: random.Random, o: Office) -> None:
    for call in o.calls:
        if call["direction"] != "inbound" or call["state"] != "missed":
            continue
        if rnd.random() < 0.2:
            continue  # folded into an earlier task of the number
        created = datetime.fromisoformat(call["ended_at"])
        done = rnd.random() < 0.7
        done_at = created + timedelta(minutes=rnd.choice((1, 5, 14, 15, 16, 30, 240, 2000)))
        task = {"kind": "callback", "title": "Call back", "phone": call["caller_e164"],
                "client_id": call["client_id"], "done": int(done), "created_at": iso(created),
                "done_at": iso(done_at) if done else None, "ref": call["id"],
                "assignee_id": (o.clients[call["client_id"]]["manager"]
                                if call["client_id"] else None),
                "assignee_role": None if call["client_id"] else "secretary"}
        task["id"] = await _insert(store, "tasks", dict(task))
        o.tasks.append(task)


async def _sms(store: Any, rnd: random.Random, o: Office) -> None:
    first = datetime(2026, 3, 27, 9, 0, tzinfo=TZ)
    camp = {"name": "Spring <b>sale</b>", "template": "Hi", "owner_id": o.users["adm"],
            "state": "finished", "time_zone": "Europe/Berlin", "window_start": "09:00",
            "window_end": "21:00", "created_at": iso(first), "started_at": iso(first)}
    camp["id"] = await _insert(store, "campaigns", dict(camp))
    o.campaign = camp
    for i in range(30):
        number = f"+4917{i:07d}"
        state = rnd.choices(("queued", "opted_out", "failed"), (26, 3, 1))[0]
        rec = {"campaign_id": camp["id"], "number": number, "text": "Hi", "state": state}
        job_state = None
        if state == "queued":
            job_state = rnd.choice(("sent", "delivered", "delivered", "failed", "expired"))
            sent_at = first.timestamp() + 60 * i
            job = {"direction": "out", "number": number, "e164": number,
                   "campaign_id": camp["id"], "kind": "campaign", "text": "Hi",
                   "encoding": "gsm7", "parts_total": 1, "state": job_state,
                   "modem": rnd.choice(("gsm1", "gsm2")), "error": "",
                   "created_at": sent_at - 5, "updated_at": sent_at,
                   "sent_at": sent_at if job_state in ("sent", "delivered") else None}
            job["id"] = await _insert(store, "sms_messages", dict(job))
            o.sms.append(job)
            await _insert(store, "sms_parts", {"message_id": job["id"], "seq": 1, "total": 1,
                                               "text": "Hi", "state": job_state})
            rec["job_id"] = job["id"]
            if job["sent_at"] and rnd.random() < 0.4:
                text = rnd.choice(("yes please", "STOP", "how much?"))
                reply = {"direction": "in", "number": number, "e164": number, "kind": "manual",
                         "text": text, "encoding": "gsm7", "parts_total": 1,
                         "state": "received", "modem": job["modem"],
                         "created_at": sent_at + 600, "updated_at": sent_at + 600}
                reply["id"] = await _insert(store, "sms_messages", dict(reply))
                o.sms.append(reply)
                if text == "STOP":
                    opt = {"number": number, "raw": number, "at": sent_at + 601,
                           "source": f"sms:{reply['id']}", "keyword": "STOP"}
                    await store._db.execute(
                        "INSERT INTO sms_optout (number, raw, at, source, keyword) VALUES"
                        " (?, ?, ?, ?, ?)", list(opt.values()))
                    o.optouts.append(opt)
        rec["_job_state"] = job_state
        rec["id"] = await _insert(store, "campaign_recipients",
                                  {k: v for k, v in rec.items() if not k.startswith("_")})
        o.recipients.append(rec)
    # manual SMS over the windows, one taken back by a campaign (not a failure)
    for first_day, last_day in WINDOWS:
        for k in range(40):
            at = datetime.combine(first_day, datetime.min.time(), TZ) + timedelta(
                minutes=rnd.randint(0, (last_day - first_day).days * 1440 + 1439))
            state = rnd.choice(("sent", "delivered", "failed", "expired", "received"))
            error = CANCELLED if (k == 0 and state == "expired") else ""
            msg = {"direction": "in" if state == "received" else "out",
                   "number": "+491700000", "kind": "manual", "text": "x", "encoding": "gsm7",
                   "parts_total": 1, "state": state, "modem": rnd.choice(("gsm1", "gsm2")),
                   "error": error, "created_at": at.timestamp(), "updated_at": at.timestamp()}
            msg["id"] = await _insert(store, "sms_messages", dict(msg))
            o.sms.append(msg)


async def _faxes(store: Any, rnd: random.Random, o: Office) -> None:
    for first_day, last_day in WINDOWS:
        for _ in range(25):
            at = datetime.combine(first_day, datetime.min.time(), TZ) + timedelta(
                minutes=rnd.randint(0, (last_day - first_day).days * 1440 + 1439))
            state = rnd.choice(("sent", "sent", "failed", "queued"))
            pages = rnd.randint(1, 9)
            confirmed = pages if state == "sent" else rnd.randint(0, pages - 1)
            job = {"line": rnd.choice(("fax1", "fax2")), "number": "+4930999", "state": state,
                   "document": "x.tiff", "pages": pages, "pages_confirmed": confirmed,
                   "result": (rnd.choice(("busy", "no_answer", "partial")) if state == "failed"
                              else ("sent" if state == "sent" else "")),
                   "created_at": iso(at), "updated_at": iso(at)}
            job["id"] = await _insert(store, "fax_jobs", dict(job))
            o.fax_jobs.append(job)
        for k in range(15):
            at = datetime.combine(first_day, datetime.min.time(), TZ) + timedelta(
                minutes=rnd.randint(0, (last_day - first_day).days * 1440 + 1439))
            rec = {"line": rnd.choice(("fax1", "fax2")), "source_key": f"{first_day}-{k}",
                   "received_at": iso(at), "pages": rnd.randint(1, 5),
                   "ok": int(rnd.random() < 0.8), "pdf": "x.pdf"}
            rec["id"] = await _insert(store, "fax_received", dict(rec))
            o.fax_received.append(rec)

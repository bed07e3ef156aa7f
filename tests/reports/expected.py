"""Expected report figures computed straight from the generated rows: per-row time-zone
conversion with zoneinfo, plain loops and counters — none of the report engine's code."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

from tests.reports.dataset import CANCELLED, TZ, Office


def local(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(TZ)


def within(stamp: str, first: date, last: date) -> bool:
    return first <= local(stamp).date() <= last


def label(stamp: str, grouping: str) -> str:
    t = local(stamp)
    if grouping == "hour":
        return f"{t:%Y-%m-%d}T{t.hour:02d}:00"
    if grouping == "day":
        return t.date().isoformat()
    if grouping == "week":
        y, w, _ = t.isocalendar()
        return f"{y}-W{w:02d}"
    if grouping == "month":
        return f"{t.year}-{t.month:02d}"
    return "all"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[math.ceil(q * len(s)) - 1]


def share(a: float, b: float) -> float | None:
    return a / b if b else None


def office_open(stamp: str) -> bool:
    t = local(stamp)
    return t.weekday() < 5 and 9 <= t.hour < 18


def miss(call: dict[str, Any], hours: bool = True) -> str | None:
    if call["direction"] != "inbound" or call.get("answered_at") or call["state"] == "ringing":
        return None
    if hours and not office_open(call["ringing_at"]):
        return "after_hours"
    if call["handled_by_pbx"]:
        return None
    reason = call.get("reason")
    return reason if reason in ("abandoned", "no_answer") else "other_missed"


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def calls_by_manager(o: Office, first: date, last: date, grouping: str,
                     users: set[int] | None = None) -> dict[Any, dict[str, Any]]:
    """key (user id, or bucket label) -> figures."""
    def blank() -> dict[str, Any]:
        return {"in": 0, "out": 0, "out_ans": 0, "talk": 0.0, "waits": [], "made": 0,
                "recv": 0, "own": 0, "own_ans": 0}
    out: dict[Any, dict[str, Any]] = defaultdict(blank)

    def take(u: int | None) -> bool:
        return u in users if users else (grouping != "user" or u is not None)

    for c in o.calls:
        if not within(c["ringing_at"], first, last):
            continue

        def key(u: int | None, c: dict[str, Any] = c) -> Any:
            return u if grouping == "user" else label(c["ringing_at"], grouping)
        ans = c.get("answered_by_user")
        if c["direction"] == "inbound" and c.get("answered_at"):
            if take(ans):
                f = out[key(ans)]
                f["in"] += 1
                f["waits"].append(seconds(c["ringing_at"], c["answered_at"]))
                f["talk"] += c["talk_seconds"]
            mgr = o.clients[c["client_id"]]["manager"] if c["client_id"] else None
            if mgr is not None and take(mgr):
                out[key(mgr)]["own"] += 1
                out[key(mgr)]["own_ans"] += int(ans == mgr)
        elif c["direction"] == "outbound" and take(c.get("user_id")):
            f = out[key(c["user_id"])]
            f["out"] += 1
            if c.get("answered_at"):
                f["out_ans"] += 1
                f["talk"] += c["talk_seconds"]
        for t in c["transfers"]:
            if t["result"] != "success":
                continue
            giver, taker = o.ext.get(t["from"]), o.ext.get(t["to"])
            if giver is not None and take(giver):
                out[key(giver)]["made"] += 1
            if taker is not None and take(taker):
                out[key(taker)]["recv"] += 1
    return out


def cbm_row(name: str, f: dict[str, Any]) -> list[Any]:
    w = f["waits"]
    return [name, f["in"], f["out"], f["out_ans"], f["talk"], sum(w) / len(w) if w else None,
            pct(w, 0.9), f["made"], f["recv"], f["own"], share(f["own_ans"], f["own"])]


def missed(o: Office, first: date, last: date, grouping: str, sla: float = 900.0,
           hours: bool = True) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "inbound": 0, "kinds": Counter(), "callbacks": 0, "times": [], "within": 0})
    by_id = {c["id"]: c for c in o.calls}
    for c in o.calls:
        if c["direction"] != "inbound" or not within(c["ringing_at"], first, last):
            continue
        k = c["line"] if grouping == "line" else label(c["ringing_at"], grouping)
        out[k]["inbound"] += 1
        kind = miss(c, hours)
        if kind:
            out[k]["kinds"][kind] += 1
    for t in o.tasks:
        c = by_id[t["ref"]]
        if not within(c["ringing_at"], first, last):
            continue
        k = c["line"] if grouping == "line" else label(c["ringing_at"], grouping)
        out[k]["callbacks"] += 1
        if t["done"]:
            s = seconds(c["ringing_at"], t["done_at"])
            out[k]["times"].append(s)
            out[k]["within"] += int(s <= sla)
    return out


def missed_row(name: str, f: dict[str, Any]) -> list[Any]:
    kinds = f["kinds"]
    n = sum(kinds.values())
    return [name, f["inbound"], n, share(n, f["inbound"]), kinds["abandoned"],
            kinds["no_answer"], kinds["after_hours"], kinds["other_missed"], f["callbacks"],
            len(f["times"]), pct(f["times"], 0.5), pct(f["times"], 0.9),
            share(f["within"], f["callbacks"])]


def heatmap(o: Office, first: date, last: date) -> dict[tuple[int, int], list[int]]:
    cells: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in o.calls:
        if within(c["ringing_at"], first, last):
            t = local(c["ringing_at"])
            cell = cells[(t.weekday(), t.hour)]
            cell[0] += 1
            cell[1] += int(bool(c.get("answered_at")))
            cell[2] += int(miss(c) is not None)
    return cells


def peak(calls: list[dict[str, Any]]) -> tuple[int, str | None]:
    """Most calls going on at once (a call ending as another starts is not overlapping),
    by brute force over every start."""
    best, at = 0, None
    spans = [(c["ringing_at"], c["ended_at"]) for c in calls if c.get("ended_at")]
    for start, _ in sorted(spans):
        n = sum(1 for s, e in spans if s <= start < e)
        if n > best:
            best, at = n, start
    return best, at


def faxes(o: Office, first: date, last: date, grouping: str) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for j in o.fax_jobs:
        if within(j["created_at"], first, last):
            f = out[label(j["created_at"], grouping)]
            f["sent_pages"] += j["pages_confirmed"]
            f["sent"] += int(j["state"] == "sent")
            f["failed"] += int(j["state"] == "failed")
    for r in o.fax_received:
        if within(r["received_at"], first, last):
            f = out[label(r["received_at"], grouping)]
            if r["ok"]:
                f["received"] += 1
                f["received_pages"] += r["pages"]
            else:
                f["received_failed"] += 1
    return out


def sms_per_modem(o: Office, first: date, last: date) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for m in o.sms:
        if not first <= datetime.fromtimestamp(m["created_at"], TZ).date() <= last:
            continue
        f = out[m["modem"]]
        if m["direction"] == "in":
            f["received"] += 1
            continue
        f["sent"] += int(m["state"] in ("sent", "delivered"))
        f["delivered"] += int(m["state"] == "delivered")
        f["failed"] += int(m["state"] in ("failed", "expired") and m["error"] != CANCELLED)
    return out


def campaign(o: Office) -> dict[str, int]:
    status = Counter(r["state"] if r["state"] != "queued" else r["_job_state"]
                     for r in o.recipients)
    sent_at = {m["number"]: m["sent_at"] for m in o.sms
               if m.get("campaign_id") and m.get("sent_at")}
    replies = sum(1 for m in o.sms if m["direction"] == "in" and m["number"] in sent_at
                  and m["created_at"] > sent_at[m["number"]] and m["text"] != "STOP")
    unsubscribed = sum(1 for x in o.optouts if x["number"] in sent_at)
    return {"recipients": len(o.recipients),
            "sent": status["sent"] + status["delivered"], "delivered": status["delivered"],
            "failed": status["failed"] + status["expired"], "opted_out": unsubscribed,
            "skipped": status["opted_out"], "replies": replies}

"""A campaign's numbers and its CSV export: pure code over recipients and their SMS jobs."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The SMS job states (callcenter/sms: queued → sending → sent → delivered / failed / expired,
# "unknown" after a crash mid-send, "cancelled" when taken back from the queue).
IN_FLIGHT = frozenset({"queued", "sending"})
SENT = frozenset({"sent", "delivered"})
FAILED = frozenset({"failed", "expired"})


@dataclass(frozen=True, slots=True)
class PartView:
    seq: int
    state: str  # queued, sending, sent, delivered, failed, expired, unknown
    error: str = ""


@dataclass(frozen=True, slots=True)
class JobView:
    """What the SMS side says about one job."""

    id: int
    state: str
    parts: tuple[PartView, ...] = ()
    error: str = ""
    sent_at: str | None = None


@dataclass(frozen=True, slots=True)
class Replies:
    """A recipient's answers to this campaign's message (after its send, before another
    campaign's next one; opt-out keywords are not replies)."""

    count: int = 0
    unsubscribed: bool = False  # opted out after this campaign's message reached them


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    id: int
    number: str
    client_id: int | None
    client_name: str | None
    contact_name: str | None
    text: str
    status: str  # pending, opted_out, cancelled, or the job's state
    parts: tuple[PartView, ...] = ()
    error: str = ""
    sent_at: str | None = None
    replies: int = 0
    unsubscribed: bool = False


def status_of(recipient: Mapping[str, Any], jobs: Mapping[int, JobView]) -> str:
    if recipient["state"] != "queued":
        return str(recipient["state"])
    job = jobs.get(recipient["job_id"])
    return job.state if job is not None else "queued"


def statuses(recipients: Iterable[Mapping[str, Any]], jobs: Mapping[int, JobView],
             replies: Mapping[str, Replies]) -> list[RecipientStatus]:
    out = []
    for r in recipients:
        job = jobs.get(r["job_id"]) if r["state"] == "queued" else None
        answer = replies.get(r["number"], Replies())
        out.append(RecipientStatus(
            r["id"], r["number"], r.get("client_id"), r.get("client_name"),
            r.get("contact_name"), r["text"], status_of(r, jobs),
            job.parts if job else (), job.error if job else r.get("error") or "",
            job.sent_at if job else None,
            answer.count, answer.unsubscribed))
    return out


@dataclass(frozen=True, slots=True)
class Report:
    recipients: int
    sent: int  # reached the network (sent or delivered)
    delivered: int  # every part's delivery report said delivered
    failed: int  # failed or expired (a part refused, or its report said failed)
    unknown: int  # the product stopped mid-send: check delivery (never re-sent by itself)
    opted_out: int  # on the do-not-send list at its send time: never sent
    cancelled: int
    waiting: int  # not handed over yet, or queued/sending
    replies: int  # inbound SMS from recipients after their message (not STOP)
    repliers: int  # recipients who replied at least once
    unsubscribed: int  # recipients who opted out after their message
    by_status: dict[str, int] = field(default_factory=dict)


def report_of(rows: Sequence[RecipientStatus]) -> Report:
    return report_from(Counter(r.status for r in rows),
                       {r.number: Replies(r.replies, r.unsubscribed) for r in rows
                        if r.replies or r.unsubscribed})


def report_from(counts: Mapping[str, int], replies: Mapping[str, Replies]) -> Report:
    """The totals from the recipients per status and their replies."""
    counts = Counter(counts)
    return Report(
        recipients=sum(counts.values()),
        sent=sum(counts[s] for s in SENT),
        delivered=counts["delivered"],
        failed=sum(counts[s] for s in FAILED),
        unknown=counts["unknown"],
        opted_out=counts["opted_out"],
        cancelled=counts["cancelled"],
        waiting=counts["pending"] + sum(counts[s] for s in IN_FLIGHT),
        replies=sum(r.count for r in replies.values()),
        repliers=sum(1 for r in replies.values() if r.count),
        unsubscribed=sum(1 for r in replies.values() if r.unsubscribed),
        by_status=dict(sorted(counts.items())),
    )


# A cell a spreadsheet would run as a formula (=, +, -, @, and tab/CR that some strip first):
# prefixed with an apostrophe, which shows as text (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


CSV_COLUMNS = ("number", "client", "contact", "status", "parts", "parts_delivered", "error",
               "sent_at", "replies", "text")


def report_csv(campaign: Mapping[str, Any], rows: Sequence[RecipientStatus]) -> str:
    """The campaign's totals, then one line per recipient; every cell formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    report = report_of(rows)
    writer.writerow([safe_cell("campaign"), safe_cell(campaign["name"])])
    for key in ("recipients", "sent", "delivered", "failed", "unknown", "opted_out",
                "cancelled", "waiting", "replies", "repliers", "unsubscribed"):
        writer.writerow([key, getattr(report, key)])
    writer.writerow([])
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([safe_cell(v) for v in (
            r.number, r.client_name or "", r.contact_name or "", r.status, len(r.parts),
            sum(1 for p in r.parts if p.state == "delivered"),
            r.error or "; ".join(f"part {p.seq}: {p.error}" for p in r.parts if p.error),
            r.sent_at or "", r.replies, r.text)])
    return out.getvalue()

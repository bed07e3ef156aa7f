"""The SMS, fax and client-summary reports.

* SMS campaigns: the campaigns started in the period, with the numbers of their own report
  page (callcenter.sms.campaign_report.report_from over the same store reads), so the two
  never disagree. Per modem and volume: the SMS created in the period; failed = failed or
  expired, except messages a campaign took back before any modem had them.
* Faxes: outgoing jobs created and faxes received in the period; sent pages are the pages
  the far end confirmed (a failed fax's confirmed pages count too).
* Client summary: the client's calls, SMS and faxes in the period by bucket; its card figures
  (calls ever, last contact, open tasks) in the ``summary`` section.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callcenter.errors import PermissionDenied, ValidationError
from callcenter.reports.calls_reports import miss_kind
from callcenter.reports.engine import Context, ratio, result
from callcenter.reports.model import Grouping, Table
from callcenter.reports.periods import Buckets
from callcenter.reports.registry import REPORTS
from callcenter.sms.campaign_report import FAILED, SENT, Replies, report_from
from callcenter.sms.campaign_sms import CANCELLED
from callcenter.sms.model import opt_out_keyword


def _float_bounds(buckets: Buckets) -> list[float]:
    return [datetime.fromisoformat(b).timestamp() for b in buckets.bounds]


def _float_index(bounds: list[float], labels: tuple[str, ...], at: float) -> str | None:
    import bisect

    i = bisect.bisect_right(bounds, at) - 1
    return labels[i] if 0 <= i < len(labels) else None


# -- SMS ---------------------------------------------------------------------------------------

def campaign_replies(campaign_id: int, times: Mapping[str, float],
                     since: Mapping[str, list[tuple[Any, ...]]]) -> dict[str, Replies]:
    """The campaign page's replies (callcenter.sms.campaign_sms.CoreCampaignSms.all_replies)
    from reads shared by every campaign: per number sent to, the inbound SMS after its send
    and before another campaign's next send to it, less opt-out keywords; and whether it
    opted out in that span."""
    nexts: dict[str, float] = {}
    for other, number, at in since["sends"]:
        if other != campaign_id and number in times and at > times[number]:
            nexts[number] = min(at, nexts.get(number, float("inf")))

    def ours(number: str, at: float) -> bool:
        return number in times and times[number] < at < nexts.get(number, float("inf"))

    counts: dict[str, int] = {}
    for number, at, text in since["inbound"]:
        if ours(number, at) and not opt_out_keyword(text or ""):
            counts[number] = counts.get(number, 0) + 1
    left = {number for number, at in since["optouts"] if ours(number, at)}
    return {n: Replies(counts.get(n, 0), n in left) for n in set(counts) | left}


async def sms(ctx: Context) -> Any:
    store = ctx.store
    rows = []
    campaigns = await store.report_campaigns(ctx.period.lo, ctx.period.hi)
    sent = {cid: await store.campaign_sent_times(cid) for cid, _n, _s in campaigns}
    first = min((t for times in sent.values() for t in times.values()), default=None)
    since = await store.report_sms_since(first) if first is not None else {}
    for campaign_id, name, state in campaigns:
        times = sent[campaign_id]
        r = report_from(await store.campaign_status_counts(campaign_id, CANCELLED),
                        campaign_replies(campaign_id, times, since) if times else {})
        rows.append((campaign_id, name, f"report.campaign_state.{state}", r.recipients,
                     r.sent, r.delivered, r.failed, r.unsubscribed, r.opted_out, r.replies,
                     ratio(r.delivered, r.sent)))
    n = len(rows[0]) if rows else 11
    totals = (None, "", None, *(sum(r[i] for r in rows) for i in range(3, n - 1)),
              ratio(sum(r[5] for r in rows), sum(r[4] for r in rows)))
    grouping = ctx.grouping
    buckets = ctx.period.buckets(grouping if grouping is not Grouping.NONE else Grouping.NONE)
    bounds = _float_bounds(buckets)
    modems: dict[str, Counter[str]] = defaultdict(Counter)
    volume: dict[str, Counter[str]] = defaultdict(Counter)
    for created_at, direction, state, modem, error in await store.report_sms(bounds[0],
                                                                              bounds[-1]):
        label = _float_index(bounds, buckets.labels, float(created_at))
        if label is None:
            continue
        failed = state in FAILED and error != CANCELLED
        m = modems[modem or ""]
        v = volume[label]
        if direction == "in":
            m["received"] += 1
            v["in"] += 1
            continue
        v["out"] += 1
        m["sent"] += state in SENT
        m["delivered"] += state == "delivered"
        m["failed"] += failed
        v["failed"] += failed
    spec = REPORTS[ctx.spec.name]
    per_modem = Table(spec.sections["per_modem"], [
        (name, c["sent"], c["delivered"], c["failed"], c["received"],
         ratio(c["failed"], c["sent"] + c["failed"])) for name, c in sorted(modems.items())])
    vol = Table(spec.sections["volume"], [
        (label, volume[label]["out"], volume[label]["in"], volume[label]["failed"])
        for label in buckets.row_labels()])
    return result(ctx, rows, totals, {"per_modem": per_modem, "volume": vol})


# -- faxes -------------------------------------------------------------------------------------

async def faxes(ctx: Context) -> Any:
    by_line = ctx.grouping is Grouping.LINE
    buckets = ctx.buckets()
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[tuple[str, str]] = Counter()
    lines = set(ctx.f.lines)
    for at, way, line, state, pages, confirmed, result_key in await ctx.store.report_faxes(
            ctx.period.lo, ctx.period.hi):
        if lines and line not in lines:
            continue
        if by_line:
            key = line
        else:
            i = buckets.index(at)
            if i < 0:
                continue
            key = buckets.labels[i]
        s = stats[key]
        if way == "out":
            s["sent_pages"] += confirmed or 0
            if state == "sent":
                s["sent"] += 1
            elif state == "failed":
                s["failed"] += 1
                reasons[(result_key or "unknown", "sent")] += 1
        elif state == "received":
            s["received"] += 1
            s["received_pages"] += pages or 0
        else:
            s["received_failed"] += 1
            reasons[(result_key or "unknown", "received")] += 1
    keys = ("sent", "sent_pages", "failed", "received", "received_pages", "received_failed")
    labels = sorted(stats) if by_line else buckets.row_labels()
    rows = [(label, *(stats[label][k] for k in keys)) for label in labels]
    totals = ("", *(sum(stats[label][k] for label in labels) for k in keys))
    failures = Table(REPORTS[ctx.spec.name].sections["failures"], [
        (f"report.fax_reason.{reason}", f"report.fax_direction.{way}", n)
        for (reason, way), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))])
    return result(ctx, rows, totals, {"failures": failures})


# -- a client's summary ------------------------------------------------------------------------

async def client_summary(ctx: Context) -> Any:
    client_id = ctx.f.client_id
    if client_id is None:
        raise ValidationError("the client summary needs client=<client id>", field="client")
    card = await ctx.store.report_client_card(client_id)
    if card is None:
        raise ValidationError(f"no client with id {client_id}", field="client")
    if ctx.own_clients_only and card[2] != ctx.manager_id:
        raise PermissionDenied("this client belongs to another manager")
    buckets = ctx.buckets()
    bounds = _float_bounds(buckets)
    activity = await ctx.store.report_client_activity(
        client_id, ctx.period.lo, ctx.period.hi, bounds[0], bounds[-1])
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    talk: dict[str, float] = defaultdict(float)
    for ringing_at, direction, answered_at, pbx, seconds, state, reason in activity["calls"]:
        i = buckets.index(ringing_at)
        if i < 0:
            continue
        s = stats[buckets.labels[i]]
        s["calls"] += 1
        s[direction] += 1
        if direction == "inbound" and miss_kind(ctx, ringing_at, answered_at, pbx, state,
                                                reason):
            s["missed"] += 1
        talk[buckets.labels[i]] += seconds or 0.0
    for created_at, direction in activity["sms"]:
        label = _float_index(bounds, buckets.labels, float(created_at))
        if label is not None:
            stats[label]["sms_out" if direction == "out" else "sms_in"] += 1
    for at, way in activity["faxes"]:
        i = buckets.index(at)
        if i >= 0:
            stats[buckets.labels[i]]["faxes_sent" if way == "out" else "faxes_received"] += 1
    keys = ("calls", "inbound", "outbound", "missed")
    rest = ("sms_out", "sms_in", "faxes_sent", "faxes_received")
    labels = buckets.row_labels()
    rows = [(label, *(stats[label][k] for k in keys), talk[label],
             *(stats[label][k] for k in rest)) for label in labels]
    totals = ("", *(sum(stats[lb][k] for lb in labels) for k in keys),
              sum(talk[lb] for lb in labels), *(sum(stats[lb][k] for lb in labels)
                                                for k in rest))
    cid, name, _manager_id, manager, calls, last_at, last_kind, open_tasks, callbacks = card
    summary = Table(REPORTS[ctx.spec.name].sections["summary"], [
        (cid, name, manager or "", calls, last_at,
         f"report.kind.{last_kind}" if last_kind else None, open_tasks, callbacks)])
    return result(ctx, rows, totals, {"summary": summary})

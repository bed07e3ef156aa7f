"""Every figure of every report against the generated office's known answers (computed in
tests/reports/expected.py from the rows themselves), across both Berlin DST changes and
calls crossing midnight."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from callcenter.models import Role, User
from tests.reports import expected as ex
from tests.reports.conftest import service
from tests.reports.dataset import TZ

SPRING = (date(2026, 3, 26), date(2026, 4, 1))
AUTUMN = (date(2026, 10, 23), date(2026, 10, 28))


def boss(o: Any) -> User:
    return User(o.users["boss"], "boss", "Boss", Role.SUPERVISOR)


async def run(store: Any, o: Any, name: str, first: date, last: date, *, hours: bool = True,
              tz: str = "Europe/Berlin", **params: str) -> dict[str, Any]:
    query = {"from": [first.isoformat()], "to": [last.isoformat()]} | {
        k: [v] for k, v in params.items()}
    result = await service(store, hours=hours, tz=tz).run_query(boss(o), name, query)
    return result.to_json()


def same(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        if isinstance(w, float) and g is not None:
            assert g == pytest.approx(w, abs=0.051), (got, want)
        else:
            assert g == w, (got, want)


def table(doc: dict[str, Any]) -> dict[Any, list[Any]]:
    return {row[0]: row for row in doc["rows"]}


@pytest.mark.parametrize("period", [SPRING, AUTUMN])
@pytest.mark.parametrize("grouping", ["user", "day", "hour", "week", "month"])
async def test_calls_by_manager(office, period, grouping) -> None:
    store, o = office
    doc = await run(store, o, "calls_by_manager", *period, group_by=grouping)
    want = ex.calls_by_manager(o, *period, grouping)
    names = {uid: login.title() for login, uid in o.users.items()}
    if grouping == "user":
        keys = {u for u in want if u is not None} | set(o.managers)
        rows = [ex.cbm_row(names[u], want[u]) for u in keys]
    else:
        rows = [ex.cbm_row(k, f) for k, f in want.items()]
    got = table(doc)
    assert set(got) == {r[0] for r in rows} | (set() if grouping == "user" else set(got))
    for row in rows:
        same(got[row[0]], row)
    # every bucket of the period is a row, in time order; the totals add up
    assert [r[0] for r in doc["rows"]] == sorted(r[0] for r in doc["rows"]) or \
        grouping == "user"
    assert doc["totals"][1] == sum(r[1] for r in doc["rows"])
    assert doc["totals"][7] == sum(r[7] for r in doc["rows"])


async def test_calls_by_manager_for_chosen_users(office) -> None:
    store, o = office
    anna, boris = o.users["anna"], o.users["boris"]
    doc = await run(store, o, "calls_by_manager", *SPRING, group_by="day",
                    user=f"{anna},{boris}")
    want = ex.calls_by_manager(o, *SPRING, "day", users={anna, boris})
    got = table(doc)
    for k, f in want.items():
        same(got[k], ex.cbm_row(k, f))


@pytest.mark.parametrize("period", [SPRING, AUTUMN])
@pytest.mark.parametrize("grouping", ["day", "hour", "line", "week"])
async def test_missed_calls(office, period, grouping) -> None:
    store, o = office
    doc = await run(store, o, "missed_calls", *period, group_by=grouping)
    want = ex.missed(o, *period, grouping)
    got = table(doc)
    for k, f in want.items():
        same(got[k], ex.missed_row(k, f))
    for k in set(got) - set(want):  # the buckets with no call are zeros
        assert got[k][1:3] == [0, 0] and got[k][3] is None
    total = ex.missed_row("", {"inbound": sum(f["inbound"] for f in want.values()),
                               "kinds": sum((f["kinds"] for f in want.values()),
                                            ex.Counter()),
                               "callbacks": sum(f["callbacks"] for f in want.values()),
                               "times": [t for f in want.values() for t in f["times"]],
                               "within": sum(f["within"] for f in want.values())})
    same(doc["totals"], total)


async def test_missed_calls_without_office_hours_has_no_after_hours(office) -> None:
    store, o = office
    doc = await run(store, o, "missed_calls", *SPRING, hours=False, group_by="day")
    want = ex.missed(o, *SPRING, "day", hours=False)
    got = table(doc)
    for k, f in want.items():
        same(got[k], ex.missed_row(k, f))
    assert doc["totals"][6] == 0


async def test_open_callbacks_with_their_age(office) -> None:
    store, o = office
    doc = await run(store, o, "missed_calls", *SPRING)
    section = doc["sections"]["open_callbacks"]
    open_tasks = sorted((t for t in o.tasks if not t["done"]),
                        key=lambda t: (t["created_at"], t["id"]))
    assert [r[0] for r in section["rows"]] == [t["id"] for t in open_tasks]
    for row, task in zip(section["rows"], open_tasks, strict=True):
        assert row[1] == task["phone"]
        assert row[6] == pytest.approx(ex.seconds(task["created_at"],
                                                  "2026-11-02T12:00:00+00:00"), abs=0.06)


@pytest.mark.parametrize("period", [SPRING, AUTUMN])
async def test_load_heatmap_and_peaks(office, period) -> None:
    store, o = office
    doc = await run(store, o, "load", *period)
    cells = ex.heatmap(o, *period)
    assert len(doc["rows"]) == 7 * 24
    for weekday, name, hour, calls, answered, missed in doc["rows"]:
        assert name == f"report.weekday.{date(2026, 3, 23 + weekday):%a}".lower()
        assert [calls, answered, missed] == cells.get((weekday, hour), [0, 0, 0]), \
            (weekday, hour)
    in_period = [c for c in o.calls if ex.within(c["ringing_at"], *period)]
    assert doc["totals"][3] == len(in_period)
    peak, at = ex.peak(in_period)
    assert doc["sections"]["peak"]["rows"][0][7:] == [peak, at]
    for line_row in doc["sections"]["per_line"]["rows"]:
        mine = [c for c in in_period if c["line"] == line_row[0]]
        assert line_row[1] == len(mine)
        assert line_row[2] == sum(c["direction"] == "inbound" for c in mine)
        assert line_row[5] == sum(ex.miss(c) is not None for c in mine)
        assert line_row[6] == pytest.approx(sum(c.get("talk_seconds") or 0 for c in mine),
                                            abs=0.06)
        assert line_row[7:] == list(ex.peak(mine))
    for did_row in doc["sections"]["per_did"]["rows"]:
        mine = [c for c in in_period if c["direction"] == "inbound"
                and c["called"] == did_row[0]]
        assert did_row[1] == len(mine) and did_row[5] == sum(ex.miss(c) is not None
                                                             for c in mine)
    for q_row in doc["sections"]["per_queue"]["rows"]:
        mine = [c for c in in_period if c["queue"] == q_row[0]]
        assert q_row[1] == len(mine) and q_row[4] == sum(bool(c.get("answered_at"))
                                                         for c in mine)


async def test_dst_days_have_23_and_25_hours(office) -> None:
    store, o = office
    spring = await run(store, o, "missed_calls", date(2026, 3, 29), date(2026, 3, 29),
                       group_by="hour")
    labels = [r[0] for r in spring["rows"]]
    assert len(labels) == 23 and "2026-03-29T02:00" not in labels
    autumn = await run(store, o, "missed_calls", date(2026, 10, 25), date(2026, 10, 25),
                       group_by="hour")
    # 02:00-03:00 happens twice: one row holding both hours' calls
    assert len(autumn["rows"]) == 24
    row = table(autumn)["2026-10-25T02:00"]
    both = [c for c in o.calls if c["direction"] == "inbound"
            and ex.local(c["ringing_at"]).strftime("%Y-%m-%dT%H") == "2026-10-25T02"]
    assert len({ex.local(c["ringing_at"]).utcoffset() for c in both}) == 2
    assert row[1] == len(both)


async def test_a_call_crossing_midnight_counts_on_the_day_it_rang(office) -> None:
    store, o = office
    late = [c for c in o.calls if ex.local(c["ringing_at"]).strftime("%H:%M") == "23:50"
            and c.get("ended_at")
            and ex.local(c["ended_at"]).date() != ex.local(c["ringing_at"]).date()]
    assert late
    day = ex.local(late[0]["ringing_at"]).date()
    doc = await run(store, o, "load", day, day)
    assert doc["totals"][3] == sum(ex.local(c["ringing_at"]).date() == day for c in o.calls)


@pytest.mark.parametrize("grouping", ["day", "week", "month"])
async def test_faxes(office, grouping) -> None:
    store, o = office
    doc = await run(store, o, "faxes", *SPRING, group_by=grouping)
    want = ex.faxes(o, *SPRING, grouping)
    keys = ("sent", "sent_pages", "failed", "received", "received_pages", "received_failed")
    got = table(doc)
    for k, f in want.items():
        assert got[k] == [k, *(f[x] for x in keys)]
    failures = ex.Counter((j["result"], "sent") for j in o.fax_jobs
                          if j["state"] == "failed" and ex.within(j["created_at"], *SPRING))
    failures += ex.Counter(("receive_failed", "received") for r in o.fax_received
                           if not r["ok"] and ex.within(r["received_at"], *SPRING))
    assert {(r[0], r[1]): r[2] for r in doc["sections"]["failures"]["rows"]} == {
        (f"report.fax_reason.{k}", f"report.fax_direction.{d}"): n
        for (k, d), n in failures.items()}


async def test_sms_campaign_and_modems(office) -> None:
    store, o = office
    doc = await run(store, o, "sms", *SPRING, group_by="day")
    want = ex.campaign(o)
    assert len(doc["rows"]) == 1
    row = doc["rows"][0]
    assert row[1] == "Spring <b>sale</b>"  # raw: the console escapes it
    assert row[3:10] == [want["recipients"], want["sent"], want["delivered"], want["failed"],
                         want["opted_out"], want["skipped"], want["replies"]]
    modems = ex.sms_per_modem(o, *SPRING)
    got = {r[0]: r for r in doc["sections"]["per_modem"]["rows"]}
    for name, f in modems.items():
        assert got[name][1:5] == [f["sent"], f["delivered"], f["failed"], f["received"]]
    outside = await run(store, o, "sms", *AUTUMN)
    assert outside["rows"] == []  # the campaign started in March


async def test_client_summary(office) -> None:
    store, o = office
    cid = next(c for c, v in o.clients.items() if v["manager"] == o.users["anna"])
    doc = await run(store, o, "client_summary", date(2026, 1, 1), date(2026, 12, 31),
                    client=str(cid))
    mine = [c for c in o.calls if c["client_id"] == cid]
    by_month = ex.Counter(ex.label(c["ringing_at"], "month") for c in mine)
    got = table(doc)
    for month, n in by_month.items():
        assert got[month][1] == n
        assert got[month][4] == sum(ex.miss(c) is not None for c in mine
                                    if ex.label(c["ringing_at"], "month") == month)
    summary = doc["sections"]["summary"]["rows"][0]
    assert summary[:4] == [cid, o.clients and summary[1], "Anna", len(mine)]
    assert summary[6] == sum(1 for t in o.tasks if t["client_id"] == cid and not t["done"])


async def test_segment_filter(office) -> None:
    store, o = office
    vip = {c for c, v in o.clients.items() if v["segment"] == "vip"}
    doc = await run(store, o, "load", *SPRING, segment="segment:vip")
    assert doc["totals"][3] == sum(1 for c in o.calls if c["client_id"] in vip
                                   and ex.within(c["ringing_at"], *SPRING))


async def test_line_did_and_direction_filters(office) -> None:
    store, o = office
    doc = await run(store, o, "load", *SPRING, line="gsm1", direction="inbound",
                    did="+4930111")
    assert doc["totals"][3] == sum(
        1 for c in o.calls if c["line"] == "gsm1" and c["direction"] == "inbound"
        and c["called"] == "+4930111" and ex.within(c["ringing_at"], *SPRING))


def test_zone_is_berlin() -> None:
    assert str(TZ) == "Europe/Berlin"


async def test_the_data_set_exercises_every_figure(office) -> None:
    """The known answers are not zeros: each kind of figure occurs in the generated rows."""
    store, o = office
    cbm = (await run(store, o, "calls_by_manager", *SPRING))["totals"]
    assert all(cbm[i] > 0 for i in (1, 2, 3, 7, 8, 9)) and 0 < cbm[10] < 1
    missed = (await run(store, o, "missed_calls", *SPRING))["totals"]
    assert all(missed[i] > 0 for i in range(4, 10)) and 0 < missed[12] < 1
    sms = (await run(store, o, "sms", *SPRING))["rows"][0]
    assert all(v > 0 for v in sms[3:10])
    faxes = (await run(store, o, "faxes", *SPRING))["totals"]
    assert all(v > 0 for v in faxes[1:])


async def test_sms_campaign_figures_are_the_campaign_pages(office) -> None:
    """The report reads every campaign's replies at once; the campaign page reads them per
    campaign: the same figures."""
    from callcenter.sms.campaign_report import report_from
    from callcenter.sms.campaign_sms import CoreCampaignSms

    store, o = office
    page = CoreCampaignSms(None, store)  # type: ignore[arg-type]  # its reads only
    cid = o.campaign["id"]
    r = report_from(await page.status_counts(cid), await page.all_replies(cid))
    row = (await run(store, o, "sms", *SPRING))["rows"][0]
    assert row[3:10] == [r.recipients, r.sent, r.delivered, r.failed, r.unsubscribed,
                         r.opted_out, r.replies]


async def test_fax_line_filter(office) -> None:
    store, o = office
    doc = await run(store, o, "faxes", *SPRING, line="fax1", group_by="none")
    assert doc["totals"][1] == sum(1 for j in o.fax_jobs if j["line"] == "fax1"
                                   and j["state"] == "sent"
                                   and ex.within(j["created_at"], *SPRING))
    assert doc["totals"][4] == sum(1 for r in o.fax_received if r["line"] == "fax1"
                                   and r["ok"] and ex.within(r["received_at"], *SPRING))


@pytest.mark.parametrize("grouping", ["day", "hour"])
async def test_a_half_hour_zone(office, monkeypatch, grouping) -> None:
    """India's +05:30: buckets do not start on whole UTC hours, so the missed-call report
    reads every inbound row instead of counting hours in SQL; the same answers."""
    from zoneinfo import ZoneInfo

    store, o = office
    monkeypatch.setattr(ex, "TZ", ZoneInfo("Asia/Kolkata"))
    doc = await run(store, o, "missed_calls", *SPRING, hours=False, tz="Asia/Kolkata",
                    group_by=grouping)
    want = ex.missed(o, *SPRING, grouping, hours=False)
    got = table(doc)
    for k, f in want.items():
        same(got[k], ex.missed_row(k, f))
    assert got[min(got)][0].endswith(("-26", "T00:00"))

"""Every report query reads through an index: SQLite's EXPLAIN QUERY PLAN shows a SEARCH
(never a SCAN) of the large tables for a month's report."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.reports.calls_reports import CBM_FIELDS, LOAD_FIELDS, MISSED_FIELDS
from callcenter.store.sqlite_reports import CallWhere

LO, HI = "2026-03-01T00:00:00.000+00:00", "2026-04-01T00:00:00.000+00:00"
BIG = ("calls", "tasks", "sms_messages", "sms_parts", "fax_jobs", "fax_received",
       "interactions", "campaign_recipients", "custom_values", "clients")
WHERES = {
    "plain": CallWhere(LO, HI),
    "filtered": CallWhere(LO, HI, lines=("office",), dids=("+4930111",),
                          direction="inbound", client_id=3),
    "users and segment": CallWhere(LO, HI, users=(5, 6), segment=("segment", "vip")),
}


async def plan(store: Any, sql: str, params: list[Any]) -> list[str]:
    rows = await store._db.rows(f"EXPLAIN QUERY PLAN {sql}", params)
    return [r[3] for r in rows]


def scans(details: list[str]) -> list[str]:
    """The full scans of a large table (an alias such as "c" names its table in the SQL)."""
    out = []
    for d in details:
        words = d.split()
        if words[:1] == ["SCAN"] and len(words) > 1:
            out.append(d)
    return out


def assert_indexed(details: list[str], aliases: dict[str, str]) -> None:
    tables = {aliases.get(d.split()[1], d.split()[1]) for d in scans(details)}
    assert not tables & set(BIG), details
    assert any("INDEX" in d for d in details), details


CALL_ALIASES = {"c": "calls", "cl": "clients", "t": "tasks", "cv": "custom_values",
                "f": "custom_fields", "u": "users"}


@pytest.mark.parametrize("where", list(WHERES))
@pytest.mark.parametrize("fields", [CBM_FIELDS, MISSED_FIELDS, LOAD_FIELDS],
                         ids=["calls_by_manager", "missed_calls", "load"])
async def test_call_reports_search_the_time_index(office, where: str, fields) -> None:
    store, _o = office
    sql, params = store.report_calls_sql(WHERES[where], fields)
    details = await plan(store, sql, params)
    assert_indexed(details, CALL_ALIASES)
    assert any("calls_time" in d or "calls_client" in d for d in details), details
    # rows come in time order straight from the index: no sort of a month of calls
    if where == "plain":
        assert not any("TEMP B-TREE" in d for d in details), details


@pytest.mark.parametrize("where", list(WHERES))
async def test_hour_counts_search_the_time_index(office, where: str) -> None:
    store, _o = office
    sql, params = store.report_hour_counts_sql(WHERES[where])
    assert_indexed(await plan(store, sql, params), CALL_ALIASES)


@pytest.mark.parametrize("where", list(WHERES))
async def test_callbacks_search_the_tasks_index(office, where: str) -> None:
    store, _o = office
    sql, params = store.report_callbacks_sql(WHERES[where], HI)
    details = await plan(store, sql, params)
    assert_indexed(details, CALL_ALIASES)


@pytest.mark.parametrize(("manager", "client"), [(None, None), (5, None), (None, 3)])
async def test_open_callbacks_search_the_open_tasks(office, manager, client) -> None:
    store, _o = office
    sql, params = store.report_open_callbacks_sql(manager, client, 500)
    assert_indexed(await plan(store, sql, params), CALL_ALIASES)


async def test_sms_and_fax_reads_search_their_time_indexes(office) -> None:
    store, _o = office
    sql, params = store.report_sms_sql(1.7e9, 1.8e9)
    assert_indexed(await plan(store, sql, params), {})
    sql, params = store.report_fax_sql(LO, HI)
    details = await plan(store, sql, params)
    assert_indexed(details, {})
    assert any("fax_jobs_time" in d for d in details), details
    assert any("fax_received_time" in d for d in details), details


async def test_campaign_reply_reads_search_indexes(office) -> None:
    store, _o = office
    for sql in ("SELECT COALESCE(e164, number), created_at, text FROM sms_messages"
                " WHERE created_at > ? AND direction = 'in'",
                "SELECT campaign_id, COALESCE(e164, number), sent_at FROM sms_messages"
                " WHERE campaign_id IS NOT NULL AND direction = 'out' AND sent_at > ?"):
        assert_indexed(await plan(store, sql, [1.7e9]), {})

"""A report as ``ReportResult.to_json()`` gives it, with strangers' text in it."""

from __future__ import annotations

from typing import Any


def sample_report() -> dict[str, Any]:
    return {
        "name": "calls_by_manager",
        "filter": {"from": "2026-03-01", "to": "2026-03-31", "timezone": "Europe/Moscow",
                   "user_ids": [], "group_ids": [], "lines": [], "dids": [],
                   "direction": None, "segment": None, "client_id": None,
                   "group_by": "user"},
        "columns": [
            {"key": "bucket", "label": "report.col.user", "kind": "text"},
            {"key": "inbound_answered", "label": "report.col.inbound_answered",
             "kind": "int"},
            {"key": "talk_time", "label": "report.col.talk_time", "kind": "duration_s"},
            {"key": "own_client_share", "label": "report.col.own_client_share",
             "kind": "percent"},
            {"key": "last", "label": "report.col.last_contact", "kind": "datetime"},
            {"key": "state", "label": "report.col.state", "kind": "label"},
        ],
        "rows": [
            ["=HYPERLINK(\"http://evil\")", 12, 3725.5, 0.125, "2026-03-31T21:30:00.000+00:00",
             "report.state.done"],
            ["Мария Иванова", 3, None, None, None, "report.state.done"],
        ],
        "totals": [None, 15, 3725.5, 0.1, None, None],
        "chart": {"kind": "bar", "x": "bucket", "series": ["inbound_answered"], "y": None,
                  "value": None, "stacked": False},
        "sections": {
            "open_callbacks": {
                "columns": [{"key": "phone", "label": "report.col.phone", "kind": "text"},
                            {"key": "age", "label": "report.col.age", "kind": "duration_s"}],
                "rows": [["+79161234567", 90000.0], ["@SUM(A1)", 60.0]],
                "totals": None, "chart": None},
        },
        "generated_at": "2026-04-01T06:00:00.000+00:00",
    }


CATALOG = {"report.col.user": "Manager", "report.col.inbound_answered": "Inbound answered",
           "report.col.talk_time": "Talk time", "report.col.own_client_share": "Own clients",
           "report.col.last_contact": "Last contact", "report.col.state": "State",
           "report.state.done": "done", "report.total": "Total",
           "report.calls_by_manager": "Calls by manager",
           "report.section.open_callbacks": "Open callbacks", "report.col.phone": "Phone",
           "report.col.age": "Age", "report.unit.seconds": "s"}


def translate(key: str) -> str:
    return CATALOG.get(key, key)

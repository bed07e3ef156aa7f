"""Each report's columns and chart: the shape the console, exports and e-mail rely on.

The queries (callcenter/reports/queries_*.py) fill rows in exactly this column order.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.reports.model import (
    ChartKind,
    ChartSpec,
    Column,
    ColumnKind,
    Grouping,
    ReportName,
    col,
)

D, P, T, DT, L = (ColumnKind.DURATION_S, ColumnKind.PERCENT,
                  ColumnKind.TEXT, ColumnKind.DATETIME, ColumnKind.LABEL)

BUCKET = col("bucket", T)  # its label is report.col.<grouping>, see bucket_column()


def bucket_column(grouping: Grouping) -> Column:
    return Column("bucket", f"report.col.{grouping.value}", T)


@dataclass(frozen=True, slots=True)
class ReportSpec:
    name: ReportName
    columns: tuple[Column, ...]  # the first is the bucket when the report groups
    chart: ChartSpec
    groupings: tuple[Grouping, ...]  # allowed, the first is the default
    sections: dict[str, tuple[Column, ...]]

    def columns_for(self, grouping: Grouping) -> tuple[Column, ...]:
        if self.columns and self.columns[0].key == "bucket":
            return (bucket_column(grouping), *self.columns[1:])
        return self.columns


TIME = (Grouping.DAY, Grouping.HOUR, Grouping.WEEK, Grouping.MONTH)

CALLS_BY_MANAGER = ReportSpec(
    ReportName.CALLS_BY_MANAGER,
    (BUCKET, col("inbound_answered"), col("outbound"), col("outbound_answered"),
     col("talk_time", D), col("avg_answer", D), col("p90_answer", D),
     col("transfers_made"), col("transfers_received"), col("own_client_calls"),
     col("own_client_share", P)),
    ChartSpec(ChartKind.BAR, "bucket", ("inbound_answered", "outbound")),
    (Grouping.USER, *TIME, Grouping.NONE),
    {},
)

OPEN_CALLBACKS = (col("task_id"), col("phone", T), col("client", T), col("assignee", T),
                  col("created_at", DT), col("due_at", DT), col("age", D))

MISSED_CALLS = ReportSpec(
    ReportName.MISSED_CALLS,
    (BUCKET, col("inbound"), col("missed"), col("missed_rate", P), col("abandoned"),
     col("no_answer"), col("after_hours"), col("other_missed"), col("callbacks"),
     col("called_back"), col("callback_p50", D), col("callback_p90", D),
     col("within_sla", P)),
    ChartSpec(ChartKind.STACKED_BAR, "bucket",
              ("abandoned", "no_answer", "after_hours", "other_missed")),
    (*TIME, Grouping.LINE, Grouping.NONE),
    {"open_callbacks": OPEN_CALLBACKS},
)

LOAD_BY = (col("key", T), col("calls"), col("inbound"), col("outbound"), col("answered"),
           col("missed"), col("talk_time", D), col("peak_concurrent"), col("peak_at", DT))

LOAD = ReportSpec(
    ReportName.LOAD,
    # one row per (weekday, hour) cell, 7 x 24 rows; weekday 0 = Monday
    (col("weekday"), col("weekday_name", L), col("hour"), col("calls"), col("answered"),
     col("missed")),
    ChartSpec(ChartKind.HEATMAP, "hour", (), y="weekday_name", value="calls"),
    (Grouping.NONE,),
    {"per_line": LOAD_BY, "per_did": LOAD_BY, "per_queue": LOAD_BY, "peak": LOAD_BY},
)

SMS = ReportSpec(
    ReportName.SMS,
    # opted_out: recipients who opted out after this campaign's message; skipped_opted_out:
    # recipients already on the do-not-send list (never sent)
    (col("campaign_id"), col("campaign", T), col("state", L), col("recipients"), col("sent"),
     col("delivered"), col("failed"), col("opted_out"), col("skipped_opted_out"),
     col("replies"), col("delivered_rate", P)),
    ChartSpec(ChartKind.BAR, "campaign", ("sent", "delivered", "failed", "opted_out",
                                          "replies")),
    (Grouping.DAY, Grouping.HOUR, Grouping.WEEK, Grouping.MONTH, Grouping.NONE),  # "volume"
    {"per_modem": (col("modem", T), col("sent"), col("delivered"), col("failed"),
                   col("received"), col("failure_rate", P)),
     "volume": (BUCKET, col("sms_out"), col("sms_in"), col("sms_failed"))},
)

FAXES = ReportSpec(
    ReportName.FAXES,
    (BUCKET, col("sent"), col("sent_pages"), col("failed"), col("received"),
     col("received_pages"), col("received_failed")),
    ChartSpec(ChartKind.BAR, "bucket", ("sent_pages", "received_pages", "failed")),
    (*TIME, Grouping.LINE, Grouping.NONE),
    {"failures": (col("reason", L), col("direction", L), col("count"))},
)

CLIENT_SUMMARY = ReportSpec(
    ReportName.CLIENT_SUMMARY,
    (BUCKET, col("calls"), col("inbound"), col("outbound"), col("missed"),
     col("talk_time", D), col("sms_out"), col("sms_in"), col("faxes_sent"),
     col("faxes_received")),
    ChartSpec(ChartKind.BAR, "bucket", ("inbound", "outbound", "missed")),
    (Grouping.MONTH, Grouping.DAY, Grouping.WEEK, Grouping.NONE),
    {"summary": (col("client_id"), col("client", T), col("manager", T), col("calls"),
                 col("last_contact", DT), col("last_contact_kind", L), col("open_tasks"),
                 col("open_callbacks"))},
)

REPORTS: dict[ReportName, ReportSpec] = {s.name: s for s in (
    CALLS_BY_MANAGER, MISSED_CALLS, LOAD, SMS, FAXES, CLIENT_SUMMARY)}

"""The report contract: what a report is asked for (``ReportFilter``) and what it returns
(``ReportResult``). Everything that shows a report — the console's chart and table, the CSV
and XLSX exports, the scheduled e-mail — is built from ``ReportResult.to_json()`` alone, so the
same numbers appear everywhere.

API (``GET /api/reports/{name}``, ``name`` one of ``ReportName``) returns ``to_json()``
verbatim::

    {
      "name": "missed_calls",
      "filter": {                         # the filter as applied (defaults filled in)
        "from": "2026-03-01", "to": "2026-03-31",   # local dates, both inclusive
        "timezone": "Europe/Berlin",
        "user_ids": [], "group_ids": [], "lines": [], "dids": [],
        "direction": null,                # "inbound" | "outbound" | "internal" | null
        "segment": null,                  # {"field": "segment", "value": "vip"} | null
        "client_id": null,
        "group_by": "day"                 # a Grouping value
      },
      "columns": [                        # in row order
        {"key": "bucket", "label": "report.col.day", "kind": "text"},
        {"key": "missed", "label": "report.col.missed", "kind": "int"},
        {"key": "missed_rate", "label": "report.col.missed_rate", "kind": "percent"},
        ...
      ],
      "rows": [["2026-03-01", 12, 0.08, ...], ...],
      "totals": [null, 340, 0.07, ...] | null,   # same column order; null where no total
      "chart": {"kind": "bar", "x": "bucket", "series": ["missed", "abandoned"],
                "y": null, "value": null, "stacked": false},
      "sections": {"open_callbacks": {...a nested result of the same shape...}},
      "generated_at": "2026-03-31T22:00:00.000+00:00"
    }

Values by ``ColumnKind``:

* ``int``        — a whole number.
* ``duration_s`` — seconds as a number (float, 1 decimal) or null when there is nothing to
  measure (e.g. no answered call → no average time to answer). Show as m:ss / h:mm:ss.
* ``percent``    — a ratio 0..1 (float, 4 decimals) or null when the denominator is 0. Show ×100.
* ``text``       — a string (bucket labels, names, reasons). User-entered text (names,
  campaign names) is raw: escape it where shown.
* ``datetime``   — an ISO-8601 UTC instant string or null. Show in the office time zone.
* ``label``      — a string that is an i18n key (``report.reason.abandoned``): translate it.

Bucket labels of time groupings (column ``bucket``): ``hour`` → ``"2026-03-29T03:00"`` (local,
hour start), ``day`` → ``"2026-03-29"``, ``week`` → ``"2026-W13"`` (ISO week),
``month`` → ``"2026-03"``; ``user``/``line`` groupings put the user's name / the line in it.

``chart.kind``: ``bar``, ``line``, ``stacked-bar`` (``x`` + ``series`` column keys) or
``heatmap`` (``x``, ``y`` and ``value`` column keys, one row per cell).

i18n keys the console translates: ``report.name.<name>``, ``report.col.<column key>``
(``report.col.<grouping>`` for the bucket column), ``report.section.<section key>``, and the
``label`` values: ``report.weekday.<mon..sun>``, ``report.campaign_state.<state>``,
``report.fax_reason.<result key>`` (callcenter/faxes/words.py keys, ``receive_failed``,
``unknown``), ``report.fax_direction.<sent|received>``, ``report.kind.<call|sms|fax|note>``.

Rights (callcenter/reports/service.py): admins and supervisors open every report;
secretaries missed calls, load and a client's summary; managers calls by manager (their own
row only), missed calls (their clients' calls and the calls they took) and the summary of
their own clients. A report the role may not open is a PermissionDenied (HTTP 403).

``sections`` holds secondary tables of the same shape (without their own filter/sections),
e.g. the still-open callbacks under the missed-call report, the per-modem table under the SMS
report. Keys are stable identifiers; their label key is ``report.section.<key>``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any


class ReportName(enum.StrEnum):
    CALLS_BY_MANAGER = "calls_by_manager"
    MISSED_CALLS = "missed_calls"
    LOAD = "load"
    SMS = "sms"
    FAXES = "faxes"
    CLIENT_SUMMARY = "client_summary"


class Grouping(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    USER = "user"
    LINE = "line"
    NONE = "none"


class ColumnKind(enum.StrEnum):
    INT = "int"
    DURATION_S = "duration_s"
    PERCENT = "percent"
    TEXT = "text"
    DATETIME = "datetime"
    LABEL = "label"  # an i18n key to translate


class ChartKind(enum.StrEnum):
    BAR = "bar"
    LINE = "line"
    HEATMAP = "heatmap"
    STACKED_BAR = "stacked-bar"


@dataclass(frozen=True, slots=True)
class Segment:
    """A client custom field and the value it must have (``segment=field:value``)."""

    field: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value}


@dataclass(frozen=True, slots=True)
class ReportFilter:
    start: date  # first local day, inclusive
    end: date  # last local day, inclusive
    timezone: str = "UTC"  # the office's zone (config [reports] timezone)
    user_ids: tuple[int, ...] = ()
    group_ids: tuple[int, ...] = ()  # secretary groups: their members count as user_ids
    lines: tuple[str, ...] = ()
    dids: tuple[str, ...] = ()  # the number called (DID) of an inbound call
    direction: str | None = None  # a callcenter.line_events.Direction value
    segment: Segment | None = None
    client_id: int | None = None  # client_summary (and a filter for the others)
    group_by: Grouping = Grouping.DAY

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "timezone": self.timezone, "user_ids": list(self.user_ids),
            "group_ids": list(self.group_ids), "lines": list(self.lines),
            "dids": list(self.dids), "direction": self.direction,
            "segment": self.segment.to_json() if self.segment else None,
            "client_id": self.client_id, "group_by": self.group_by.value,
        }


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str  # i18n key, e.g. "report.col.answered"
    kind: ColumnKind = ColumnKind.INT

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "kind": self.kind.value}


@dataclass(frozen=True, slots=True)
class ChartSpec:
    kind: ChartKind
    x: str  # column key
    series: tuple[str, ...] = ()  # column keys (bar/line/stacked-bar)
    y: str | None = None  # heatmap: the row-axis column key
    value: str | None = None  # heatmap: the cell value column key

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "x": self.x, "series": list(self.series),
                "y": self.y, "value": self.value,
                "stacked": self.kind is ChartKind.STACKED_BAR}


def col(key: str, kind: ColumnKind = ColumnKind.INT, label: str | None = None) -> Column:
    return Column(key, label or f"report.col.{key}", kind)


def _cell(kind: ColumnKind, value: Any) -> Any:
    if value is None:
        return None
    if kind is ColumnKind.INT:
        return int(value)
    if kind is ColumnKind.DURATION_S:
        return round(float(value), 1)
    if kind is ColumnKind.PERCENT:
        return round(float(value), 4)
    if kind is ColumnKind.DATETIME and isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    return value


@dataclass(slots=True)
class Table:
    """Columns and rows: a section, and the body of a result."""

    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    totals: tuple[Any, ...] | None = None
    chart: ChartSpec | None = None

    def to_json(self) -> dict[str, Any]:
        kinds = [c.kind for c in self.columns]
        return {
            "columns": [c.to_json() for c in self.columns],
            "rows": [[_cell(k, v) for k, v in zip(kinds, r, strict=True)] for r in self.rows],
            "totals": None if self.totals is None else
            [_cell(k, v) for k, v in zip(kinds, self.totals, strict=True)],
            "chart": self.chart.to_json() if self.chart else None,
        }


@dataclass(slots=True)
class ReportResult:
    name: ReportName
    filter: ReportFilter
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    chart: ChartSpec
    totals: tuple[Any, ...] | None = None
    sections: dict[str, Table] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def column(self, key: str) -> list[Any]:
        """The values of one column (tests, exports)."""
        i = [c.key for c in self.columns].index(key)
        return [r[i] for r in self.rows]

    def to_json(self) -> dict[str, Any]:
        body = Table(self.columns, self.rows, self.totals, self.chart).to_json()
        return {
            "name": self.name.value,
            "filter": self.filter.to_json(),
            **body,
            "sections": {k: t.to_json() for k, t in self.sections.items()},
            "generated_at": self.generated_at.astimezone(UTC).isoformat(timespec="milliseconds"),
        }

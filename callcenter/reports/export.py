"""A report as CSV and as XLSX, built from ``ReportResult.to_json()`` like the console's chart
and table, so a figure is the same everywhere.

* CSV: UTF-8 with a byte-order mark (Excel opens it as UTF-8 then, Cyrillic included), CRLF
  rows, the column labels in the reader's language. Durations are seconds and percents are
  ×100, plain numbers a spreadsheet can sum (the header says the unit). A text cell starting
  with = + - @ (or tab, CR, LF; also behind blanks, and their fullwidth forms) gets a
  leading apostrophe: a client named "=HYPERLINK(...)"
  stays text (OWASP "CSV injection").
* XLSX (openpyxl, already the import's library): real numbers with number formats —
  durations as [h]:mm:ss (a day fraction, as spreadsheets count time), percents as 0.0%,
  instants in the office's time zone as dates; text cells are typed as strings, never formulas.
  One sheet for the report, one for each section (open callbacks, per modem, ...).

Labels are i18n keys; ``translate`` turns them into the reader's words (the UI's catalogs).
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

Translate = Callable[[str], str]
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
DURATION_FORMAT = "[h]:mm:ss"
PERCENT_FORMAT = "0.0%"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
INT_FORMAT = "0"


def no_translation(key: str) -> str:
    return key


def safe_cell(value: Any) -> Any:
    """A string from outside made harmless for a spreadsheet; numbers pass unchanged."""
    if isinstance(value, str) and (value.startswith(_FORMULA_START)
                                   or _lead(value).startswith(_FORMULA_START)):
        return "'" + value
    return value


def _lead(text: str) -> str:
    # Spreadsheets skip blanks (a no-break or ideographic space too) and control characters
    # before they look for a formula sign: " =1+1" is a formula to them.
    i = 0
    while i < len(text) and (text[i].isspace() or unicodedata.category(text[i]) == "Cc"):
        i += 1
    return text[i:]


def filename(report: Mapping[str, Any], extension: str) -> str:
    """``missed_calls_2026-03-01_2026-03-31.xlsx``: only letters, digits, ``._-``, so no
    quote, slash or newline can reach a Content-Disposition header or a mail client."""
    flt = report.get("filter") or {}
    stem = "_".join(str(part) for part in (report.get("name", "report"), flt.get("from"),
                                           flt.get("to")) if part)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "report"
    return f"{stem[:100]}.{extension}"


def content_disposition(name: str) -> str:
    return f'attachment; filename="{name}"'


def _tables(report: Mapping[str, Any], translate: Translate
            ) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(sheet key, title, table): the report itself, then its sections in order."""
    name = report.get("name", "report")
    yield name, translate(f"report.{name}"), report
    for key, section in (report.get("sections") or {}).items():
        yield key, translate(f"report.section.{key}"), section


def _header(column: Mapping[str, Any], translate: Translate, csv_units: bool) -> str:
    label = translate(column["label"])
    if csv_units and column["kind"] == "duration_s":
        return f"{label}, {translate('report.unit.seconds')}"
    if csv_units and column["kind"] == "percent":
        return f"{label}, %"
    return label


def _local(value: str | None, zone: ZoneInfo) -> datetime | None:
    if not value:
        return None
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(zone)


def _zone(report: Mapping[str, Any]) -> ZoneInfo:
    name = (report.get("filter") or {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _csv_value(kind: str, value: Any, zone: ZoneInfo, translate: Translate) -> Any:
    if value is None:
        return ""
    if kind == "percent":
        return round(float(value) * 100, 2)
    if kind == "duration_s":
        return value
    if kind == "datetime":
        local = _local(value, zone)
        return local.strftime("%Y-%m-%d %H:%M:%S") if local else ""
    if kind == "label":
        return safe_cell(translate(str(value)))
    if kind == "text":
        return safe_cell(str(value))
    return safe_cell(value)  # a number passes; a stranger's string in any column is text


def _total_row(table: Mapping[str, Any], translate: Translate) -> list[Any] | None:
    totals = table.get("totals")
    if totals is None:
        return None
    row = list(totals)
    if row and row[0] is None and table["columns"][0]["kind"] in ("text", "label"):
        row[0] = "report.total"  # a label: translated like the other label cells
        return row
    return row


def to_csv(report: Mapping[str, Any], translate: Translate = no_translation) -> bytes:
    """The report and its sections, each under a title line, in one UTF-8 (BOM) file."""
    zone = _zone(report)
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    for i, (_key, title, table) in enumerate(_tables(report, translate)):
        columns = table["columns"]
        kinds = [c["kind"] for c in columns]
        if i:
            writer.writerow([])
            writer.writerow([safe_cell(title)])
        writer.writerow([safe_cell(_header(c, translate, True)) for c in columns])
        for row in table["rows"]:
            writer.writerow([_csv_value(k, v, zone, translate) for k, v in zip(kinds, row,
                                                                              strict=True)])
        total = _total_row(table, translate)
        if total is not None:
            kinds_total = ["label", *kinds[1:]] if total[0] == "report.total" else kinds
            writer.writerow([_csv_value(k, v, zone, translate)
                             for k, v in zip(kinds_total, total, strict=True)])
    return out.getvalue().encode("utf-8")


def _sheet_title(text: str, used: set[str]) -> str:
    # Excel: at most 31 characters, none of []:*?/\ , unique ignoring case.
    title = re.sub(r"[\[\]:*?/\\]", " ", text).strip()[:31] or "Sheet"
    base, n = title, 2
    while title.lower() in used:
        suffix = f" ({n})"
        title = base[:31 - len(suffix)] + suffix
        n += 1
    used.add(title.lower())
    return title


def _xlsx_cell(sheet: Any, kind: str, value: Any, zone: ZoneInfo, translate: Translate
               ) -> WriteOnlyCell:
    if value is None:
        return WriteOnlyCell(sheet, value=None)
    if kind == "duration_s":
        cell = WriteOnlyCell(sheet, value=float(value) / 86400)
        cell.number_format = DURATION_FORMAT
    elif kind == "percent":
        cell = WriteOnlyCell(sheet, value=float(value))
        cell.number_format = PERCENT_FORMAT
    elif kind == "int":
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = INT_FORMAT
    elif kind == "datetime":
        local = _local(value, zone)
        # Spreadsheets have no time zones: the office's wall-clock time, as on screen.
        cell = WriteOnlyCell(sheet, value=local.replace(tzinfo=None) if local else None)
        cell.number_format = DATETIME_FORMAT
    else:
        text = translate(str(value)) if kind == "label" else str(value)
        cell = WriteOnlyCell(sheet, value=text)
    if isinstance(cell.value, str):
        cell.data_type = "s"  # a string cell, never a formula, whatever it starts with
    return cell


def to_xlsx(report: Mapping[str, Any], translate: Translate = no_translation) -> bytes:
    zone = _zone(report)
    book = Workbook(write_only=True)
    used: set[str] = set()
    bold = Font(bold=True)
    for _key, title, table in _tables(report, translate):
        sheet = book.create_sheet(_sheet_title(title, used))
        columns = table["columns"]
        kinds = [c["kind"] for c in columns]
        sheet.freeze_panes = "A2"
        for i, column in enumerate(columns, start=1):
            width = max(10, min(40, len(translate(column["label"])) + 2))
            sheet.column_dimensions[get_column_letter(i)].width = width
        header = []
        for column in columns:
            cell = WriteOnlyCell(sheet, value=_header(column, translate, False))
            cell.data_type = "s"
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in table["rows"]:
            sheet.append([_xlsx_cell(sheet, k, v, zone, translate)
                          for k, v in zip(kinds, row, strict=True)])
        total = _total_row(table, translate)
        if total is not None:
            kinds_total = ["label", *kinds[1:]] if total[0] == "report.total" else kinds
            cells = [_xlsx_cell(sheet, k, v, zone, translate)
                     for k, v in zip(kinds_total, total, strict=True)]
            for cell in cells:
                cell.font = bold
            sheet.append(cells)
    if not used:
        book.create_sheet("Sheet")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def period_text(report: Mapping[str, Any]) -> str:
    flt = report.get("filter") or {}
    start, end = flt.get("from"), flt.get("to")
    if start and end and start != end:
        return f"{date.fromisoformat(start):%d.%m.%Y} – {date.fromisoformat(end):%d.%m.%Y}"
    return f"{date.fromisoformat(start):%d.%m.%Y}" if start else ""


def format_value(kind: str, value: Any, zone: ZoneInfo, translate: Translate) -> str:
    """A figure as the console shows it (used in the e-mail body)."""
    if value is None:
        return "—"
    if kind == "duration_s":
        seconds = max(0, math.floor(float(value) + 0.5))  # half up, as the console's Math.round
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
    if kind == "percent":
        return f"{float(value) * 100:.1f} %"
    if kind == "datetime":
        local = _local(value, zone)
        return local.strftime("%Y-%m-%d %H:%M") if local else "—"
    if kind == "label":
        return translate(str(value))
    return str(value)


def summary_lines(report: Mapping[str, Any], translate: Translate) -> list[tuple[str, str]]:
    """(label, figure) of the report's totals: what the e-mail body lists."""
    zone = _zone(report)
    totals = report.get("totals")
    if totals is None:
        return [(translate("report.rows"), str(len(report.get("rows") or [])))]
    return [(translate(c["label"]), format_value(c["kind"], v, zone, translate))
            for c, v in zip(report["columns"], totals, strict=True) if v is not None]

"""CSV and XLSX of a report: the same figures as the JSON, typed numbers, strangers' text
kept as text, the reader's language in the headers."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from openpyxl import load_workbook

from callcenter.reports import export
from tests.reports_ui.sample import sample_report, translate


def test_csv_is_utf8_with_bom_translated_and_formula_safe() -> None:
    data = export.to_csv(sample_report(), translate)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["Manager", "Inbound answered", "Talk time, s", "Own clients, %",
                       "Last contact", "State"]
    # the client-controlled name is text to a spreadsheet, figures are plain numbers
    assert rows[1] == ["'=HYPERLINK(\"http://evil\")", "12", "3725.5", "12.5",
                       "2026-04-01 00:30:00", "done"]  # Moscow is UTC+3
    assert rows[2] == ["Мария Иванова", "3", "", "", "", "done"]
    assert rows[3] == ["Total", "15", "3725.5", "10.0", "", ""]
    assert rows[4] == []
    assert rows[5] == ["Open callbacks"]
    assert rows[6] == ["Phone", "Age, s"]
    assert rows[7] == ["'+79161234567", "90000.0"]
    assert rows[8] == ["'@SUM(A1)", "60.0"]


def test_xlsx_has_numbers_with_formats_and_string_cells() -> None:
    book = load_workbook(io.BytesIO(export.to_xlsx(sample_report(), translate)))
    assert book.sheetnames == ["Calls by manager", "Open callbacks"]
    sheet = book["Calls by manager"]
    header = [c.value for c in sheet[1]]
    assert header == ["Manager", "Inbound answered", "Talk time", "Own clients",
                      "Last contact", "State"]
    name, answered, talk, share, last, state = sheet[2]
    assert name.value == '=HYPERLINK("http://evil")' and name.data_type == "s"
    assert answered.value == 12 and answered.data_type == "n"
    # a real duration: openpyxl reads the [h]:mm:ss number back as a timedelta
    assert abs(talk.value.total_seconds() - 3725.5) < 1e-3 and talk.number_format == "[h]:mm:ss"
    assert share.value == 0.125 and share.number_format == "0.0%"
    assert last.value == datetime(2026, 4, 1, 0, 30)
    assert last.number_format == "yyyy-mm-dd hh:mm"
    assert state.value == "done"
    totals = [c.value for c in sheet[4]]
    assert totals[:2] == ["Total", 15] and totals[3] == 0.1
    callbacks = book["Open callbacks"]
    assert callbacks["A2"].value == "+79161234567" and callbacks["A2"].data_type == "s"
    assert callbacks["A3"].value == "@SUM(A1)" and callbacks["A3"].data_type == "s"
    assert callbacks["B2"].value == timedelta(hours=25)


def test_filename_is_sanitised() -> None:
    report = sample_report()
    assert export.filename(report, "csv") == "calls_by_manager_2026-03-01_2026-03-31.csv"
    report["name"] = 'x"; rm -rf /\r\nSet-Cookie: a=b'
    name = export.filename(report, "xlsx")
    assert name.endswith(".xlsx")
    assert all(ch.isalnum() or ch in "._-" for ch in name)
    assert export.content_disposition(name) == f'attachment; filename="{name}"'


def test_summary_lines_show_the_totals_as_the_console_does() -> None:
    assert export.summary_lines(sample_report(), translate) == [
        ("Inbound answered", "15"), ("Talk time", "1:02:06"), ("Own clients", "10.0 %")]


def test_csv_formula_behind_leading_whitespace_or_in_any_column_stays_text() -> None:
    # Spreadsheets skip leading blanks before evaluating: " =1+1" and "\u00a0=1+1" are formulas
    # to LibreOffice and Excel, as are fullwidth signs some IMEs produce.
    for text in (" =1+1", "  +cmd|' /C calc'!A0", "\u00a0=1+1", "\u3000@SUM(A1)",
                 "\uff1d1+1", "\x0b=1", "\x00=1"):
        assert export.safe_cell(text).startswith("'"), repr(text)
    for text in ("Иван", "1 = 1", "a-b", "", "12"):
        assert export.safe_cell(text) == text
    report = sample_report()
    report["columns"][1]["kind"] = "int"
    report["rows"][0][1] = "=EVIL()"  # a stranger's string in a column typed as a number
    rows = list(csv.reader(io.StringIO(export.to_csv(report, translate).decode("utf-8-sig"))))
    assert rows[1][1] == "'=EVIL()"


def test_xlsx_never_writes_a_formula_whatever_the_column_kind() -> None:
    report = sample_report()
    report["columns"][1]["kind"] = "int"
    report["rows"][0][1] = "=EVIL()"
    sheet = load_workbook(io.BytesIO(export.to_xlsx(report, translate)))["Calls by manager"]
    assert sheet["B2"].value == "=EVIL()" and sheet["B2"].data_type == "s"


def test_durations_round_half_up_as_the_console_does() -> None:
    # the console's Math.round: 86.5 s is 1:27 there, so in the mail too (not banker's 1:26)
    zone = export.ZoneInfo("UTC")
    assert export.format_value("duration_s", 86.5, zone, str) == "1:27"
    assert export.format_value("duration_s", 3599.5, zone, str) == "1:00:00"

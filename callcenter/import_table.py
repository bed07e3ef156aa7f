"""Reading the table of ``callcenter import clients FILE``: a CSV or XLSX file in, text cells out.

CSV files come from every spreadsheet and every office: the encoding is detected (UTF-8 first,
then charset-normalizer; the choice is reported), a UTF-8 file with a few stray bytes is refused
rather than read as cp1251, NUL bytes are refused, and the delimiter is sniffed.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
SNIFF_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_RECORDS = 50


class ImportingError(Exception):
    """Base of the errors that stop an import before any row is looked at."""


class ImportFileError(ImportingError):
    """The file cannot be read as a table; the message names the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(slots=True)
class Table:
    columns: list[str]
    # (row number a human sees in the file: CSV line where the record starts / Excel row, cells)
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    encoding: str = ""  # CSV only: "utf-8 (detected)", "cp1251 (given)", ...


def read_table(path: Path, *, delimiter: str | None = None, encoding: str | None = None,
               sheet: str | None = None) -> Table:
    """Read a CSV or XLSX file into header names and text cells.

    The first non-blank row is the header; blank rows are skipped but still counted, so row
    numbers keep matching what a spreadsheet or an editor shows. Cells are stripped.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        if delimiter is not None or encoding is not None:
            raise ImportFileError(path, "--delimiter and --encoding apply to CSV files only")
        return _read_xlsx(path, sheet)
    if suffix in CSV_SUFFIXES:
        if sheet is not None:
            raise ImportFileError(path, "--sheet applies to XLSX files only")
        return _read_csv(path, delimiter, encoding)
    if suffix == ".xls":
        raise ImportFileError(path, "the old Excel .xls format is not supported; "
                                    "save the file as .xlsx or CSV")
    supported = ", ".join(sorted(CSV_SUFFIXES | XLSX_SUFFIXES))
    raise ImportFileError(path, f"unknown file type {suffix or '(no extension)'!r}; "
                                f"expected one of {supported}")


def _read_csv(path: Path, delimiter: str | None, encoding: str | None) -> Table:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    text, how = _decode(path, data, encoding)
    if not text.strip():
        raise ImportFileError(path, "the file is empty")
    delimiter = _sniff_delimiter(text) if delimiter is None else _parse_delimiter(path, delimiter)
    records: list[tuple[int, list[str]]] = []
    # newline="" keeps quoted line breaks inside the record, as the csv module requires.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            records.append((start, [_clean_cell(cell) for cell in cells]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(path, f"line {reader.line_num}: not a valid CSV file ({exc})") \
            from exc
    table = _table_from_records(path, records)
    table.encoding = how
    return table


def _decode(path: Path, data: bytes, encoding: str | None) -> tuple[str, str]:
    """The text of the file and how it was read ("cp1251 (detected)")."""
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError as exc:
            raise ImportFileError(path, f"unknown encoding {encoding!r}") from exc
        # An explicit "utf-8" should still tolerate the BOM Excel puts in front of CSV exports.
        if name == "utf-8":
            name = "utf-8-sig"
        try:
            text = data.decode(name)
        except UnicodeDecodeError as exc:
            raise ImportFileError(path, f"is not valid {encoding} text "
                                        f"(byte {exc.start}: {exc.reason})") from exc
        _refuse_nul(path, text)
        return text, f"{encoding} (given)"
    if not data.startswith(_WIDE_BOMS):
        # A NUL is never part of a narrow-encoded CSV: it is a binary file, or UTF-16 without
        # its byte-order mark; decoding it as anything would import garbage.
        _refuse_nul(path, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    else:
        _refuse_nul(path, text)
        return text, "utf-8 (detected)"
    _refuse_stray_bytes(path, data)
    from charset_normalizer import from_bytes  # deferred: only non-UTF-8 files need it

    best = from_bytes(data).best()
    if best is None:
        raise ImportFileError(path, "the text encoding cannot be told; pass --encoding "
                                    "(for example --encoding cp1251)")
    name = codecs.lookup(best.encoding).name
    text = data.decode(name)
    _refuse_nul(path, text)
    return text, f"{name} (detected)"


_WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
              codecs.BOM_UTF32_BE)


def _refuse_nul(path: Path, data: bytes | str) -> None:
    at = data.find(b"\0" if isinstance(data, bytes) else "\0")
    if at >= 0:
        line = data.count(b"\n" if isinstance(data, bytes) else "\n", 0, at) + 1
        raise ImportFileError(path, f"contains a NUL byte (line {line}, byte {at}): not a text "
                                    "CSV file; save it as CSV (UTF-8) and try again")


def _refuse_stray_bytes(path: Path, data: bytes) -> None:
    """Text that is UTF-8 but for a few bytes is a damaged UTF-8 file, not cp1251: reading
    the whole file in another encoding would garble every Cyrillic name in it."""
    # surrogateescape turns each undecodable byte into one lone surrogate: one pass, and the
    # positions stay countable in lines.
    text = data.decode("utf-8", "surrogateescape")
    bad = [m.start() for m in _ESCAPED.finditer(text)]
    wide = sum(1 for ch in text if ord(ch) > 0x7F) - len(bad)  # characters decoded fine
    if bad and len(bad) * 20 <= wide:
        line = text.count("\n", 0, bad[0]) + 1
        raise ImportFileError(
            path, f"is UTF-8 text except for {len(bad)} invalid byte(s), the first on line "
                  f"{line}; fix the file, or pass --encoding if it is not UTF-8")


_ESCAPED = re.compile("[\udc80-\udcff]")


def _parse_delimiter(path: Path, delimiter: str) -> str:
    # Shells make a literal tab awkward to type, so accept the usual spellings of it.
    spelled = {"\\t": "\t", "tab": "\t", "tabs": "\t"}.get(delimiter.lower(), delimiter)
    if len(spelled) != 1 or spelled in "\"\r\n":
        raise ImportFileError(path, f"delimiter must be a single character, not {delimiter!r}")
    return spelled


def _sniff_delimiter(text: str) -> str:
    """Pick the candidate that splits the first records into the most consistent columns.

    csv.Sniffer guesses from character frequencies and is easily fooled by commas inside
    quoted company names; parsing with each candidate and checking that rows agree with the
    header width is slower but reliable on the files people actually export.
    """
    best, best_score = ",", (0.0, 0)
    for candidate in SNIFF_DELIMITERS:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=candidate)
        try:
            records = [r for r in islice(reader, _SNIFF_RECORDS) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        agreeing = sum(1 for r in records if len(r) == width) / len(records)
        score = (agreeing, width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _read_xlsx(path: Path, sheet: str | None) -> Table:
    import openpyxl  # deferred: it is slow to import and CSV imports never need it
    from openpyxl.utils.exceptions import InvalidFileException

    if not path.is_file():
        raise ImportFileError(path, "no such file")
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and data validation it does not support; harmless.
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ImportFileError(path, f"is not a readable .xlsx workbook ({exc})") from exc
    try:
        worksheet = _pick_sheet(path, workbook, sheet)
        # Some generators write a wrong <dimension>; without it openpyxl reads every row.
        worksheet.reset_dimensions()
        records: list[tuple[int, list[str]]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                records.append((number, [_excel_text(value) for value in values]))
    except ImportingError:
        raise
    except Exception as exc:  # a damaged sheet XML surfaces as any of lxml/zip/value errors
        raise ImportFileError(path, f"cannot read the worksheet ({exc})") from exc
    finally:
        workbook.close()
    return _table_from_records(path, records)


def _pick_sheet(path: Path, workbook: Any, sheet: str | None) -> Any:
    worksheets = list(workbook.worksheets)
    if not worksheets:
        raise ImportFileError(path, "the workbook has no worksheets")
    if sheet is None:
        return worksheets[0]
    names = [ws.title for ws in worksheets]
    for ws in worksheets:
        if ws.title == sheet:
            return ws
    for ws in worksheets:
        if ws.title.casefold().strip() == sheet.casefold().strip():
            return ws
    raise ImportFileError(path, f"no sheet named {sheet!r}; sheets: {', '.join(names)}")


def _excel_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        # Excel stores every number as a double, so a phone typed as 79161234567 comes back
        # as 79161234567.0; anything integral is written without the fraction.
        if value.is_integer():
            return str(int(value))
        return f"{value:.15g}"  # Excel shows 15 significant digits; avoid 0.30000000000000004
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return _clean_cell(str(value))


def _clean_cell(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _table_from_records(path: Path, records: Sequence[tuple[int, list[str]]]) -> Table:
    records = [(number, cells) for number, cells in records if any(cells)]
    if not records:
        raise ImportFileError(path, "the file is empty")
    (_, header), body = records[0], records[1:]
    width = max(len(cells) for _, cells in records)
    columns = _unique_columns([*header, *([""] * (width - len(header)))])
    rows = [
        (number, {column: cells[i] if i < len(cells) else "" for i, column in enumerate(columns)})
        for number, cells in body
    ]
    return Table(columns=columns, rows=rows)


def _unique_columns(header: Sequence[str]) -> list[str]:
    """Give blank headers a name and make repeated ones distinct ("Phone", "Phone (2)")."""
    columns: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(header, start=1):
        base = " ".join(raw.split()) or f"Column {index}"
        name, copy = base, 1
        while name.casefold() in seen:
            copy += 1
            name = f"{base} ({copy})"
        seen.add(name.casefold())
        columns.append(name)
    return columns

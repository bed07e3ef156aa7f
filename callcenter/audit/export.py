"""The audit log as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from callcenter.audit.model import AuditEntry

COLUMNS = ("at", "actor", "actor_id", "address", "action", "target_kind", "target_id",
           "before", "after")
# A cell starting with one of these is a formula to Excel and LibreOffice (and tab or CR
# start one after a paste): such cells get a leading apostrophe, so a login or a client name
# such as "=HYPERLINK(...)" stays text (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _side(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True,
                                               default=str)


def to_csv(entries: Iterable[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for e in entries:
        writer.writerow([safe_cell(v) for v in (
            e.at.isoformat(timespec="seconds"), e.actor_label, e.actor_id, e.address, e.action,
            e.target_kind, e.target_id, _side(e.before), _side(e.after))])
    return out.getvalue()

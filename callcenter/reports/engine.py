"""Dispatch a report to its query (stub until the queries land)."""

from __future__ import annotations

from typing import Any

from callcenter.reports.model import ReportFilter, ReportName, ReportResult
from callcenter.reports.registry import REPORTS


async def run_report(service: Any, name: ReportName, f: ReportFilter, scope: Any
                     ) -> ReportResult:
    spec = REPORTS[name]
    return ReportResult(name, f, spec.columns_for(f.group_by), [], spec.chart)

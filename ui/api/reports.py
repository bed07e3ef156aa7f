"""Reports: ``GET /api/reports`` (the ones the user may open) and ``GET /api/reports/{name}``
(one report as ``ReportResult.to_json()``, see callcenter/reports/model.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, create_model
from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.reports.filters import PARAMS
from callcenter.reports.model import ColumnKind, Grouping, ReportName
from callcenter.reports.registry import REPORTS
from callcenter.reports.service import ReportService, reports_for
from ui.api.common import current_user, ok, query_of, services
from ui.api.models import Query


def report_service(request: Request) -> ReportService:
    return services(request).reports


async def list_reports(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = report_service(request)
    return ok({"timezone": svc.timezone, "callback_sla_minutes": svc.callback_sla_minutes,
               "reports": [{
                   "name": name.value, "label": f"report.name.{name.value}",
                   "groupings": [g.value for g in REPORTS[name].groupings],
                   "sections": sorted(REPORTS[name].sections)} for name in reports_for(user)]})


async def get_report(request: Request) -> JSONResponse:
    user = await current_user(request)
    query_of(request, ReportQuery)  # unknown parameters, NUL characters, sizes
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    result = await report_service(request).run_query(user, request.path_params["name"], query)
    return JSONResponse(result.to_json())


_DESCRIPTIONS = {
    "from": "first day, YYYY-MM-DD (default: the 1st of to's month)",
    "to": "last day, YYYY-MM-DD (default: today)",
    "user": "user ids, comma-separated", "group": "secretary group ids (their members)",
    "line": "line names", "did": "numbers called (DIDs) of inbound calls",
    "direction": "inbound, outbound or internal",
    "segment": "a client custom field and its value, field:value",
    "client": "a client id (client_summary needs it)",
    "group_by": "bucket rows by: " + ", ".join(g.value for g in Grouping),
}
# The query string as documented; the values are checked by parse_filter (clear sentences).
ReportQuery = create_model(  # "from" is a Python keyword: no class statement
    "ReportQuery", __base__=Query,
    **{name: (Annotated[str | None, Field(description=_DESCRIPTIONS[name],
                                          max_length=4000)], None) for name in PARAMS})


_COLUMN = {"type": "object", "required": ["key", "label", "kind"], "properties": {
    "key": {"type": "string"}, "label": {"type": "string", "description": "i18n key"},
    "kind": {"enum": [k.value for k in ColumnKind]}}}
_TABLE = {
    "columns": {"type": "array", "items": _COLUMN},
    "rows": {"type": "array", "items": {"type": "array"},
             "description": "one array per row, values in column order"},
    "totals": {"type": ["array", "null"]},
    "chart": {"type": ["object", "null"], "properties": {
        "kind": {"enum": ["bar", "line", "heatmap", "stacked-bar"]}, "x": {"type": "string"},
        "series": {"type": "array", "items": {"type": "string"}},
        "y": {"type": ["string", "null"]}, "value": {"type": ["string", "null"]},
        "stacked": {"type": "boolean"}}},
}
REPORT_SCHEMA = {"type": "object", "required": ["name", "filter", "columns", "rows"],
                 "properties": {
                     "name": {"enum": [n.value for n in ReportName]},
                     "filter": {"type": "object", "description": "the filter as applied"},
                     **_TABLE,
                     "sections": {"type": "object", "additionalProperties": {
                         "type": "object", "properties": _TABLE}},
                     "generated_at": {"type": "string", "format": "date-time"}}}

REPORT_OPENAPI: dict[str, Any] = {
    "description": "Periods are local dates in the office's time zone (both inclusive); "
                   "list filters take comma-separated values or repeat the parameter. A bad "
                   "filter is a 400 naming it; a report the user's role may not open is a 403. "
                   "Managers get their own figures and their clients' calls only.",
    "responses": {"200": {"description": "the report", "content": {
        "application/json": {"schema": REPORT_SCHEMA}}},
        "default": {"description": "error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
}

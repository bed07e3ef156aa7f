"""Report exports (``GET /api/reports/{name}.csv`` / ``.xlsx``, the JSON route's filters and
rights) and the scheduled-report administration (admin only, audited)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callcenter.errors import LineUnavailable
from callcenter.reports import export
from callcenter.reports.schedule import validate
from callcenter.reports.scheduling import ReportSchedules
from ui.api.audit import actor
from ui.api.common import admin, body_of, current_user, ok, path_id, query_of, services
from ui.api.models import Body
from ui.api.reports import ReportQuery, report_service
from ui.i18n_catalog import translator

Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


async def _result(request: Request) -> tuple[dict, object]:
    user = await current_user(request)
    query_of(request, ReportQuery)
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    result = await report_service(request).run_query(user, request.path_params["name"], query)
    return result.to_json(), translator(user.language)


async def export_csv(request: Request) -> Response:
    report, translate = await _result(request)
    return Response(export.to_csv(report, translate), media_type=export.CSV_TYPE, headers={
        "content-disposition": export.content_disposition(export.filename(report, "csv"))})


async def export_xlsx(request: Request) -> Response:
    report, translate = await _result(request)
    return Response(export.to_xlsx(report, translate), media_type=export.XLSX_TYPE, headers={
        "content-disposition": export.content_disposition(export.filename(report, "xlsx"))})


class ScheduleBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Monday digest", "reports": ["missed_calls", "load"],
        "recipients": ["boss@example.com"], "frequency": "weekly", "time_of_day": "08:00",
        "weekday": 0, "period": "last_7_days", "language": "en", "enabled": True}]})
    name: Short
    reports: Annotated[list[Annotated[str, StringConstraints(max_length=40)]],
                       Field(max_length=10)]
    recipients: Annotated[list[Annotated[str, StringConstraints(max_length=254)]],
                          Field(max_length=50, description="e-mail addresses")]
    frequency: Literal["daily", "weekly"]
    time_of_day: Annotated[str, Field(description="HH:MM in the office's time zone",
                                      max_length=5)]
    weekday: Annotated[int | None, Field(description="0 = Monday (weekly)")] = None
    period: Literal["yesterday", "last_7_days", "last_month"]
    language: Literal["en", "ru"] = "en"
    enabled: bool = True


class SmtpBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "host": "mail.example.com", "port": 587, "user": "reports", "password": "secret",
        "starttls": True, "from_address": "reports@example.com"}]})
    host: Annotated[str, StringConstraints(strip_whitespace=True, max_length=253)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    user: Short | None = None
    password: Annotated[str, StringConstraints(max_length=200),
                        Field(description="write-only; empty keeps the one set")] | None = None
    starttls: bool | None = None
    ssl: bool | None = None
    from_address: Annotated[str, StringConstraints(strip_whitespace=True,
                                                   max_length=254)] | None = None


def _schedules(request: Request) -> ReportSchedules:
    found = services(request).extra.get("report_schedules")
    if found is None:
        raise LineUnavailable("scheduled reports are not running in this process")
    return found


def _validated(data: ScheduleBody):
    return validate(name=data.name, reports=data.reports, recipients=data.recipients,
                    frequency=data.frequency, time_of_day=data.time_of_day,
                    weekday=data.weekday, period=data.period, language=data.language,
                    enabled=data.enabled)


async def list_schedules(request: Request) -> JSONResponse:
    await admin(request)
    svc = _schedules(request)
    return ok({"schedules": [s.to_json() for s in await svc.list()],
               "smtp": (await svc.smtp()).public(),
               "timezone": report_service(request).timezone})


async def create_schedule(request: Request) -> JSONResponse:
    me = await admin(request)
    data = _validated(await body_of(request, ScheduleBody))
    schedule = await _schedules(request).add(actor(request, me), data)
    return ok(schedule.to_json(), 201)


async def update_schedule(request: Request) -> JSONResponse:
    me = await admin(request)
    data = _validated(await body_of(request, ScheduleBody))
    schedule = await _schedules(request).update(actor(request, me), path_id(request), data)
    return ok(schedule.to_json())


async def delete_schedule(request: Request) -> JSONResponse:
    me = await admin(request)
    await _schedules(request).delete(actor(request, me), path_id(request))
    return ok({"deleted": path_id(request)})


async def update_smtp(request: Request) -> JSONResponse:
    me = await admin(request)
    data = await body_of(request, SmtpBody)
    settings = await _schedules(request).update_smtp(actor(request, me),
                                                     data.model_dump(exclude_none=True))
    return ok(settings.public())

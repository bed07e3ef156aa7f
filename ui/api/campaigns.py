"""SMS campaigns: drafts, preview, start / pause / resume / cancel, progress and the CSV report.

Admins run campaigns over the whole client base; a manager over their own clients only, and
sees only their own campaigns; secretaries get 403 (the rules live in the campaign service)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callcenter.errors import CallcenterError, PermissionDenied
from callcenter.services import Services
from callcenter.sms.campaign_template import FIELDS
from callcenter.sms.campaigns import may_run_campaigns
from ui.api.campaign_models import CampaignIn, CampaignUpdate, ProgressQuery
from ui.api.common import body_of, current_user, ok, path_id, query_of, services


def _campaigns(svc: Services) -> Any:
    service = svc.extra.get("campaigns")
    if service is None:
        raise CallcenterError("SMS campaigns are not running")
    return service


def _data(model: CampaignIn | CampaignUpdate) -> dict[str, Any]:
    return {k: v for k, v in model.model_dump(exclude_unset=True).items() if v is not None}


async def list_campaigns(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(await _campaigns(services(request)).list_for(user))


async def create_campaign(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = _data(await body_of(request, CampaignIn))
    return ok(await _campaigns(services(request)).create(user, data), 201)


async def preview_new(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = _data(await body_of(request, CampaignIn))
    return ok(await _campaigns(services(request)).preview(user, data=data))


async def fields(request: Request) -> JSONResponse:
    if not may_run_campaigns(await current_user(request)):
        raise PermissionDenied("campaigns need the role admin or manager")
    custom = await services(request).store.list_custom_fields()
    return ok({"fields": [{"name": k, "description": v} for k, v in FIELDS.items()]
               + [{"name": f"custom.{f.name}", "description": f.label} for f in custom]})


async def get_campaign(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(await _campaigns(services(request)).get(user, path_id(request)))


async def update_campaign(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = _data(await body_of(request, CampaignUpdate))
    return ok(await _campaigns(services(request)).update(user, path_id(request), data))


async def delete_campaign(request: Request) -> JSONResponse:
    user = await current_user(request)
    await _campaigns(services(request)).delete(user, path_id(request))
    return ok({"deleted": path_id(request)})


async def preview(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(await _campaigns(services(request)).preview(user, path_id(request)))


async def _action(request: Request, name: str) -> JSONResponse:
    user = await current_user(request)
    service = _campaigns(services(request))
    return ok(await getattr(service, name)(user, path_id(request)))


async def start(request: Request) -> JSONResponse:
    return await _action(request, "start")


async def pause(request: Request) -> JSONResponse:
    return await _action(request, "pause")


async def resume(request: Request) -> JSONResponse:
    return await _action(request, "resume")


async def cancel(request: Request) -> JSONResponse:
    return await _action(request, "cancel")


async def progress(request: Request) -> JSONResponse:
    user = await current_user(request)
    q = query_of(request, ProgressQuery)
    return ok(await _campaigns(services(request)).progress(user, path_id(request),
                                                          limit=q.limit, offset=q.offset))


async def report_csv(request: Request) -> Response:
    user = await current_user(request)
    name, text = await _campaigns(services(request)).export_csv(user, path_id(request))
    # A BOM so spreadsheet programs read the Cyrillic right; attachment, never rendered.
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Content-Type-Options": "nosniff"})

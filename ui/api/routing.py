"""Routing (admin): secretary groups, the default region, office hours, extension mapping."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.routing.service import group_json
from ui.api.admin_models import ExtensionsIn, GroupIn, RoutingSettingsIn
from ui.api.audit import actor
from ui.api.common import admin, body_of, ok, path_id, services


async def get_routing(request: Request) -> JSONResponse:
    routing = services(request).routing
    return ok({"groups": [group_json(g) for g in await routing.groups()],
               "settings": routing.settings()})


async def create_group(request: Request) -> JSONResponse:
    me = await admin(request)
    data = await body_of(request, GroupIn)
    group = await services(request).routing.save_group(
        actor(request, me), None, data.name, data.members, data.dids, data.queues, data.lines)
    return ok(group_json(group), 201)


async def update_group(request: Request) -> JSONResponse:
    me = await admin(request)
    data = await body_of(request, GroupIn)
    group = await services(request).routing.save_group(
        actor(request, me), path_id(request), data.name, data.members, data.dids, data.queues,
        data.lines)
    return ok(group_json(group))


async def delete_group(request: Request) -> JSONResponse:
    me = await admin(request)
    await services(request).routing.delete_group(actor(request, me), path_id(request))
    return ok({"deleted": path_id(request)})


async def update_settings(request: Request) -> JSONResponse:
    me = await admin(request)
    data = await body_of(request, RoutingSettingsIn)
    sent = data.model_dump(exclude_unset=True)
    routing = services(request).routing
    await routing.update_settings(actor(request, me), sent)
    return ok(routing.settings())


async def endpoints(request: Request) -> JSONResponse:
    """The PBX's extension endpoints and who has each: the one-click import's source."""
    return ok(await services(request).routing.endpoints())


async def assign_extensions(request: Request) -> JSONResponse:
    me = await admin(request)
    data = await body_of(request, ExtensionsIn)
    changed = await services(request).users.assign_extensions(
        actor(request, me), {e.extension: e.user_id for e in data.extensions})
    return ok(changed)

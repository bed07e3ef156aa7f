"""Lines and their SIP trunks (admin only): list, add, edit, disable, delete, check.

Every handler asks for an admin first, then validates the body, then acts through the core's
line manager (callcenter/lines/manager.py); nothing here talks to an adapter except through
the methods a line kind offers (``trunks``, ``save_trunk``, ``endpoints``). Secrets are
write-only: no answer carries one (``secrets_set`` names those stored).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.errors import ValidationError
from callcenter.lines.audit import Actor
from callcenter.lines.manager import LineManager
from callcenter.lines.records import LineRecord
from callcenter.models import Role, User
from ui.api.audit import actor as audit_actor
from ui.api.common import body_of, current_user, ok, services
from ui.api.models import LineCheckIn, LineIn, LineUpdate, TrunkIn


def _manager(request: Request) -> LineManager:
    manager = services(request).extra.get("lines")
    if manager is None:
        raise ValidationError("lines are not running in this process")
    return manager


def actor(request: Request, user: User) -> Actor:
    return audit_actor(request, user)


def status_json(manager: LineManager, name: str) -> dict[str, Any]:
    status = manager.status(name)
    return {"state": status.state.value, "connected": status.connected,
            "detail": status.detail, "last_error": status.last_error, "since": status.since}


def line_json(manager: LineManager, record: LineRecord) -> dict[str, Any]:
    return {**record.public(), "status": status_json(manager, record.name)}


def check_json(result: Any) -> dict[str, Any] | None:
    return None if result is None else asdict(result)


def saved_json(manager: LineManager, record: LineRecord, result: Any) -> dict[str, Any]:
    # start_error: saved, but its start failed (the page says so instead of "started").
    return {"line": line_json(manager, record), "check": check_json(result),
            "start_error": manager.start_error(record.name)}


def _name(request: Request) -> str:
    return str(request.path_params["name"])


async def kinds(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    return ok([kind.describe() for kind in _manager(request).kinds.values()])


async def list_lines(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    manager = _manager(request)
    return ok([line_json(manager, r) for r in manager.records.values()])


async def get_line(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    manager = _manager(request)
    return ok(line_json(manager, manager.record(_name(request))))


async def check_line(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    data = await body_of(request, LineCheckIn)
    manager = _manager(request)
    if data.stored:
        # The stored secrets fill the empty ones only while they still go where they were
        # saved for (merged() asks for them again otherwise).
        record = manager.merged(data.stored, enabled=True, settings=data.settings,
                                secrets=data.secrets)
    else:
        record = LineRecord(data.name, data.kind, True, data.settings, dict(data.secrets))
    result = await manager.check(record)
    return ok(check_json(result))


async def add_line(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    data = await body_of(request, LineIn)
    manager = _manager(request)
    record, result = await manager.add(
        LineRecord(data.name, data.kind, data.enabled, data.settings, dict(data.secrets)),
        actor(request, user), save_disabled=data.save_disabled)
    return ok(saved_json(manager, record, result), 201)


async def update_line(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    data = await body_of(request, LineUpdate)
    sent = data.model_dump(exclude_unset=True)
    manager = _manager(request)
    name = _name(request)
    record, result = await manager.edit(
        name, actor(request, user), new_name=sent.get("name"), enabled=sent.get("enabled"),
        settings=sent.get("settings"), secrets=sent.get("secrets"),
        save_disabled=data.save_disabled)
    return ok(saved_json(manager, record, result))


async def delete_line(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    manager = _manager(request)
    await manager.delete(_name(request), actor(request, user))
    return ok({"deleted": 1})


def _line_with(request: Request, method: str) -> Any:
    manager = _manager(request)
    name = _name(request)
    manager.record(name)
    line = manager.running.get(name)
    if line is None or not hasattr(line, method):
        raise ValidationError(f"line {name} is not running, or its kind has no SIP trunks")
    return line


async def trunks(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    return ok(await _line_with(request, "trunks").trunks())


async def trunks_live(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    return ok(_line_with(request, "trunks_live").trunks_live.to_json())


async def endpoints(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    return ok(await _line_with(request, "pjsip_endpoints").pjsip_endpoints())


async def save_trunk(request: Request) -> JSONResponse:
    from callcenter.lines import audit

    user = await current_user(request, Role.ADMIN)
    data = await body_of(request, TrunkIn)
    line = _line_with(request, "save_trunk")
    trunk = str(request.path_params["trunk"])
    spec = _trunk_spec(line, trunk, data)
    after = {k: v for k, v in data.model_dump().items() if k != "password"}
    after["password"] = audit.MASK if data.password else ""
    target = f"{_name(request)}/{trunk}"
    try:
        result = await line.save_trunk(spec)
    except Exception as exc:
        await audit.record(services(request).store, actor(request, user), "update-failed",
                           target, None, {**after, "error": str(exc)[:500]}, kind="trunk")
        raise
    await audit.record(services(request).store, actor(request, user), "update", target,
                       result.get("previous"), after, kind="trunk")
    return ok({k: v for k, v in result.items() if k != "previous"})


def _trunk_spec(line: Any, trunk: str, data: TrunkIn) -> Any:
    # The spec type belongs to the line's kind: built from the line's own module.
    spec_type = type(line).trunk_spec
    values = data.model_dump()
    values["register"] = values.pop("registration")
    return spec_type(name=trunk, **values)

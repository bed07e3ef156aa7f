"""Users (admin) and the user's own settings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.errors import PermissionDenied, ValidationError
from callcenter.models import Role
from callcenter.passwords import hash_password_async
from ui.api.common import body_of, current_user, ok, path_id, services
from ui.api.models import UserCreate, UserUpdate
from ui.api.session import check_password

OWN_FIELDS = {"name", "password", "current_password", "language"}


async def list_users(request: Request) -> JSONResponse:
    await current_user(request)
    return ok(await services(request).store.list_users())


async def create_user(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    data = await body_of(request, UserCreate)
    svc = services(request)
    user = await svc.store.create_user(
        data.login, data.name, data.role, data.extension,
        await hash_password_async(data.password),
        data.language or svc.config.console.default_language,
    )
    return ok(user, 201)


async def get_user(request: Request) -> JSONResponse:
    await current_user(request)
    return ok(await services(request).store.get_user(path_id(request)))


async def update_user(request: Request) -> JSONResponse:
    """A new password or a disabled account ends the user's sessions. Changing your own
    password needs the current one; your other sessions end, this one stays with a fresh
    cookie (the same CSRF token, so the open console keeps working)."""
    me = await current_user(request)
    target = path_id(request)
    body = await body_of(request, UserUpdate)
    sent = body.model_dump(exclude_unset=True)
    if me.role is not Role.ADMIN and (target != me.id or set(sent) - OWN_FIELDS):
        raise PermissionDenied("only an admin can change other users, roles and extensions")
    own_password = target == me.id and "password" in sent
    if "current_password" in sent and not own_password:
        raise ValidationError("current_password goes with a new password of your own",
                              field="current_password")
    if own_password:
        if "current_password" not in sent:
            raise ValidationError("send your current password to set a new one",
                                  field="current_password")
        found = await services(request).store.user_by_login(me.login)
        stored = found[1] if found else None
        if not await check_password(request, me.login, stored, sent["current_password"]):
            raise ValidationError("the current password is wrong", field="current_password")
    changes: dict[str, Any] = {k: v for k, v in sent.items()
                               if k not in {"password", "current_password"}}
    if "password" in sent:
        changes["password_hash"] = await hash_password_async(sent["password"])
    if "active" in changes:
        changes["active"] = int(changes["active"])
    store = services(request).store
    user = await store.update_user(target, **changes)
    if changes.keys() & {"active", "password_hash"}:
        await store.end_sessions(target)
        if target == me.id and "password_hash" in changes:
            # Only the cookie of this request carries the new epoch: copies elsewhere end.
            request.session["ep"] = await store.session_epoch(target)
    if changes.keys() & {"role", "extension", "active", "password_hash"}:
        hub = getattr(request.app.state, "hub", None)
        if hub is not None:
            hub.disconnect_user(target)  # live consoles must not keep the old rights
    return ok(user)

"""Users (admin) and the user's own settings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.errors import PermissionDenied, ValidationError
from callcenter.models import Role, User
from callcenter.users.model import PasswordChangeRequired
from ui.api.admin_models import HandoverIn, PasswordReset
from ui.api.audit import actor
from ui.api.common import body_of, current_user, ok, path_id, services, to_jsonable
from ui.api.models import UserCreate, UserUpdate
from ui.api.session import check_password

OWN_FIELDS = {"name", "password", "current_password", "language"}


def _shown(user: User, me: User) -> dict[str, Any]:
    """A user as ``me`` may see them: whether someone logged in with a one-time password is
    for admins (and the user themself) only."""
    out: dict[str, Any] = to_jsonable(user)
    if me.role is not Role.ADMIN and user.id != me.id:
        out.pop("one_time_login", None)
    return out


async def list_users(request: Request) -> JSONResponse:
    me = await current_user(request)
    return ok([_shown(u, me) for u in await services(request).store.list_users()])


async def create_user(request: Request) -> JSONResponse:
    me = await current_user(request, Role.ADMIN)
    data = await body_of(request, UserCreate)
    svc = services(request)
    user = await svc.users.create(
        actor(request, me), data.login, data.name, data.role, data.extension, data.password,
        data.language or svc.config.console.default_language)
    return ok(user, 201)


async def get_user(request: Request) -> JSONResponse:
    me = await current_user(request)
    return ok(_shown(await services(request).store.get_user(path_id(request)), me))


async def update_user(request: Request) -> JSONResponse:
    """A new password or a disabled account ends the user's sessions. Changing your own
    password needs the current one; your other sessions end, this one stays with a fresh
    cookie (the same CSRF token, so the open console keeps working)."""
    me = await current_user(request)
    target = path_id(request)
    body = await body_of(request, UserUpdate)
    sent = body.model_dump(exclude_unset=True)
    if me.one_time_login and (target != me.id or "password" not in sent
                              or set(sent) - {"password", "current_password"}):
        # The one-time login opened this route for one purpose: a new password of their own.
        raise PasswordChangeRequired("choose a new password first: the one you logged in"
                                     " with was for one login only")
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
    svc = services(request)
    store = svc.store
    who = actor(request, me)
    changes: dict[str, Any] = {k: v for k, v in sent.items()
                               if k not in {"password", "current_password"}}
    user = (await svc.users.update(who, target, changes) if changes
            else await store.get_user(target))
    if "password" in sent:
        user = await svc.users.set_password(who, target, sent["password"],
                                            reset=target != me.id)
        if target == me.id:
            # Only the cookie of this request carries the new epoch: copies elsewhere end.
            request.session["ep"] = await store.session_epoch(target)
    if changes.keys() & {"role", "extension", "active"} or "password" in sent:
        _disconnect(request, target)  # live consoles must not keep the old rights
    return ok(user)


def _disconnect(request: Request, user_id: int) -> None:
    hub = getattr(request.app.state, "hub", None)
    if hub is not None:
        hub.disconnect_user(user_id)


async def reset_password(request: Request) -> JSONResponse:
    """An admin sets a new password for a user: every session of that user ends."""
    me = await current_user(request, Role.ADMIN)
    data = await body_of(request, PasswordReset)
    user = await services(request).users.set_password(actor(request, me), path_id(request),
                                                      data.password, one_time=data.one_time)
    _disconnect(request, user.id)
    return ok({"ok": True, "message": f"the password of {user.login} was reset; their "
               "sessions have ended"})


async def handover(request: Request) -> JSONResponse:
    """A user's open tasks and clients go to another user in one step."""
    me = await current_user(request, Role.ADMIN)
    data = await body_of(request, HandoverIn)
    done = await services(request).users.hand_over(actor(request, me), path_id(request),
                                                   data.to_user)
    return ok({"from_user": done.from_user, "to_user": done.to_user,
               "tasks": done.task_ids, "clients": done.client_ids})

"""Users (admin) and the user's own settings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.clients import reject_unknown, text_field
from callcenter.errors import PermissionDenied, ValidationError
from callcenter.models import Role
from callcenter.passwords import hash_password
from ui.api.common import current_user, json_body, ok, path_id, services

LANGUAGES = {"en", "ru"}


def _role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError("role must be secretary, manager or admin", field="role") from None


def _extension(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.isdigit() or not 2 <= len(value) <= 6:
        raise ValidationError("extension must be 2 to 6 digits, such as \"101\"",
                              field="extension")
    return value


def _language(value: Any) -> str:
    if value not in LANGUAGES:
        raise ValidationError("language must be 'en' or 'ru'", field="language")
    return value


async def list_users(request: Request) -> JSONResponse:
    await current_user(request)
    return ok(await services(request).store.list_users())


async def create_user(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    reject_unknown(data, {"login", "name", "role", "extension", "password", "language"}, "")
    login = text_field(data, "login", required=True)
    if len(login) > 64 or any(ch.isspace() for ch in login):
        raise ValidationError("login must be at most 64 characters without spaces",
                              field="login")
    user = await services(request).store.create_user(
        login,
        text_field(data, "name", required=True),
        _role(data.get("role")),
        _extension(data.get("extension")),
        hash_password(text_field(data, "password", required=True)),
        _language(data.get("language",
                           services(request).config.console.default_language)),
    )
    return ok(user, 201)


async def get_user(request: Request) -> JSONResponse:
    await current_user(request)
    return ok(await services(request).store.get_user(path_id(request)))


async def update_user(request: Request) -> JSONResponse:
    me = await current_user(request)
    target = path_id(request)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    own = {"name", "password", "language"}
    admin = own | {"role", "extension", "active"}
    if me.role is not Role.ADMIN and (target != me.id or set(data) - own):
        raise PermissionDenied("only an admin can change other users, roles and extensions")
    reject_unknown(data, admin, "")
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = text_field(data, "name", required=True)
    if "password" in data:
        changes["password_hash"] = hash_password(text_field(data, "password", required=True))
    if "language" in data:
        changes["language"] = _language(data["language"])
    if "role" in data:
        changes["role"] = _role(data["role"])
    if "extension" in data:
        changes["extension"] = _extension(data["extension"])
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise ValidationError("active must be true or false", field="active")
        changes["active"] = int(data["active"])
    store = services(request).store
    user = await store.update_user(target, **changes)
    if changes.keys() & {"active", "password_hash"} and not (
        target == me.id and "active" not in changes
    ):
        await store.end_sessions(target)  # a new password or a disabled account ends sessions
    if changes.keys() & {"role", "extension", "active", "password_hash"}:
        hub = getattr(request.app.state, "hub", None)
        if hub is not None:
            hub.disconnect_user(target)  # live consoles must not keep the old rights
    return ok(user)

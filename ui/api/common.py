"""What every API handler shares: the services, the logged-in user, JSON in and out, errors."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from callcenter.errors import (
    CallActionFailed,
    CallcenterError,
    CallNotFound,
    LineUnavailable,
    PermissionDenied,
    ValidationError,
)
from callcenter.models import Role, User
from callcenter.passwords import PasswordChecksBusy
from callcenter.services import Services
from callcenter.store.base import Conflict, NotFound
from callcenter.users.model import PasswordChangeRequired
from ui.api.models import MAX_ID
from ui.security import (
    BodyTimeout,
    BodyTooLarge,
    CsrfFailed,
    NotAuthenticated,
    TooManyAttempts,
    check_csrf,
    session_epoch,
    session_user_id,
)

log = logging.getLogger(__name__)

B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services


async def current_user(conn: HTTPConnection, *roles: Role) -> User:
    """The logged-in, active user; enforces CSRF on state-changing requests and the roles."""
    uid = session_user_id(conn)
    if uid is None:
        raise NotAuthenticated("log in first")
    try:
        user = await services(conn).store.get_user(uid)
    except NotFound:
        conn.session.clear()
        raise NotAuthenticated("your account no longer exists; log in again") from None
    if not user.active:
        conn.session.clear()
        raise NotAuthenticated("your account is disabled")
    if session_epoch(conn) != await services(conn).store.session_epoch(uid):
        conn.session.clear()
        raise NotAuthenticated("your session has ended; log in again")
    if isinstance(conn, Request):
        check_csrf(conn, conn.method)
        if user.one_time_login and not _choosing_a_password(conn, user):
            raise PasswordChangeRequired("choose a new password first: the one you logged in"
                                         " with was for one login only")
    if roles and user.role not in roles:
        raise PermissionDenied(f"this needs the role {' or '.join(r.value for r in roles)}")
    return user


async def admin(request: Request) -> User:
    """The admin of an ``admin=True`` route, as ui.app's route wrapper already checked it
    (user, session epoch, CSRF); checked here when a handler is called without it."""
    user = getattr(request.state, "user", None)
    if isinstance(user, User) and user.role is Role.ADMIN:
        return user
    return await current_user(request, Role.ADMIN)


def _choosing_a_password(request: Request, user: User) -> bool:
    """What a user with a one-time password may do: see and end their session, and set
    their own password (PATCH /api/users/<own id>)."""
    route = request.scope.get("api_route")
    path = getattr(route, "path", "")
    if path == "/api/session":
        return True
    return (path == "/api/users/{id}" and request.method == "PATCH"
            and request.path_params.get("id") == user.id)


async def json_bytes(request: Request) -> bytes:
    # A cross-site HTML form can post text/plain but never application/json without a
    # CORS preflight: requiring it closes login CSRF and form-based CSRF for good.
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
        "application/json"
    ):
        raise ValidationError("send the body as JSON (Content-Type: application/json)")
    # BodyLimitMiddleware has refused anything over MAX_BODY before it was read whole.
    try:
        return await request.body()
    except ClientDisconnect:
        # Nobody is left to answer: an expected event, not "Exception in ASGI application".
        raise ClientGone("the client went away before sending the whole body") from None


class ClientGone(CallcenterError):
    """The client dropped the connection mid-body; the answer goes nowhere."""

    error_id = "client-gone"


def _checked(request: HTTPConnection, model: type[BaseModel], kind: str) -> None:
    # The route table names the model the OpenAPI document shows; validating with another
    # would let the two disagree.
    route = request.scope.get("api_route")
    if route is not None and getattr(route, kind) is not model:
        raise RuntimeError(f"{route.path} documents {getattr(route, kind)} as its {kind}, "
                           f"the handler validates {model.__name__}")


async def body_of(request: Request, model: type[B]) -> B:
    """The JSON body validated by ``model``; a 400 naming the field otherwise."""
    _checked(request, model, "body")
    raw = await json_bytes(request)
    if b"\\u0000" in raw.lower():  # JSON has NUL only escaped; most bodies skip the walk
        _refuse_nul(raw)
    try:
        return model.model_validate_json(raw)
    except PydanticValidationError as exc:
        raise invalid_input(exc, "", model) from None


def query_of(request: HTTPConnection, model: type[Q]) -> Q:
    """The query string validated by ``model``; a 400 naming the parameter otherwise."""
    _checked(request, model, "query")
    params = dict(request.query_params)
    for key, value in params.items():
        if "\x00" in key or "\x00" in value:
            raise ValidationError(f"query parameter {key[:40]!r} must not contain NUL characters",
                                  field=key.replace("\x00", "")[:80] or None)
    try:
        return model.model_validate(params)
    except PydanticValidationError as exc:
        raise invalid_input(exc, "query parameter ", model) from None


def _refuse_nul(raw: bytes) -> None:
    """A NUL character anywhere in a JSON body is a 400 naming where (the importer refuses
    them too: they end strings in C tools and hide text in the database)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return  # pydantic names the syntax error

    def walk(value: Any, loc: tuple[int | str, ...]) -> None:
        if isinstance(value, str) and "\x00" in value:
            where = _field(loc)
            raise ValidationError(f"{where or 'request body'} must not contain NUL characters",
                                  field=where)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key, loc)
                walk(item, (*loc, key.replace("\x00", "")))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*loc, i))

    walk(data, ())


def invalid_input(exc: PydanticValidationError, prefix: str,
                  model: type[BaseModel] | None = None) -> ValidationError:
    """Pydantic's errors in the API's ``{"error", "message", "field"}`` shape: the first
    offending field is named, the messages of the first few are joined."""
    errors = exc.errors(include_url=False, include_input=False)
    fields = [_field(e["loc"]) for e in errors]
    messages = [_message(e, f, prefix, model) for e, f in zip(errors, fields, strict=True)]
    extra = len(messages) - 5
    text = "; ".join(messages[:5]) + (f"; and {extra} more" if extra > 0 else "")
    return ValidationError(text, field=fields[0] if fields else None)


def _field(loc: tuple[int | str, ...]) -> str | None:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for an error in a dict's key: the key is named
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out[:80] or None  # an unknown key is the caller's text: bounded


_MESSAGES = {
    "missing": "{f} is required",
    "string_type": "{f} must be text",
    "int_type": "{f} must be a whole number",
    "int_parsing": "{f} must be a whole number",
    "int_from_float": "{f} must be a whole number",
    "int_parsing_size": "{f} is far too large a number",
    "float_type": "{f} must be a number",
    "float_parsing": "{f} must be a number",
    "bool_type": "{f} must be true or false",
    "bool_parsing": "{f} must be true or false",
    "enum": "{f} must be {expected}",
    "literal_error": "{f} must be {expected}",
    "list_type": "{f} must be a list",
    "model_type": "{f} must be a JSON object",
    "dict_type": "{f} must be a JSON object",
    "string_too_long": "{f} is longer than {max_length} characters",
    "too_long": "{f} has more than {max_length} items",
    "too_short": "{f} needs at least {min_length} items",
    "greater_than_equal": "{f} must be at least {ge}",
    "less_than_equal": "{f} must be at most {le}",
    "json_invalid": "request body is not valid JSON: {error}",
    "datetime_type": "{f} must be a date-time like 2026-11-22T15:00:00+03:00",
}


def _message(error: Any, field: str | None, prefix: str,
             model: type[BaseModel] | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    label = f"{prefix}{field}" if field else "request body"
    if kind.startswith(("datetime_", "date_")):
        kind = "datetime_type"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return (f"{label} must not be empty" if n == 1
                else f"{label} must have at least {n} characters")
    if kind == "extra_forbidden":
        allowed = (f"; allowed: {', '.join(model.model_fields)}"
                   if model is not None and len(error["loc"]) == 1 else "")
        return f"unknown {prefix or 'field '}{field}{allowed}"
    if kind == "string_pattern_mismatch":
        info = model.model_fields.get(field or "") if model else None
        if info is not None and info.description:  # "at most 64 characters without spaces"
            return f"{label} must be {info.description}"
        return f"{label} must match {ctx.get('pattern')}"
    template = _MESSAGES.get(kind)
    if template is not None:
        return template.format(f=label, **{k: v for k, v in ctx.items() if k != "f"})
    msg = str(error["msg"])
    # Our own PydanticCustomError messages already name their field.
    last = str(error["loc"][-1]) if error["loc"] else ""
    return msg if last and msg.startswith(last) else f"{label} {msg}"


def path_id(request: Request, name: str = "id") -> int:
    value = int(request.path_params[name])
    if value > MAX_ID:  # SQLite would raise OverflowError: nothing has such an id
        raise NotFound(name, value)
    return value


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def ok(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(to_jsonable(value), status_code=status)


_STATUS = {
    ValidationError: 400,
    NotAuthenticated: 401,
    PermissionDenied: 403,
    CsrfFailed: 403,
    BodyTooLarge: 413,
    BodyTimeout: 408,
    TooManyAttempts: 429,
    LineUnavailable: 503,
    PasswordChecksBusy: 503,
    CallNotFound: 404,
    CallActionFailed: 502,  # the PBX refused or did not answer
}


def error_response(status: int, error_id: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error_id, "message": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


async def handle_error(request: HTTPConnection, exc: Exception) -> Response:
    if isinstance(exc, CallcenterError):
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        retry_after = getattr(exc, "retry_after", None)  # 429 and the busy 503
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return error_response(status, exc.error_id, exc.message, exc.field, headers)
    if isinstance(exc, NotFound):
        return error_response(404, "not-found", str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, "conflict", _conflict_text(str(exc)))
    raise exc


def _conflict_text(detail: str) -> str:
    if "UNIQUE constraint failed" in detail:
        column = detail.rsplit(".", 1)[-1]
        return f"{column} is already taken"
    if "FOREIGN KEY" in detail:
        return "refers to something that does not exist"
    return detail

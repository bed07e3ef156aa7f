"""What every API handler shares: the services, the logged-in user, JSON in and out, errors."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from datetime import datetime
from typing import Any

from starlette.requests import HTTPConnection, Request
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
from callcenter.services import Services
from callcenter.store.base import Conflict, NotFound
from ui.security import (
    CsrfFailed,
    NotAuthenticated,
    check_csrf,
    session_epoch,
    session_user_id,
)

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20


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
    if roles and user.role not in roles:
        raise PermissionDenied(f"this needs the role {' or '.join(r.value for r in roles)}")
    return user


async def json_body(request: Request) -> Any:
    # A cross-site HTML form can post text/plain but never application/json without a
    # CORS preflight: requiring it closes login CSRF and form-based CSRF for good.
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
        "application/json"
    ):
        raise ValidationError("send the body as JSON (Content-Type: application/json)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ValidationError(f"request body is larger than {MAX_BODY} bytes")
    if not body:
        raise ValidationError("request body must be a JSON object")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None


def int_param(request: Request, name: str, default: int | None = None, *, low: int = 0,
              high: int = 10_000) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"query parameter {name} must be a whole number",
                              field=name) from None
    if not low <= value <= high:
        raise ValidationError(f"query parameter {name} must be between {low} and {high}",
                              field=name)
    return value


def path_id(request: Request, name: str = "id") -> int:
    return int(request.path_params[name])


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
    LineUnavailable: 503,
    CallNotFound: 404,
    CallActionFailed: 502,  # the PBX refused or did not answer
}


def error_response(status: int, error_id: str, message: str, field: str | None = None
                   ) -> JSONResponse:
    body: dict[str, Any] = {"error": error_id, "message": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def handle_error(request: HTTPConnection, exc: Exception) -> Response:
    if isinstance(exc, CallcenterError):
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        return error_response(status, exc.error_id, exc.message, exc.field)
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

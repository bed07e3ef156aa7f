"""Login and logout."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.errors import ValidationError
from callcenter.passwords import verify_password
from ui.api.common import current_user, error_response, json_body, ok, services
from ui.security import end_session, session_user_id, start_session

log = logging.getLogger(__name__)


async def login(request: Request) -> JSONResponse:
    data = await json_body(request)
    if not isinstance(data, dict) or not isinstance(data.get("login"), str) or not isinstance(
        data.get("password"), str
    ):
        raise ValidationError("send {\"login\": ..., \"password\": ...}")
    found = await services(request).store.user_by_login(data["login"].strip())
    user, stored = found if found else (None, None)
    if not verify_password(stored, data["password"]) or user is None or not user.active:
        # The login is logged, never the password.
        log.warning("failed login for %r from %s", data["login"][:64],
                    request.client.host if request.client else "?")
        return error_response(401, "bad-credentials", "wrong login or password")
    token = start_session(request, user, await services(request).store.session_epoch(user.id))
    log.info("user %s logged in", user.login)
    return ok({"user": user, "csrf_token": token})


async def whoami(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok({"user": user, "csrf_token": request.session.get("csrf")})


async def logout(request: Request) -> JSONResponse:
    """Ends every session of the user, cookie copies included, and closes their live
    consoles. No CSRF token needed: a forged logout harms nobody, and a stale token must not
    leave a session open after the user clicked "log out"."""
    uid = session_user_id(request)
    end_session(request)
    if uid is not None:
        await services(request).store.end_sessions(uid)
        hub = getattr(request.app.state, "hub", None)
        if hub is not None:
            hub.disconnect_user(uid)
    return ok({"ok": True})

"""Login and logout."""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from callcenter.models import User
from callcenter.passwords import verify_password_async
from ui.api.common import body_of, current_user, error_response, ok, services
from ui.api.models import Login
from ui.api.responses import ActionResult, Session
from ui.security import TooManyAttempts, end_session, session_user_id, start_session
from ui.throttle import LoginThrottle

log = logging.getLogger(__name__)


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "?"


def throttle(conn: HTTPConnection) -> LoginThrottle:
    return conn.app.state.login_throttle


async def check_password(conn: HTTPConnection, login: str, stored_hash: str | None,
                         password: str, *, usable: bool = True) -> bool:
    """The password check of a login or a password change: throttled per login and per
    address before any work is done, and run off the event loop. An account that is not
    ``usable`` (disabled) is verified all the same but always fails and stays throttled, so
    its password cannot be learned from a lifted lock."""
    guard, address = throttle(conn), client_address(conn)
    wait = guard.retry_after(login, address)
    if wait:
        log.debug("login attempt for %r from %s throttled for %d s", login[:64], address, wait)
        raise TooManyAttempts(f"too many failed attempts; try again in {wait} s",
                              retry_after=wait)
    held = guard.begin(login, address)
    if await verify_password_async(stored_hash, password) and usable:
        guard.succeeded(login, address, held=held)
        return True
    # The login is logged, never the password.
    log.warning("failed password check for %r from %s", login[:64], address)
    return False


async def login(request: Request) -> JSONResponse:
    data = await body_of(request, Login)
    found = await services(request).store.user_by_login(data.login)
    user: User | None
    user, stored = found if found else (None, None)
    # An unknown login is verified against a dummy hash: same time, same throttling.
    usable = user is not None and user.active
    if not await check_password(request, data.login, stored, data.password,
                                usable=usable) or user is None:
        return error_response(401, "bad-credentials", "wrong login or password")
    token = start_session(request, user, await services(request).store.session_epoch(user.id))
    log.info("user %s logged in", user.login)
    return ok(Session(user=user, csrf_token=token))


async def whoami(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(Session(user=user, csrf_token=request.session.get("csrf")))


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
    return ok(ActionResult(ok=True))

"""Passwords, sessions, roles and CSRF for the console and the REST API."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Iterable

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter.errors import CallcenterError, PermissionDenied
from callcenter.models import Client, Role, User
from callcenter.passwords import hash_password as hash_password  # for the UI's callers

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class NotAuthenticated(CallcenterError):
    error_id = "not-authenticated"


class CsrfFailed(CallcenterError):
    error_id = "csrf-failed"


class TooManyAttempts(CallcenterError):
    """Answered 429 with Retry-After."""

    error_id = "too-many-attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BodyTooLarge(CallcenterError):
    """Answered 413."""

    error_id = "body-too-large"


MAX_BODY = 1 << 20


class BodyLimitMiddleware:
    """Refuses a request body over ``limit`` bytes on every route, before it is read: by its
    Content-Length at once, and, when the length is not given (chunked), as soon as the bytes
    received pass the limit; the rest is never read."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body is larger than {self.limit} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _refuse(send, too_large if length.isdigit() else "bad Content-Length")
            return
        received = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise BodyTooLarge(too_large)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:
                    # Else the server would go on reading (and dropping) the rest of the
                    # body to keep the connection alive.
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Reached only where no handler turned it into a response (not an API route).
            if started:
                raise
            await _refuse(send, exc.message)


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"error": BodyTooLarge.error_id, "message": message}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def start_session(conn: HTTPConnection, user: User, epoch: int) -> str:
    conn.session.clear()
    token = secrets.token_urlsafe(32)
    conn.session.update({"uid": user.id, "csrf": token, "ep": epoch})
    return token


def session_epoch(conn: HTTPConnection) -> int | None:
    epoch = conn.session.get("ep") if "session" in conn.scope else None
    return epoch if isinstance(epoch, int) else None


def end_session(conn: HTTPConnection) -> None:
    conn.session.clear()


def session_user_id(conn: HTTPConnection) -> int | None:
    uid = conn.session.get("uid") if "session" in conn.scope else None
    return uid if isinstance(uid, int) else None


def check_csrf(conn: HTTPConnection, method: str) -> None:
    if method in SAFE_METHODS:
        return
    expected = conn.session.get("csrf", "")
    given = conn.headers.get(CSRF_HEADER, "")
    if not expected or not hmac.compare_digest(str(expected), given):
        raise CsrfFailed("missing or wrong X-CSRF-Token header; reload the page and try again")


def require_role(user: User, roles: Iterable[Role]) -> None:
    if user.role not in set(roles):
        raise PermissionDenied(f"this needs the role {' or '.join(r.value for r in roles)}")


def can_see_client(user: User, client: Client | int | None, manager_id: int | None,
                   managers_see_all: bool) -> bool:
    if user.role is not Role.MANAGER or managers_see_all:
        return True
    return manager_id == user.id

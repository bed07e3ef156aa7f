"""Passwords, sessions, roles and CSRF for the console and the REST API."""

from __future__ import annotations

import asyncio
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


class BodyTimeout(CallcenterError):
    """Answered 408: the body did not arrive in time (a slow sender holding a request)."""

    error_id = "body-timeout"


MAX_BODY = 1 << 20
BODY_TIMEOUT = 30.0  # seconds for a whole request body, however it trickles in


class BodyLimitMiddleware:
    """Refuses a request body over ``limit`` bytes on every route, before it is read: by its
    Content-Length at once, and, when the length is not given (chunked), as soon as the bytes
    received pass the limit; the rest is never read. A body must have arrived whole within
    ``timeout`` seconds of the request, or it is answered 408.

    Any response sent while the body is not fully received says ``Connection: close``: else
    the server would read and drop the rest of it to keep the connection alive, which for a
    route that never reads its body (a logout, /healthz) means an endless upload is read for
    ever."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY,
                 timeout: float = BODY_TIMEOUT, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout
        # Exact paths allowed a larger body than ``limit`` (document uploads).
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        too_large = f"request body is larger than {limit} bytes"
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, 413, BodyTooLarge.error_id,
                          too_large if length.isdigit() else "bad Content-Length")
            return
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        # Whether the server has body bytes of this request to read (HTTP/1.1: only by these
        # headers); the limit and the deadline hold for any server all the same.
        expected = chunked or (length is not None and int(length) > 0)
        complete = False
        received = 0
        started = False
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(
                    receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                if started:  # too late for a 408: the handler sees the client as gone
                    return {"type": "http.disconnect"}
                raise BodyTimeout(f"the request body did not arrive within "
                                  f"{self.timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Once a response is under way (a static file listening for the
                    # client going away) an exception would only be a logged traceback.
                    if started:
                        return {"type": "http.disconnect"}
                    raise BodyTooLarge(too_large)
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                given = message.get("headers", [])
                if expected and not complete and not any(
                        k.lower() == b"connection" for k, _ in given):
                    message = {**message, "headers": [*given, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as exc:
            # Reached only where no handler turned it into a response (not an API route).
            if started:
                raise
            status = 413 if isinstance(exc, BodyTooLarge) else 408
            await _refuse(send, status, exc.error_id, exc.message)


async def _refuse(send: Send, status: int, error_id: str, message: str) -> None:
    body = json.dumps({"error": error_id, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
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

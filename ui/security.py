"""Passwords, sessions, roles and CSRF for the console and the REST API."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

from starlette.requests import HTTPConnection

from callcenter.errors import CallcenterError, PermissionDenied
from callcenter.models import Client, Role, User
from callcenter.passwords import hash_password as hash_password  # for the UI's callers

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class NotAuthenticated(CallcenterError):
    error_id = "not-authenticated"


class CsrfFailed(CallcenterError):
    error_id = "csrf-failed"


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

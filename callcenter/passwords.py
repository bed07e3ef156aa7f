"""Password hashing (argon2id): the one place that knows how passwords are stored.

An argon2 hash or check costs ~150-300 ms of CPU. The async forms run it on a small thread pool
of its own (argon2-cffi releases the GIL), so a login never stalls the event loop and a storm
of logins cannot take the default executor that DNS look-ups and other work share. At most
``MAX_PENDING`` checks wait or run at once: beyond that a check is refused at once (503 with
Retry-After) instead of queueing without bound, seconds of CPU behind it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callcenter.errors import CallcenterError, ValidationError

MIN_LENGTH = 8
T = TypeVar("T")

_hasher = PasswordHasher()
# Verifying against a real hash for unknown logins keeps the timing of a wrong login and a
# wrong password alike, so logins cannot be enumerated.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
MAX_PENDING = 32  # ~32 x 0.2 s / 2 threads: a few seconds of work at most
_pool: ThreadPoolExecutor | None = None
_pending = 0  # checks waiting or running; touched on event-loop threads only


class PasswordChecksBusy(CallcenterError):
    """Answered 503 with Retry-After: too many password checks are waiting already."""

    error_id = "password-checks-busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # made again after a shutdown: one process may run several apps (tests)
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
    return _pool


def shutdown_pool() -> None:
    """At the app's stop: queued checks are cancelled, running ones are not waited for."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    global _pending
    if _pending >= MAX_PENDING:
        raise PasswordChecksBusy("too many password checks at once; try again in a second")
    _pending += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_executor(), fn, *args)
    finally:
        _pending -= 1


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValidationError(f"password must have at least {MIN_LENGTH} characters",
                              field="password")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    if len(password) < MIN_LENGTH:  # checked here too, so a short one costs no thread hop
        raise ValidationError(f"password must have at least {MIN_LENGTH} characters",
                              field="password")
    return await _off_loop(hash_password, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    return await _off_loop(verify_password, stored_hash, password)

"""Password hashing (argon2id): the one place that knows how passwords are stored.

An argon2 hash or check costs ~150-300 ms of CPU. The async forms run it on a small thread pool
of its own (argon2-cffi releases the GIL), so a login never stalls the event loop and a storm
of logins cannot take the default executor that DNS look-ups and other work share.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callcenter.errors import ValidationError

MIN_LENGTH = 8

_hasher = PasswordHasher()
# Verifying against a real hash for unknown logins keeps the timing of a wrong login and a
# wrong password alike, so logins cannot be enumerated.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


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
    return await asyncio.get_running_loop().run_in_executor(_pool, hash_password, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _pool, verify_password, stored_hash, password)

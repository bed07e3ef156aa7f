"""Password hashing (argon2id): the one place that knows how passwords are stored."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from callcenter.errors import ValidationError

MIN_LENGTH = 8

_hasher = PasswordHasher()
# Verifying against a real hash for unknown logins keeps the timing of a wrong login and a
# wrong password alike, so logins cannot be enumerated.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


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

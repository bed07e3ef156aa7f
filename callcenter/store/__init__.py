"""Persistence: a narrow store interface and its SQLite implementation."""

from callcenter.store.base import (
    CallerIndex,
    Conflict,
    NotFound,
    PhoneMatch,
    Store,
    StoreError,
)

__all__ = ["CallerIndex", "Conflict", "NotFound", "PhoneMatch", "Store", "StoreError"]

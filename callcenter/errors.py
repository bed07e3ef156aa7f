"""Errors the core raises at its boundary, each with a stable machine-readable id.

The REST layer maps them to HTTP statuses; the id lets an integrator branch on the error
without parsing English text.
"""

from __future__ import annotations


class CallcenterError(Exception):
    error_id = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(CallcenterError):
    """Input that cannot be accepted as it is; nothing was changed."""

    error_id = "invalid-input"


class PermissionDenied(CallcenterError):
    error_id = "forbidden"


class LineUnavailable(CallcenterError):
    """The PBX line needed for an action is not connected."""

    error_id = "line-unavailable"


class CallActionFailed(CallcenterError):
    """The PBX refused or could not carry out a call action (the message says why)."""

    error_id = "call-action-failed"


class CallNotFound(CallcenterError):
    error_id = "call-not-found"

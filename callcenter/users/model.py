"""Results and errors of user administration."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.errors import CallcenterError, PermissionDenied


class LastAdmin(CallcenterError):
    """The change would leave no enabled admin; nothing was changed."""

    error_id = "last-admin"


@dataclass(frozen=True, slots=True)
class Handover:
    from_user: int
    to_user: int
    task_ids: list[int]
    client_ids: list[int]


class PasswordChangeRequired(PermissionDenied):
    """The user logged in with a one-time password: nothing but choosing a new one."""

    error_id = "password-change-required"

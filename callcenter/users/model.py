"""Results and errors of user administration."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.errors import CallcenterError, PermissionDenied


class LastAdmin(CallcenterError):
    """The change would leave no enabled admin; nothing was changed."""

    error_id = "last-admin"


@dataclass(frozen=True, slots=True)
class Access:
    """A user's state that an open console depends on."""

    active: bool
    session_epoch: int
    role: str
    one_time_login: bool


@dataclass(frozen=True, slots=True)
class Handover:
    from_user: int
    to_user: int
    task_ids: tuple[int, ...]
    client_ids: tuple[int, ...]


class PasswordChangeRequired(PermissionDenied):
    """The user logged in with a one-time password: nothing but choosing a new one."""

    error_id = "password-change-required"

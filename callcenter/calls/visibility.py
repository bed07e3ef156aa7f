"""Who may see which call event: the one rule the websocket hub and the call API share."""

from __future__ import annotations

from typing import Any

from callcenter.models import Role, User


def involves(user: User, call: dict[str, Any], match: dict[str, Any] | None) -> bool:
    """The call rang, rings or was answered at the user's extension, was transferred to it,
    was placed by the user, or is with one of the user's clients."""
    ext = user.extension
    if user.id in call.get("users", ()):
        return True
    if ext and (ext in call.get("ringing", ()) or ext == call.get("current_extension")):
        return True
    answered = call.get("answered_by") or {}
    if ext and answered.get("extension") == ext:
        return True
    if user.id in (answered.get("user_id"), call.get("originated_by"), call.get("placed_by")):
        return True
    if ext and any(t.get("to") == ext or t.get("from") == ext for t in call.get("transfers", ())):
        return True
    manager = (match or {}).get("manager") or {}
    return manager.get("id") == user.id


def can_see_event(user: User, data: dict[str, Any], managers_see_all: bool) -> bool:
    """Secretaries and admins see every call; a manager sees calls that involve them (or every
    call when the office lets managers see all clients)."""
    if user.role is not Role.MANAGER or managers_see_all:
        return True
    call = data.get("call")
    if call is None:
        return True  # not a call event: nothing client-specific in it
    return involves(user, call, data.get("match"))

"""Who may see which fax: the rule the fax API and the websocket hub share."""

from __future__ import annotations

from typing import Any

from callcenter.models import Role, User


def can_see_fax(user: User, fax: dict[str, Any], managers_see_all: bool) -> bool:
    """Secretaries and admins see every fax; a manager only their clients' (and the faxes
    they sent themselves)."""
    if user.role is not Role.MANAGER or managers_see_all:
        return True
    return fax.get("manager_id") == user.id or (
        fax.get("direction") == "out" and fax.get("user_id") == user.id)

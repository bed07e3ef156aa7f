"""Who may see which call event: the one rule the websocket hub and the call API share."""

from __future__ import annotations

from typing import Any

from callcenter.faxes.visibility import can_see_fax
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
    call when the office lets managers see all clients). A campaign's events go to its owner
    and the admins, do-not-send entries to the admins."""
    campaign = data.get("campaign")
    if campaign is not None:  # a campaign event: its owner and the admins
        return user.role is Role.ADMIN or user.id == campaign.get("owner_id")
    if "opt_out" in data:  # a number on the do-not-send list: the admins' business
        return user.role is Role.ADMIN
    if user.role is not Role.MANAGER or managers_see_all:
        return True
    fax = data.get("fax")
    if fax is not None:  # fax.status / fax.received: the fax's client decides
        return can_see_fax(user, fax, managers_see_all)
    sms = data.get("sms")
    if sms is not None:  # an SMS event: the client's manager, or the user who wrote it
        return user.id in (sms.get("manager_id"), sms.get("user_id"))
    call = data.get("call")
    if call is None:
        return True  # not a call event: nothing client-specific in it
    return involves(user, call, data.get("match"))


def visible_candidates(user: User, candidates: list[dict[str, Any]],
                       managers_see_all: bool) -> list[dict[str, Any]]:
    """The tie candidates (clients sharing a caller's number) the user may see: a manager
    sees only their own clients unless the office lets managers see all — the rule of
    ``GET /api/lookup``, for the websocket and the call log too."""
    if user.role is not Role.MANAGER or managers_see_all:
        return candidates
    return [c for c in candidates if c.get("manager_id") == user.id]


def match_for_user(user: User, match: dict[str, Any] | None,
                   managers_see_all: bool) -> dict[str, Any] | None:
    """``match`` with the candidates the user may not see removed; None when nothing had to
    go (the caller then shares one serialised event between every console).

    As for ``GET /api/lookup``, a tie left with no visible candidate is an unknown caller to
    the user. One left with a single client stays a "tie" (the candidates do not carry the
    client's history that a "client" match has); the console shows it as that client's
    match, with no choice to make."""
    candidates = (match or {}).get("candidates") or []
    if not candidates:
        return None
    kept = visible_candidates(user, candidates, managers_see_all)
    if len(kept) == len(candidates):
        return None
    assert match is not None
    # The total shown as "and N more" counts only what the user may see.
    own = dict(match, candidates=kept, candidates_total=len(kept))
    if match.get("kind") == "tie" and not kept:
        own["kind"] = "unknown"
    return own


def event_for_user(user: User, data: dict[str, Any], managers_see_all: bool) -> dict[str, Any]:
    """A call event's (or live snapshot's) data as the user may see it."""
    match = match_for_user(user, data.get("match"), managers_see_all)
    return data if match is None else dict(data, match=match)


def call_for_user(user: User, call: dict[str, Any], managers_see_all: bool) -> dict[str, Any]:
    """A call-log entry as the user may see it (its tie candidates filtered, in place)."""
    call["candidates"] = visible_candidates(user, call.get("candidates") or [],
                                            managers_see_all)
    return call

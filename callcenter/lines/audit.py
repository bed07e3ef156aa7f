"""The one place the line manager and the trunk admin record who changed what.

Kept to one function so that wiring it to the audit log (callcenter/audit/, the admin
helper's work) is a one-line change; until then each change is logged (never a secret: the
before/after given here are already masked by :func:`masked`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("callcenter.audit.lines")

MASK = "••••••"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks for a change, and from where ("cli" for the command line)."""

    user_id: int | None
    login: str
    address: str = ""


CLI_ACTOR = Actor(None, "cli", "cli")


def masked(public: dict[str, Any] | None, secrets_changed: set[str] = frozenset()
           ) -> dict[str, Any] | None:
    """A line's public form with each secret shown as a mask (and whether it changed)."""
    if public is None:
        return None
    out = {k: v for k, v in public.items() if k != "secrets_set"}
    out["secrets"] = {name: MASK + (" (changed)" if name in secrets_changed else "")
                      for name in public.get("secrets_set", [])}
    return out


async def record(store: Any, actor: Actor, action: str, target: str,
                 before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    log.info("audit: %s (%s) %s %s", actor.login, actor.address or "-", action, target)

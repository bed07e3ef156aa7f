"""The one place the line manager, the trunk admin and the ``callcenter line`` commands record
who changed what: an entry of the audit log (callcenter/audit/), and a log line. Secrets are
masked twice: :func:`masked` never passes a secret's value on, and the audit core masks every
secret-named key again before anything is stored."""

from __future__ import annotations

import logging
from typing import Any

from callcenter.audit import Actor, AuditService
from callcenter.audit.model import HIDDEN

log = logging.getLogger("callcenter.audit.lines")

MASK = HIDDEN  # one mask string for every secret shown masked


CLI_ACTOR = Actor(None, "cli", "local")
__all__ = ["CLI_ACTOR", "MASK", "Actor", "masked", "record"]


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
                 before: dict[str, Any] | None, after: dict[str, Any] | None,
                 kind: str = "line") -> None:
    """``action`` as the audit log names them ("create", "update", "enable", "disable",
    "delete"); ``target`` the line's name, or "line/trunk" for a trunk."""
    log.info("audit: %s (%s) %s %s %s", actor.label, actor.address or "-", action, kind,
             target)
    await AuditService(store).record_by(actor, action, kind, target, before, after)

"""Recording and reading the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from callcenter.audit.model import Actor, AuditEntry, AuditFilter, mask


class AuditStore(Protocol):
    async def add_audit(self, at: datetime, actor_id: int | None, actor_label: str,
                        address: str, action: str, target_kind: str, target_id: str | None,
                        before: dict[str, Any] | None, after: dict[str, Any] | None
                        ) -> AuditEntry: ...

    async def list_audit(self, f: AuditFilter) -> list[AuditEntry]: ...


# Bounds on what an entry keeps of texts that came from outside (a login, an address).
MAX_LABEL = 200
MAX_ADDRESS = 100


class AuditService:
    """The one way changes are written to the audit log: secrets are masked here, before
    anything is stored."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def record(self, actor: int | None, actor_label: str, address: str, action: str,
                     target_kind: str, target_id: object, before: dict[str, Any] | None,
                     after: dict[str, Any] | None) -> AuditEntry:
        b, a = mask(before, after)
        return await self._store.add_audit(
            datetime.now(UTC), actor, actor_label[:MAX_LABEL], address[:MAX_ADDRESS], action,
            target_kind, None if target_id is None else str(target_id), b, a)

    async def record_by(self, who: Actor, action: str, target_kind: str, target_id: object,
                        before: dict[str, Any] | None, after: dict[str, Any] | None
                        ) -> AuditEntry:
        return await self.record(who.user_id, who.label, who.address, action, target_kind,
                                 target_id, before, after)

    async def list(self, f: AuditFilter) -> list[AuditEntry]:
        return await self._store.list_audit(f)

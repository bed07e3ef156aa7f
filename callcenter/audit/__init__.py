"""The audit log: who changed which setting or record, when, from which address, before and
after, with secrets masked."""

from callcenter.audit.model import (
    CLI,
    SECRET_WORDS,
    SYSTEM,
    Actor,
    AuditEntry,
    AuditFilter,
    changed_only,
    is_secret,
    mask,
)
from callcenter.audit.service import AuditService

__all__ = ["CLI", "SECRET_WORDS", "SYSTEM", "Actor", "AuditEntry", "AuditFilter",
           "AuditService", "changed_only", "is_secret", "mask"]

"""The store interface the rest of the product depends on.

Callers see only these methods and the domain dataclasses, never SQL, so a PostgreSQL store can
implement the same Protocol later. The caller-ID index is a separate, synchronous interface:
a screen-pop lookup must cost microseconds on the event loop, not a thread hand-off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from callcenter.audit.model import AuditEntry, AuditFilter
from callcenter.models import (
    Client,
    ClientKind,
    Contact,
    CustomField,
    FieldType,
    Interaction,
    InteractionKind,
    Phone,
    Role,
    Task,
    TaskKind,
    User,
)
from callcenter.phones import Number

if TYPE_CHECKING:
    from callcenter.routing.table import Group
    from callcenter.users.model import Access, Handover


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError):
    def __init__(self, what: str, ident: object) -> None:
        super().__init__(f"{what} {ident} not found")
        self.what = what
        self.ident = ident


class Conflict(StoreError):
    """A unique value (login, extension, field name) is taken, or a reference is invalid."""


# Hashable and never changed, but not frozen: a frozen dataclass's __init__ costs ~0.6 µs more,
# a third of a screen-pop's lookup (benchmarks/lookup.py). Treat it as immutable.
@dataclass(slots=True, unsafe_hash=True)
class PhoneMatch:
    client_id: int
    client_name: str
    contact_id: int
    contact_name: str
    manager_id: int | None
    phone_raw: str
    matched_by: str  # "e164" or "tail"


def phone_matches(rows: Sequence[Sequence[Any]], how: str) -> list[PhoneMatch]:
    """One match per contact, in the rows' order, from (client_id, client_name, contact_id,
    contact_name, manager_id, raw) rows: a contact with two rows for the number (home and
    work) is one candidate, not a tie."""
    seen: set[int] = set()
    out = []
    for client_id, client_name, contact_id, contact_name, manager_id, raw in rows:
        if contact_id in seen:
            continue
        seen.add(contact_id)
        out.append(PhoneMatch(client_id, client_name, contact_id, contact_name, manager_id,
                              raw, how))
    return out


@dataclass(slots=True)
class PhoneInput:
    raw: str
    number: Number
    kind: str = "work"


@dataclass(slots=True)
class ContactInput:
    name: str
    position: str = ""
    email: str = ""
    phones: list[PhoneInput] = field(default_factory=list)


@dataclass(slots=True)
class ClientInput:
    name: str
    kind: ClientKind = ClientKind.COMPANY
    manager_id: int | None = None
    notes: str = ""
    custom: dict[str, str] = field(default_factory=dict)
    contacts: list[ContactInput] = field(default_factory=list)


@dataclass(slots=True)
class CallFilter:
    since: datetime | None = None
    until: datetime | None = None
    number: str | None = None  # e164 or digits tail
    client_id: int | None = None
    user_id: int | None = None
    state: str | None = None
    visible_to: int | None = None  # a restricted manager: only calls involving them
    limit: int = 100
    offset: int = 0


class CallerIndex(Protocol):
    """Synchronous, microsecond-cheap reads for the screen-pop path."""

    def match(self, number: Number, tail_digits: int) -> list[PhoneMatch]: ...

    def lookup(self, e164: str | None, tail: str) -> tuple[PhoneMatch, ...]:
        """match() for a caller already keyed: the numbers equal to ``e164`` (when given)
        if any, else those ending in ``tail``."""
        ...

    def by_e164(self, e164: str) -> list[PhoneMatch]: ...

    def by_tail(self, tail: str) -> list[PhoneMatch]: ...

    def user_by_extension(self, extension: str) -> User | None: ...


class Store(Protocol):
    """Every implementation serialises its writes (concurrent callers never share a
    transaction) and keeps the call log's writes idempotent: ``upsert_call`` by the call id,
    ``add_interaction`` and ``create_task`` by ``(kind, ref)`` when a ref is given, so a call
    replayed from the journal is stored once."""

    caller_index: CallerIndex

    async def close(self) -> None: ...
    def atomic(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    # users
    async def create_user(self, login: str, name: str, role: Role, extension: str | None = None,
                          password_hash: str | None = None, language: str = "en") -> User: ...
    async def get_user(self, user_id: int) -> User: ...
    async def user_by_login(self, login: str) -> tuple[User, str | None] | None: ...
    async def list_users(self) -> list[User]: ...
    async def session_epoch(self, user_id: int) -> int: ...
    async def end_sessions(self, user_id: int) -> None: ...
    async def update_user(self, user_id: int, **changes: Any) -> User: ...

    # clients, contacts, phones
    async def create_client(self, data: ClientInput) -> Client: ...
    async def get_client(self, client_id: int) -> Client: ...
    async def list_clients(self, *, search: str = "", manager_id: int | None = None,
                           limit: int = 50, offset: int = 0) -> list[Client]: ...
    async def update_client(self, client_id: int, **changes: Any) -> Client: ...
    async def delete_client(self, client_id: int) -> None: ...
    async def add_contact(self, client_id: int, data: ContactInput) -> Contact: ...
    async def get_contact(self, contact_id: int) -> Contact: ...
    async def update_contact(self, contact_id: int, **changes: Any) -> Contact: ...
    async def delete_contact(self, contact_id: int) -> None: ...
    async def add_phone(self, contact_id: int, data: PhoneInput) -> Phone: ...
    async def get_phone(self, phone_id: int) -> Phone: ...
    async def delete_phone(self, phone_id: int) -> None: ...
    async def import_clients(self, clients: Sequence[ClientInput]) -> list[int]: ...

    # custom fields
    async def create_custom_field(self, name: str, label: str, type: FieldType) -> CustomField: ...
    async def list_custom_fields(self) -> list[CustomField]: ...
    async def delete_custom_field(self, field_id: int) -> None: ...

    # interactions and tasks
    async def add_interaction(self, kind: InteractionKind, at: datetime, summary: str, *,
                              client_id: int | None = None, contact_id: int | None = None,
                              user_id: int | None = None, ref: str | None = None,
                              data: dict[str, Any] | None = None) -> Interaction: ...
    async def list_interactions(self, client_id: int, limit: int = 50) -> list[Interaction]: ...
    async def create_task(self, kind: TaskKind, title: str, *, due_at: datetime | None = None,
                          assignee_id: int | None = None, assignee_role: Role | None = None,
                          client_id: int | None = None, phone: str | None = None,
                          ref: str | None = None, voicemail: bool = False) -> Task: ...
    async def get_task(self, task_id: int) -> Task: ...
    async def list_tasks(self, *, done: bool | None = None, assignee_id: int | None = None,
                         client_id: int | None = None, limit: int = 100) -> list[Task]: ...
    async def update_task(self, task_id: int, **changes: Any) -> Task: ...
    async def open_callback_task(self, phone: str) -> Task | None: ...

    # call log and recordings
    async def upsert_call(self, row: dict[str, Any]) -> None: ...
    async def close_dangling_calls(self, cause: str, line: str | None = None
                                   ) -> list[dict[str, Any]]: ...
    async def list_calls(self, f: CallFilter) -> list[dict[str, Any]]: ...
    async def get_call(self, call_id: str) -> dict[str, Any]: ...
    async def add_recording(self, call_id: str, pbx_path: str, kind: str = "call") -> None: ...
    async def schedule_recordings(self, call_id: str, delay: float = 2.0) -> None: ...
    async def close_callback_tasks(self, phone: str, ref: str) -> int: ...
    async def client_names(self) -> list[tuple[int, str]]: ...
    async def due_recordings(self, limit: int = 20) -> list[dict[str, Any]]: ...
    async def update_recording(self, recording_id: int, **changes: Any) -> None: ...
    async def get_recording(self, recording_id: int) -> dict[str, Any]: ...

    # audit log (callcenter.audit)
    async def add_audit(self, at: datetime, actor_id: int | None, actor_label: str,
                        address: str, action: str, target_kind: str, target_id: str | None,
                        before: dict[str, Any] | None, after: dict[str, Any] | None
                        ) -> AuditEntry: ...
    async def list_audit(self, f: AuditFilter) -> list[AuditEntry]: ...

    # user administration (callcenter.store.sqlite_users)
    async def enabled_admins(self) -> int: ...
    async def update_user_keeping_admin(self, user_id: int, **changes: Any) -> None: ...
    async def user_access(self, user_ids: Collection[int]) -> dict[int, Access]: ...
    async def hand_over(self, from_user: int, to_user: int,
                        audit: Callable[[Handover], Awaitable[Any]] | None = None
                        ) -> Handover: ...

    # settings and secretary groups (callcenter.store.sqlite_routing)
    async def get_settings(self) -> dict[str, Any]: ...
    async def set_setting(self, key: str, value: Any) -> None: ...
    async def list_groups(self) -> list[Group]: ...
    async def save_group(self, group_id: int | None, name: str, members: list[int],
                         dids: list[str], queues: list[str], lines: list[str]) -> int: ...
    async def delete_group(self, group_id: int) -> None: ...

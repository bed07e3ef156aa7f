"""Domain data of the client base: plain dataclasses, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Role(enum.StrEnum):
    SECRETARY = "secretary"
    MANAGER = "manager"
    ADMIN = "admin"
    SUPERVISOR = "supervisor"  # sees every report (and otherwise what a secretary sees)


class ClientKind(enum.StrEnum):
    COMPANY = "company"
    PERSON = "person"


class InteractionKind(enum.StrEnum):
    CALL = "call"
    SMS = "sms"
    FAX = "fax"
    NOTE = "note"


class TaskKind(enum.StrEnum):
    CALLBACK = "callback"
    REMINDER = "reminder"


class FieldType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    BOOL = "bool"


@dataclass(slots=True)
class User:
    id: int
    login: str
    name: str
    role: Role
    extension: str | None = None
    language: str = "en"
    active: bool = True
    one_time_login: bool = False  # logged in with an admin's one-time password: choose your own


@dataclass(slots=True)
class Phone:
    id: int
    contact_id: int
    raw: str
    e164: str | None
    digits: str
    kind: str = "work"


@dataclass(slots=True)
class Contact:
    id: int
    client_id: int
    name: str
    position: str = ""
    email: str = ""
    phones: list[Phone] = field(default_factory=list)


@dataclass(slots=True)
class Client:
    id: int
    name: str
    kind: ClientKind = ClientKind.COMPANY
    manager_id: int | None = None
    notes: str = ""
    custom: dict[str, object] = field(default_factory=dict)
    contacts: list[Contact] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(slots=True)
class CustomField:
    id: int
    name: str
    label: str
    type: FieldType = FieldType.TEXT


@dataclass(slots=True)
class Interaction:
    id: int
    client_id: int | None
    kind: InteractionKind
    at: datetime
    summary: str
    user_id: int | None = None
    contact_id: int | None = None
    ref: str | None = None
    data: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    id: int
    kind: TaskKind
    title: str
    due_at: datetime | None
    assignee_id: int | None
    assignee_role: Role | None
    client_id: int | None
    phone: str | None
    done: bool
    created_at: datetime
    done_at: datetime | None = None
    ref: str | None = None
    voicemail: bool = False  # a callback for a caller who left a voicemail

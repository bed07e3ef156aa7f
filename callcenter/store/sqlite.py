"""SQLite implementation of the store: aiosqlite for writes and reports, sqlite3 for lookups."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

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
from callcenter.store.base import (
    ClientInput,
    Conflict,
    ContactInput,
    NotFound,
    PhoneInput,
)
from callcenter.store.sqlite_audit import AuditMixin
from callcenter.store.sqlite_caller_index import USER_COLUMNS, SqliteCallerIndex, user_from_row
from callcenter.store.sqlite_callers import CallerNumbersMixin
from callcenter.store.sqlite_calls import CallLogMixin, now_utc, ts
from callcenter.store.sqlite_campaigns import CampaignsMixin
from callcenter.store.sqlite_db import DEFAULT_BUSY_TIMEOUT_MS, SqliteDb
from callcenter.store.sqlite_faxes import FaxStoreMixin
from callcenter.store.sqlite_lines import LinesMixin
from callcenter.store.sqlite_report_schedules import ReportSchedulesMixin
from callcenter.store.sqlite_reports import ReportsMixin
from callcenter.store.sqlite_routing import RoutingMixin
from callcenter.store.sqlite_sms import SmsStoreMixin
from callcenter.store.sqlite_users import UserAdminMixin


def parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _rev(number: Number) -> str:
    return number.digits[::-1]


class SqliteStore(CallLogMixin, AuditMixin, UserAdminMixin, RoutingMixin, FaxStoreMixin,
                  SmsStoreMixin, LinesMixin, CampaignsMixin, ReportsMixin,
                  ReportSchedulesMixin, CallerNumbersMixin):
    """The product's store on one SQLite file in WAL mode.

    Writes are serialised through one writer (see :mod:`callcenter.store.sqlite_db`); reads
    use their own connection and never wait for it.
    """

    def __init__(self, path: Path, db: SqliteDb) -> None:
        self.path = path
        self._db = db
        self.caller_index = SqliteCallerIndex(path, lambda: db.writes)

    @classmethod
    async def open(cls, path: str | Path, *, target_version: int | None = None,
                   busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> SqliteStore:
        path = Path(path)
        db = await SqliteDb.open(path, target_version=target_version,
                                 busy_timeout_ms=busy_timeout_ms)
        store = cls(path, db)
        if target_version is not None:  # an older schema (upgrade tests) may predate it
            store._callers_table = bool(await db.rows(
                "SELECT 1 FROM sqlite_master WHERE name = 'caller_numbers'"))
        return store

    async def close(self) -> None:
        self.caller_index.close()
        await self._db.close()

    # -- helpers ---------------------------------------------------------------------------

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._db.rows(sql, params)

    async def _one(self, sql: str, params: Sequence[Any], what: str, ident: object) -> Any:
        return await self._db.one(sql, params, what, ident)

    async def _insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT; returns the new row id."""
        cursor = await self._db.execute(sql, params)
        return int(cursor.lastrowid or 0)

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an UPDATE or DELETE; returns how many rows it touched."""
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    async def _transaction(self, work: Any) -> Any:
        return await self._db.in_transaction(work)

    def atomic(self) -> contextlib.AbstractAsyncContextManager[None]:
        """One transaction for a block of store calls (a change and its audit entry); blocks
        nest within one task."""
        return self._db.transaction()

    # -- users -----------------------------------------------------------------------------

    async def create_user(self, login: str, name: str, role: Role, extension: str | None = None,
                          password_hash: str | None = None, language: str = "en") -> User:
        user_id = await self._insert(
            "INSERT INTO users (login, name, role, extension, password_hash, language, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (login, name, Role(role).value, extension or None, password_hash, language,
             ts(now_utc())),
        )
        return await self.get_user(user_id)

    async def get_user(self, user_id: int) -> User:
        row = await self._one(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,),
                              "user", user_id)
        return user_from_row(row)

    async def user_by_login(self, login: str) -> tuple[User, str | None] | None:
        rows = await self._rows(
            f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE login = ?", (login,)
        )
        return (user_from_row(rows[0]), rows[0][8]) if rows else None

    async def session_epoch(self, user_id: int) -> int:
        row = await self._one("SELECT session_epoch FROM users WHERE id = ?", (user_id,),
                              "user", user_id)
        return int(row[0])

    async def end_sessions(self, user_id: int) -> None:
        await self._write("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?",
                          (user_id,))

    async def list_users(self) -> list[User]:
        rows = await self._rows(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")
        return [user_from_row(r) for r in rows]

    async def update_user(self, user_id: int, **changes: Any) -> User:
        allowed = {"name", "role", "extension", "password_hash", "language", "active",
                   "must_change_password"}
        await self._update("users", user_id, "user", allowed, changes)
        return await self.get_user(user_id)

    async def _update(self, table: str, ident: int, what: str, allowed: set[str],
                      changes: dict[str, Any]) -> None:
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a {what}")
        if not changes:
            await self._one(f"SELECT id FROM {table} WHERE id = ?", (ident,), what, ident)
            return
        values = [v.value if hasattr(v, "value") else v for v in changes.values()]
        sets = ", ".join(f"{k} = ?" for k in changes)
        if table == "clients":
            sets += ", updated_at = ?"
            values.append(ts(now_utc()))
        count = await self._write(f"UPDATE {table} SET {sets} WHERE id = ?", (*values, ident))
        if not count:
            raise NotFound(what, ident)

    # -- clients ---------------------------------------------------------------------------

    async def create_client(self, data: ClientInput) -> Client:
        async def work() -> int:
            return await self._insert_client(data)

        client_id = await self._transaction(work)
        return await self.get_client(client_id)

    async def _insert_client(self, data: ClientInput, *, callers: bool = True) -> int:
        stamp = ts(now_utc())
        client_id = await self._insert(
            "INSERT INTO clients (name, kind, manager_id, notes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (data.name, ClientKind(data.kind).value, data.manager_id, data.notes, stamp, stamp),
        )
        await self._set_custom(client_id, data.custom)
        for contact in data.contacts:
            await self._insert_contact(client_id, contact)
        if callers:  # else the caller fills caller_numbers for many clients at once
            await self._refresh_callers(client_id)
        return client_id

    async def _set_custom(self, client_id: int, custom: dict[str, Any]) -> None:
        if not custom:
            return
        fields = {f.name: f for f in await self.list_custom_fields()}
        for name, value in custom.items():
            if name not in fields:
                raise Conflict(f"unknown custom field {name!r}")
            if value is None or value == "":
                await self._write(
                    "DELETE FROM custom_values WHERE client_id = ? AND field_id = ?",
                    (client_id, fields[name].id),
                )
                continue
            await self._write(
                "INSERT INTO custom_values (client_id, field_id, value) VALUES (?, ?, ?)"
                " ON CONFLICT (client_id, field_id) DO UPDATE SET value = excluded.value",
                (client_id, fields[name].id, str(value)),
            )

    async def _insert_contact(self, client_id: int, data: ContactInput) -> int:
        contact_id = await self._insert(
            "INSERT INTO contacts (client_id, name, position, email) VALUES (?, ?, ?, ?)",
            (client_id, data.name, data.position, data.email),
        )
        for phone in data.phones:
            await self._insert_phone(contact_id, phone)
        return contact_id

    async def _insert_phone(self, contact_id: int, data: PhoneInput) -> int:
        return await self._insert(
            "INSERT INTO phones (contact_id, raw, e164, digits, rev, kind)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (contact_id, data.raw, data.number.e164, data.number.digits, _rev(data.number),
             data.kind),
        )

    async def get_client(self, client_id: int) -> Client:
        found = await self._clients_by_ids([client_id])
        if not found:
            raise NotFound("client", client_id)
        return found[0]

    async def _clients_by_ids(self, ids: Sequence[int]) -> list[Client]:
        """Clients with contacts, phones and custom fields in four queries, whatever the count."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        clients = {
            r[0]: Client(r[0], r[1], ClientKind(r[2]), r[3], r[4], created_at=parse_ts(r[5]))
            for r in await self._rows(
                "SELECT id, name, kind, manager_id, notes, created_at FROM clients"
                f" WHERE id IN ({marks})", tuple(ids))
        }
        for client_id, name, kind, value in await self._rows(
            "SELECT v.client_id, f.name, f.type, v.value FROM custom_values v"
            f" JOIN custom_fields f ON f.id = v.field_id WHERE v.client_id IN ({marks})",
            tuple(ids)):
            clients[client_id].custom[name] = _custom_value(FieldType(kind), value)
        contacts: dict[int, Contact] = {}
        for r in await self._rows(
            "SELECT id, client_id, name, position, email FROM contacts"
            f" WHERE client_id IN ({marks}) ORDER BY id", tuple(ids)):
            contacts[r[0]] = Contact(r[0], r[1], r[2], r[3], r[4])
            clients[r[1]].contacts.append(contacts[r[0]])
        if contacts:
            cmarks = ",".join("?" * len(contacts))
            for r in await self._rows(
                "SELECT id, contact_id, raw, e164, digits, kind FROM phones"
                f" WHERE contact_id IN ({cmarks}) ORDER BY id", tuple(contacts)):
                contacts[r[1]].phones.append(Phone(*r))
        return [clients[i] for i in ids if i in clients]

    async def _contacts_of(self, client_id: int) -> list[Contact]:
        found = await self._clients_by_ids([client_id])
        return found[0].contacts if found else []

    async def list_clients(self, *, search: str = "", manager_id: int | None = None,
                           limit: int = 50, offset: int = 0) -> list[Client]:
        where, params = ["1 = 1"], []
        if manager_id is not None:
            where.append("cl.manager_id = ?")
            params.append(manager_id)
        if search:
            pattern = f"%{_like_escape(search.casefold())}%"
            digits = "".join(ch for ch in search if ch.isdigit())
            cond = ["casefold(cl.name) LIKE ? ESCAPE '\\'",
                    "EXISTS (SELECT 1 FROM contacts c WHERE c.client_id = cl.id"
                    " AND casefold(c.name) LIKE ? ESCAPE '\\')"]
            params += [pattern, pattern]
            if len(digits) >= 3:
                cond.append("EXISTS (SELECT 1 FROM contacts c JOIN phones p ON p.contact_id = c.id"
                            " WHERE c.client_id = cl.id AND p.digits LIKE ?)")
                params.append(f"%{digits}%")
            where.append("(" + " OR ".join(cond) + ")")
        rows = await self._rows(
            "SELECT cl.id FROM clients cl WHERE " + " AND ".join(where)
            + " ORDER BY cl.name COLLATE NOCASE, cl.id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return await self._clients_by_ids([r[0] for r in rows])

    async def update_client(self, client_id: int, **changes: Any) -> Client:
        custom = changes.pop("custom", None)

        async def work() -> None:
            await self._update("clients", client_id, "client",
                               {"name", "kind", "manager_id", "notes"}, changes)
            if custom:
                await self._set_custom(client_id, custom)
            if changes.keys() & {"name", "manager_id"}:
                await self._refresh_callers(client_id)

        await self._transaction(work)
        return await self.get_client(client_id)

    async def delete_client(self, client_id: int) -> None:
        if not await self._write("DELETE FROM clients WHERE id = ?", (client_id,)):
            raise NotFound("client", client_id)

    async def import_clients(self, clients: Sequence[ClientInput]) -> list[int]:
        """All or nothing: one transaction, so a failure leaves no half-imported client."""

        async def work() -> list[int]:
            ids = [await self._insert_client(c, callers=False) for c in clients]
            await self._fill_callers(ids)
            return ids

        return await self._transaction(work)

    # -- contacts and phones ---------------------------------------------------------------

    async def add_contact(self, client_id: int, data: ContactInput) -> Contact:
        await self._one("SELECT id FROM clients WHERE id = ?", (client_id,), "client", client_id)

        async def work() -> int:
            contact_id = await self._insert_contact(client_id, data)
            await self._refresh_callers(client_id)
            return contact_id

        return await self.get_contact(await self._transaction(work))

    async def get_contact(self, contact_id: int) -> Contact:
        row = await self._one("SELECT client_id FROM contacts WHERE id = ?", (contact_id,),
                              "contact", contact_id)
        for contact in await self._contacts_of(row[0]):
            if contact.id == contact_id:
                return contact
        raise NotFound("contact", contact_id)

    async def update_contact(self, contact_id: int, **changes: Any) -> Contact:
        async def work() -> None:
            await self._update("contacts", contact_id, "contact", {"name", "position", "email"},
                               changes)
            if "name" in changes:
                await self._refresh_callers_of_contact(contact_id)

        await self._transaction(work)
        return await self.get_contact(contact_id)

    async def delete_contact(self, contact_id: int) -> None:
        if not await self._write("DELETE FROM contacts WHERE id = ?", (contact_id,)):
            raise NotFound("contact", contact_id)

    async def add_phone(self, contact_id: int, data: PhoneInput) -> Phone:
        await self._one("SELECT id FROM contacts WHERE id = ?", (contact_id,), "contact",
                        contact_id)
        async def work() -> int:
            phone_id = await self._insert_phone(contact_id, data)
            await self._refresh_callers_of_contact(contact_id)
            return phone_id

        return await self.get_phone(await self._transaction(work))

    async def get_phone(self, phone_id: int) -> Phone:
        row = await self._one(
            "SELECT id, contact_id, raw, e164, digits, kind FROM phones WHERE id = ?",
            (phone_id,), "phone", phone_id,
        )
        return Phone(*row)

    async def delete_phone(self, phone_id: int) -> None:
        if not await self._write("DELETE FROM phones WHERE id = ?", (phone_id,)):
            raise NotFound("phone", phone_id)

    # -- custom fields ---------------------------------------------------------------------

    async def create_custom_field(self, name: str, label: str, type: FieldType) -> CustomField:
        field_id = await self._insert(
            "INSERT INTO custom_fields (name, label, type) VALUES (?, ?, ?)",
            (name, label, FieldType(type).value),
        )
        return CustomField(field_id, name, label, FieldType(type))

    async def list_custom_fields(self) -> list[CustomField]:
        return [
            CustomField(r[0], r[1], r[2], FieldType(r[3]))
            for r in await self._rows("SELECT id, name, label, type FROM custom_fields ORDER BY id")
        ]

    async def delete_custom_field(self, field_id: int) -> None:
        if not await self._write("DELETE FROM custom_fields WHERE id = ?", (field_id,)):
            raise NotFound("custom field", field_id)

    # -- interactions ----------------------------------------------------------------------

    async def add_interaction(self, kind: InteractionKind, at: datetime, summary: str, *,
                              client_id: int | None = None, contact_id: int | None = None,
                              user_id: int | None = None, ref: str | None = None,
                              data: dict[str, Any] | None = None) -> Interaction:
        payload = json.dumps(data or {}, ensure_ascii=False)
        if ref is not None:
            # Idempotent by (kind, ref): a call logged again after a resync updates its row.
            async with self._db.transaction():
                interaction_id = await self._upsert_interaction(
                    kind, at, summary, client_id, contact_id, user_id, ref, payload)
        else:
            interaction_id = await self._insert(
                "INSERT INTO interactions (client_id, contact_id, kind, at, user_id, summary, ref,"
                " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (client_id, contact_id, InteractionKind(kind).value, ts(at), user_id, summary,
                 None, payload),
            )
        return Interaction(interaction_id, client_id, InteractionKind(kind), at, summary, user_id,
                           contact_id, ref, data or {})

    async def _upsert_interaction(self, kind: InteractionKind, at: datetime, summary: str,
                                  client_id: int | None, contact_id: int | None,
                                  user_id: int | None, ref: str, payload: str) -> int:
        await self._insert(
            "INSERT INTO interactions (client_id, contact_id, kind, at, user_id, summary, ref,"
            " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, ref) WHERE ref IS NOT"
            " NULL DO UPDATE SET client_id = excluded.client_id, contact_id ="
            " excluded.contact_id, user_id = excluded.user_id, summary = excluded.summary,"
            " data = excluded.data",
            (client_id, contact_id, InteractionKind(kind).value, ts(at), user_id, summary, ref,
             payload),
        )
        row = await self._one(
            "SELECT id FROM interactions WHERE kind = ? AND ref = ?", (kind, ref),
            "interaction", ref,
        )
        return int(row[0])

    async def list_interactions(self, client_id: int, limit: int = 50) -> list[Interaction]:
        rows = await self._rows(
            "SELECT id, client_id, kind, at, summary, user_id, contact_id, ref, data"
            " FROM interactions WHERE client_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            (client_id, limit),
        )
        return [
            Interaction(r[0], r[1], InteractionKind(r[2]), parse_ts(r[3]) or now_utc(), r[4],
                        r[5], r[6], r[7], json.loads(r[8]))
            for r in rows
        ]

    # -- tasks -----------------------------------------------------------------------------

    _TASK_COLUMNS = ("id, kind, title, due_at, assignee_id, assignee_role, client_id, phone, done,"
                     " created_at, done_at, ref, voicemail")

    @staticmethod
    def _task(r: Sequence[Any]) -> Task:
        return Task(r[0], TaskKind(r[1]), r[2], parse_ts(r[3]), r[4],
                    Role(r[5]) if r[5] else None, r[6], r[7], bool(r[8]),
                    parse_ts(r[9]) or now_utc(), parse_ts(r[10]), r[11], bool(r[12]))

    async def create_task(self, kind: TaskKind, title: str, *, due_at: datetime | None = None,
                          assignee_id: int | None = None, assignee_role: Role | None = None,
                          client_id: int | None = None, phone: str | None = None,
                          ref: str | None = None, voicemail: bool = False) -> Task:
        async def work() -> int:
            if ref is not None:
                # Idempotent by (kind, ref): a call replayed from the journal after a restart
                # must not give its caller a second callback task.
                found = await self._rows("SELECT id FROM tasks WHERE kind = ? AND ref = ?"
                                         " ORDER BY id LIMIT 1", (TaskKind(kind).value, ref))
                if found:
                    return int(found[0][0])
            return await self._insert(
                "INSERT INTO tasks (kind, title, due_at, assignee_id, assignee_role, client_id,"
                " phone, created_at, ref, voicemail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (TaskKind(kind).value, title, ts(due_at), assignee_id,
                 Role(assignee_role).value if assignee_role else None, client_id, phone,
                 ts(now_utc()), ref, int(voicemail)),
            )

        return await self.get_task(await self._transaction(work))

    async def get_task(self, task_id: int) -> Task:
        row = await self._one(f"SELECT {self._TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,),
                              "task", task_id)
        return self._task(row)

    async def list_tasks(self, *, done: bool | None = None, assignee_id: int | None = None,
                         client_id: int | None = None, limit: int = 100) -> list[Task]:
        where, params = ["1 = 1"], []
        for column, value in (("done", done), ("assignee_id", assignee_id),
                              ("client_id", client_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(int(value) if isinstance(value, bool) else value)
        rows = await self._rows(
            f"SELECT {self._TASK_COLUMNS} FROM tasks WHERE {' AND '.join(where)}"
            " ORDER BY done, COALESCE(due_at, created_at), id LIMIT ?", (*params, limit)
        )
        return [self._task(r) for r in rows]

    async def update_task(self, task_id: int, **changes: Any) -> Task:
        if "done" in changes:
            changes["done_at"] = ts(now_utc()) if changes["done"] else None
            changes["done"] = int(bool(changes["done"]))
        if "due_at" in changes and isinstance(changes["due_at"], datetime):
            changes["due_at"] = ts(changes["due_at"])
        await self._update("tasks", task_id, "task",
                           {"title", "due_at", "assignee_id", "done", "done_at"}, changes)
        return await self.get_task(task_id)

    async def open_callback_task(self, phone: str) -> Task | None:
        rows = await self._rows(
            f"SELECT {self._TASK_COLUMNS} FROM tasks WHERE phone = ? AND done = 0"
            " AND kind = 'callback' ORDER BY id LIMIT 1", (phone,)
        )
        return self._task(rows[0]) if rows else None

    async def close_callback_tasks(self, phone: str, ref: str) -> int:
        """The number was reached (answered call in or out): its callback tasks are done."""
        return await self._write(
            "UPDATE tasks SET done = 1, done_at = ?, ref = COALESCE(ref, ?) WHERE phone = ?"
            " AND done = 0 AND kind = 'callback'", (ts(now_utc()), ref, phone))

    async def client_names(self) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in await self._rows("SELECT id, name FROM clients")]


def _custom_value(kind: FieldType, value: str) -> object:
    if kind is FieldType.NUMBER:
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if kind is FieldType.BOOL:
        return value.lower() in {"1", "true", "yes"}
    return value


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

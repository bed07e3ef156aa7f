"""Client-base service: validates input from the API or the importer, then asks the store.

Input arrives as JSON-like mappings; everything is checked before anything is written, so a
bad request changes nothing and the error names the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from callcenter.config import PhonesConfig
from callcenter.errors import ValidationError
from callcenter.models import Client, ClientKind, Contact, FieldType, Phone, Role
from callcenter.phones import Number, NumberKind, normalize
from callcenter.store.base import ClientInput, ContactInput, NotFound, PhoneInput, Store

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TEXT = 2000


def text_field(data: Mapping[str, Any], key: str, *, required: bool = False, default: str = "",
          where: str = "") -> str:
    value = data.get(key, None)
    label = f"{where}{key}"
    if value is None:
        if required:
            raise ValidationError(f"{label} is required", field=label)
        return default
    if not isinstance(value, str):
        raise ValidationError(f"{label} must be text", field=label)
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{label} must not be empty", field=label)
    if len(value) > MAX_TEXT:
        raise ValidationError(f"{label} is longer than {MAX_TEXT} characters", field=label)
    return value


def reject_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
            f"{' in ' + where.rstrip('.') if where else ''}; allowed: {', '.join(sorted(allowed))}",
            field=where + unknown[0],
        )


def _mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{where or 'body'} must be a JSON object", field=where or None)
    return data


class ClientService:
    def __init__(self, store: Store, phones: PhonesConfig) -> None:
        self.store = store
        self.phones = phones

    def normalize(self, raw: str) -> Number:
        return normalize(raw, self.phones.default_region,
                         max_extension_digits=self.phones.max_extension_digits)

    # -- parsing of API input ---------------------------------------------------------------

    def phone_input(self, data: Any, where: str = "") -> PhoneInput:
        if isinstance(data, str):
            data = {"number": data}
        data = _mapping(data, where)
        reject_unknown(data, {"number", "kind"}, where)
        raw = text_field(data, "number", required=True, where=where)
        number = self.normalize(raw)
        label = f"{where}number"
        if number.kind is NumberKind.WITHHELD:
            raise ValidationError(f"{label} {raw!r} is not a phone number", field=label)
        if number.kind is NumberKind.EXTENSION:
            raise ValidationError(
                f"{label} {raw!r} looks like an internal extension; a client's phone needs at "
                "least 7 digits", field=label)
        if number.kind is NumberKind.INVALID:
            raise ValidationError(f"{label} {raw!r} is too short to match a caller", field=label)
        kind = text_field(data, "kind", default="work", where=where) or "work"
        return PhoneInput(raw, number, kind)

    def contact_input(self, data: Any, where: str = "") -> ContactInput:
        data = _mapping(data, where)
        reject_unknown(data, {"name", "position", "email", "phones"}, where)
        email = text_field(data, "email", where=where)
        if email and ("@" not in email or " " in email):
            raise ValidationError(f"{where}email {email!r} is not an e-mail address",
                                  field=f"{where}email")
        phones = data.get("phones", [])
        if not isinstance(phones, list):
            raise ValidationError(f"{where}phones must be a list", field=f"{where}phones")
        return ContactInput(
            text_field(data, "name", where=where),
            text_field(data, "position", where=where),
            email,
            [self.phone_input(p, f"{where}phones[{i}].") for i, p in enumerate(phones)],
        )

    async def client_input(self, data: Any) -> ClientInput:
        data = _mapping(data, "")
        reject_unknown(data, {"name", "kind", "manager_id", "notes", "custom", "contacts"}, "")
        contacts = data.get("contacts", [])
        if not isinstance(contacts, list):
            raise ValidationError("contacts must be a list", field="contacts")
        return ClientInput(
            text_field(data, "name", required=True),
            self._kind(data.get("kind", "company")),
            await self._manager(data.get("manager_id")),
            text_field(data, "notes"),
            await self.custom_input(data.get("custom", {})),
            [self.contact_input(c, f"contacts[{i}].") for i, c in enumerate(contacts)],
        )

    @staticmethod
    def _kind(value: Any) -> ClientKind:
        try:
            return ClientKind(value)
        except ValueError:
            raise ValidationError("kind must be 'company' or 'person'", field="kind") from None

    async def _manager(self, value: Any) -> int | None:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError("manager_id must be a user id (a number)", field="manager_id")
        try:
            user = await self.store.get_user(value)
        except NotFound:
            raise ValidationError(f"manager_id {value}: no such user", field="manager_id") from None
        if user.role is Role.SECRETARY:
            raise ValidationError(f"user {value} is a secretary, not a manager",
                                  field="manager_id")
        return value

    async def custom_input(self, data: Any) -> dict[str, str]:
        data = _mapping(data, "custom.")
        fields = {f.name: f for f in await self.store.list_custom_fields()}
        out: dict[str, str] = {}
        for name, value in data.items():
            label = f"custom.{name}"
            if name not in fields:
                known = ", ".join(sorted(fields)) or "none defined"
                raise ValidationError(f"{label}: no such custom field (known: {known})",
                                      field=label)
            out[name] = _custom_text(fields[name].type, value, label)
        return out

    # -- operations -------------------------------------------------------------------------

    async def create_client(self, data: Any) -> Client:
        return await self.store.create_client(await self.client_input(data))

    async def update_client(self, client_id: int, data: Any) -> Client:
        data = _mapping(data, "")
        reject_unknown(data, {"name", "kind", "manager_id", "notes", "custom"}, "")
        changes: dict[str, Any] = {}
        if "name" in data:
            changes["name"] = text_field(data, "name", required=True)
        if "kind" in data:
            changes["kind"] = self._kind(data["kind"])
        if "manager_id" in data:
            changes["manager_id"] = await self._manager(data["manager_id"])
        if "notes" in data:
            changes["notes"] = text_field(data, "notes")
        if "custom" in data:
            changes["custom"] = await self.custom_input(data["custom"])
        return await self.store.update_client(client_id, **changes)

    async def add_contact(self, client_id: int, data: Any) -> Contact:
        return await self.store.add_contact(client_id, self.contact_input(data))

    async def update_contact(self, contact_id: int, data: Any) -> Contact:
        data = _mapping(data, "")
        reject_unknown(data, {"name", "position", "email"}, "")
        parsed = self.contact_input({k: v for k, v in data.items()})
        changes = {k: getattr(parsed, k) for k in data}
        return await self.store.update_contact(contact_id, **changes)

    async def add_phone(self, contact_id: int, data: Any) -> Phone:
        return await self.store.add_phone(contact_id, self.phone_input(data))

    async def create_custom_field(self, data: Any) -> Any:
        data = _mapping(data, "")
        reject_unknown(data, {"name", "label", "type"}, "")
        name = text_field(data, "name", required=True)
        if not _FIELD_NAME.match(name):
            raise ValidationError(
                "name must start with a letter and use only a-z, 0-9 and _ (at most 40)",
                field="name")
        try:
            kind = FieldType(data.get("type", "text"))
        except ValueError:
            raise ValidationError("type must be one of text, number, date, bool",
                                  field="type") from None
        return await self.store.create_custom_field(name, text_field(data, "label") or name, kind)


def _custom_text(kind: FieldType, value: Any, label: str) -> str:
    if value is None or value == "":
        return ""
    if kind is FieldType.TEXT:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValidationError(f"{label} must be text", field=label)
        return str(value)[:MAX_TEXT]
    if kind is FieldType.NUMBER:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ValidationError(f"{label} must be a number", field=label)
        return repr(number) if not number.is_integer() else str(int(number))
    if kind is FieldType.BOOL:
        if not isinstance(value, bool):
            raise ValidationError(f"{label} must be true or false", field=label)
        return "true" if value else "false"
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValidationError(f"{label} must be a date like 2026-11-22", field=label) from None

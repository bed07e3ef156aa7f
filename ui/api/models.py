"""Request bodies and query strings of the REST API: one pydantic model each.

The handlers validate with these models and the OpenAPI document is generated from them
(ui/openapi.py), so the two cannot disagree. Pydantic v2 was chosen over msgspec after
benchmarks/api_models.py: msgspec validates the hot bodies a few times faster, but both cost
microseconds against a request's milliseconds, and pydantic gives what the API needs without
glue: lax parsing of query strings ("true", "50"), every error with its location and type (so
it maps onto ``{"error", "message", "field"}``), and JSON Schema 2020-12 for OpenAPI 3.1.

Bodies are strict (JSON ``"5"`` is not a number, ``1`` is not ``true``); query strings are lax
because everything in them is text. Unknown fields are refused in both. Semantic checks
(phone numbers, whether a manager exists, custom fields) stay in the core services, which the
importer shares.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from callcenter.clients import MAX_TEXT
from callcenter.lines.records import NAME as LINE_NAME
from callcenter.models import ClientKind, FieldType, Role, TaskKind
from callcenter.passwords import MIN_LENGTH
from callcenter.users.service import EXTENSION

MAX_ID = 2**63 - 1  # SQLite's INTEGER: a larger id is a 400, not an OverflowError
MAX_PASSWORD = 1024  # argon2 hashes any length; this bounds the work a request can ask for

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_TEXT)]
RequiredText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=MAX_TEXT)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Password = Annotated[str, StringConstraints(min_length=MIN_LENGTH, max_length=MAX_PASSWORD)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A field of a PATCH body that may be left out but not sent as null. Handlers read what was
# sent with model_dump(exclude_unset=True), so the default is never seen.
ABSENT: Any = Field(default=None, json_schema_extra=_no_default)


def _utc(when: datetime) -> datetime:
    # Converted here, not in the store: 0001-01-01T00:00+05:00 has no UTC form, and the
    # OverflowError it raises must be the caller's 400, not a 500.
    try:
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime-range", "is outside the years 0001-9999 once converted to UTC") from None


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    # Lax parsing for "2026-11-22" as well as full date-times, but only from ISO text: neither
    # a JSON number nor "5" in a query string is taken for a Unix time.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise PydanticCustomError("datetime_type", "must be a date-time")
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("datetime_type", "must be a date-time")
    return value


When = Annotated[datetime, Field(strict=False, description=(
    "ISO date (2026-11-22) or date-time (2026-11-22T15:00:00+03:00)")),
                 BeforeValidator(_iso_text), AfterValidator(_utc)]


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


def _phone_object(value: Any) -> Any:
    return {"number": value} if isinstance(value, str) else value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        # The console leaves empty filters out, but ?state= from a hand-written URL means
        # "no filter", as it always did.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data


# -- session and users ----------------------------------------------------------------------

class Login(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"login": "maria", "password": "demo-password"}]})
    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    password: Annotated[str, StringConstraints(max_length=MAX_PASSWORD),
                        Field(json_schema_extra={"format": "password"})]


def _extension(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(_EXTENSION, value):
        raise PydanticCustomError("invalid-extension",
                                  "extension must be 2 to 6 digits, such as \"101\"")
    return value


_EXTENSION = EXTENSION.pattern  # one rule for the API, the CLI and the PBX import
Extension = Annotated[
    str | None,
    BeforeValidator(_none_if_empty),
    AfterValidator(_extension),
    Field(description="2 to 6 digits, such as \"101\"",
          json_schema_extra={"pattern": f"^{_EXTENSION}$"}),
]


class UserCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"login": "olga", "name": "Olga", "role": "manager", "extension": "105",
         "password": "long-enough", "language": "ru"}]})
    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                            pattern=r"^\S+$"),
                     Field(description="at most 64 characters without spaces")]
    name: RequiredText
    role: Role
    extension: Extension = None
    password: Password
    language: Literal["en", "ru"] | None = None


class UserUpdate(Body):
    """Anyone may change their own name, password and language; the rest is for admins.
    Changing your own password needs ``current_password``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Maria I.", "language": "en", "password": "new-password-1",
         "current_password": "demo-password"}]})
    name: RequiredText = ABSENT
    password: Password = ABSENT
    current_password: Annotated[str, StringConstraints(max_length=MAX_PASSWORD)] = ABSENT
    language: Literal["en", "ru"] = ABSENT
    role: Role = ABSENT
    extension: Extension = None
    active: bool = ABSENT


# -- clients --------------------------------------------------------------------------------

class PhoneIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"number": "+7 916 000-11-22", "kind": "mobile"}]})
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                      Field(description="as typed; normalized to E.164")]
    kind: ShortText | None = None


class ContactIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Ivan", "position": "CEO", "email": "i@acme.test",
         "phones": ["+7 916 000-11-22"]}]})
    name: Text | None = None
    position: Text | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None = None
    phones: Annotated[list[Annotated[PhoneIn, BeforeValidator(_phone_object)]],
                      Field(max_length=50, description="numbers as text or as objects")] = []


class ContactUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"position": "CFO"}]})
    name: Text | None = None
    position: Text | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None = None


def _scalar(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # One message for the union instead of one per member (whose names would end up in the
    # field path).
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("custom-value",
                                  "must be text, a number, true/false or null") from None


CustomValue = Annotated[
    Annotated[str, StringConstraints(max_length=MAX_TEXT)] | int | float | bool | None,
    WrapValidator(_scalar),
]
CustomValues = Annotated[
    dict[Annotated[str, StringConstraints(max_length=40)], CustomValue],
    Field(max_length=200, description="custom field name -> value"),
]


class ClientCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Acme", "kind": "company", "notes": "", "custom": {},
         "contacts": [{"name": "Ivan", "phones": ["+7 916 000-11-22"]}]}]})
    name: RequiredText
    kind: ClientKind = ClientKind.COMPANY
    manager_id: Id | None = None
    notes: Text | None = None
    custom: CustomValues = {}
    contacts: Annotated[list[ContactIn], Field(max_length=100)] = []


class ClientUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"notes": "VIP"}]})
    name: RequiredText = ABSENT
    kind: ClientKind = ABSENT
    manager_id: Id | None = None
    notes: Text | None = None
    custom: CustomValues = ABSENT


class CustomFieldIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "employees", "label": "Staff", "type": "number"}]})
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
                    Field(description="a-z, 0-9 and _, starting with a letter")]
    label: Text | None = None
    type: FieldType = FieldType.TEXT


class NoteIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "called about invoice"}]})
    text: RequiredText


class ClientsQuery(Query):
    search: Annotated[str, StringConstraints(max_length=200),
                      Field(description="name, contact or phone digits")] = ""
    manager_id: Annotated[Id | None, Field(description="only this manager's clients")] = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    offset: Annotated[int, Field(ge=0, le=10**9, description="for paging")] = 0


class InteractionsQuery(Query):
    limit: Annotated[int, Field(ge=1, le=500)] = 50


class LookupQuery(Query):
    number: Annotated[str, StringConstraints(max_length=64),
                      Field(description="any form of a phone number")] = ""


# -- tasks ----------------------------------------------------------------------------------

class TaskCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "Send offer", "kind": "reminder", "due_at": "2026-12-01T10:00:00+03:00",
         "phone": "+79161234567"}]})
    title: RequiredText
    kind: TaskKind = TaskKind.REMINDER
    due_at: When | None = None
    assignee_id: Annotated[Id | None, Field(description="default: yourself")] = None
    client_id: Id | None = None
    phone: ShortText | None = None


class TaskUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "Call back", "done": True, "assignee_id": 2,
         "due_at": "2026-12-01T10:00:00+03:00"}]})
    title: RequiredText = ABSENT
    due_at: When | None = None
    done: bool = ABSENT
    assignee_id: Id | None = None


class TasksQuery(Query):
    done: Annotated[bool | None, Field(description="filter by state")] = None
    mine: Annotated[bool | None, Field(description="only my tasks")] = None
    assignee_id: Id | None = None
    client_id: Id | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


# -- calls ----------------------------------------------------------------------------------

def _has_digits(value: str | None) -> str | None:
    # A number without digits used to match every call (the search is by trailing digits).
    if value is not None and not any(ch.isdigit() for ch in value):
        raise PydanticCustomError("no-digits", "number must contain digits")
    return value


class CallsQuery(Query):
    since: When | None = None
    until: When | None = None
    number: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=40),
                      AfterValidator(_has_digits),
                      Field(description="caller or called number, any form")] = None
    client_id: Id | None = None
    user_id: Annotated[Id | None, Field(description="answered, placed or rang at this user")
                       ] = None
    state: Literal["answered", "missed", "failed", "ringing"] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0


class TransferIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"to": "102", "kind": "blind"}]})
    to: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40),
                  Field(description="extension")]
    kind: Literal["blind", "attended", "redirect"] = "blind"


class RecordingIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"on": True}]})
    on: bool


class OriginateIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"number": "89031234567"}]})
    number: Annotated[str, StringConstraints(max_length=64)]


# -- lines (admin) --------------------------------------------------------------------------

LineName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40,
                                            pattern=LINE_NAME.pattern),
                     Field(description="1 to 40 letters, digits, '.', '_' or '-'")]
LineKindName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=32)]
# Write-only: never sent back, never logged. Empty on an edit keeps the stored value.
SecretValue = Annotated[str, StringConstraints(max_length=1000),
                        Field(json_schema_extra={"format": "password", "writeOnly": True})]
_ASTERISK_EXAMPLE = {"host": "127.0.0.1", "port": 5038, "username": "crm",
                     "originate_context": "from-internal", "record_calls": False}


class LineIn(Body):
    """A new line. Its check runs first: a failing one is not saved unless
    ``save_disabled`` (then it is saved switched off)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "office", "kind": "asterisk", "enabled": True,
         "settings": _ASTERISK_EXAMPLE, "secrets": {"secret": "crm-secret"},
         "save_disabled": False}]})
    name: LineName
    kind: LineKindName
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(default_factory=dict, repr=False)
    save_disabled: bool = False


class LineUpdate(Body):
    """Changes of a stored line; settings sent replace the stored ones, a secret sent empty
    (or not sent) keeps the stored one. An enabled result is checked before it is saved."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "office", "enabled": True, "settings": {"port": 5038},
         "secrets": {"secret": ""}, "save_disabled": False}]})
    name: LineName = ABSENT
    enabled: bool = ABSENT
    settings: dict[str, Any] = ABSENT
    secrets: dict[str, SecretValue] = Field(default=None, json_schema_extra=_no_default,
                                            repr=False)
    save_disabled: bool = False


class LineCheckIn(Body):
    """"Test connection" on a form not saved yet. ``stored``: a line whose stored secrets fill
    the secrets left empty (an edit form never has them)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "office", "kind": "asterisk", "settings": _ASTERISK_EXAMPLE,
         "secrets": {"secret": "crm-secret"}, "stored": "office"}]})
    name: LineName = "check"
    kind: LineKindName
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(default_factory=dict, repr=False)
    stored: LineName | None = None


class TrunkIn(Body):
    """A SIP trunk with an outbound registration, written to pjsip.conf through AMI."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"host": "sip.example.net", "port": 5060, "username": "74951110077",
         "password": "provider-secret", "context": "from-trunk", "registration": True}]})
    host: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 5060
    username: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] = ""
    password: SecretValue = Field("", repr=False)
    context: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=79)] = "from-trunk"
    transport: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=79)] = "transport-udp"
    registration: bool = Field(default=True, description="send an outbound REGISTER")
    expiration: Annotated[int, Field(ge=60, le=86400)] = 120
    template: Annotated[str, StringConstraints(strip_whitespace=True, max_length=79)] = ""

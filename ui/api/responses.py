"""Responses the handlers build as dicts (not core dataclasses): their shapes as TypedDicts,
which the handlers are annotated with and the OpenAPI document is generated from
(ui/openapi.py); tests check real answers against them."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

# pydantic needs typing_extensions' TypedDict before Python 3.12
from typing_extensions import TypedDict

from callcenter.models import User


class Session(TypedDict):
    user: User
    csrf_token: str | None


class ActionResult(TypedDict):
    ok: bool
    result: NotRequired[str]
    call_ref: NotRequired[str]
    file: NotRequired[str | None]


class Deleted(TypedDict):
    deleted: int


class CallParty(TypedDict):
    raw: str
    e164: str | None
    name: str | None
    withheld: bool
    display: str
    # Call log only, admins only, withheld calls only: the number the caller withheld, as the
    # PBX delivered it (P-Asserted-Identity). Never in live events.
    withheld_raw: NotRequired[str]


class AnsweredBy(TypedDict):
    extension: str | None
    user_id: int | None
    user_name: str | None


CallTransfer = TypedDict("CallTransfer", {  # "from" is a keyword
    "kind": str, "from": NotRequired[str | None], "to": str, "at": NotRequired[str | None],
    "result": NotRequired[str]})


class RecordingRef(TypedDict):
    id: int
    state: str
    size: int | None
    kind: Literal["call", "voicemail"]
    url: str | None


class Call(TypedDict):
    """A call-log row, in the shape of the live events' ``call`` (docs/events.md)."""

    id: str
    line: str
    direction: str
    caller: CallParty
    called: str | None
    client_id: int | None
    client_name: str | None
    contact_id: int | None
    candidates: list[dict[str, Any]]
    state: str
    reason: str | None
    cause: str | None
    answered_by: AnsweredBy | None
    rang: list[str]
    user_id: int | None
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    ring_seconds: float | None
    talk_seconds: float | None
    transfers: list[CallTransfer]
    handled_by_pbx: bool  # answered by the PBX alone (IVR, announcement), no person
    ivr_seconds: float | None
    voicemail: bool  # the caller left a voicemail
    recordings: list[RecordingRef]


class LookupNumber(TypedDict):
    raw: str
    kind: str
    e164: str | None


class Lookup(TypedDict):
    number: LookupNumber
    withheld: bool
    user: User | None
    candidates: list[dict[str, Any]]
    tie: bool


RESPONSE_TYPES = (Session, ActionResult, Deleted, Call, Lookup)

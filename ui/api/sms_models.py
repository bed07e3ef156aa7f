"""Request bodies and query strings of the SMS API (the same rules as ui/api/models.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from callcenter.sms.service import MAX_TEXT
from ui.api.models import Body, Id, Query, _has_digits

Number = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
                   AfterValidator(_has_digits)]
SmsText = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class SmsSendIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"to": "+7 916 123-45-67", "text": "Your order is ready", "client_id": 1}]})
    to: Number
    text: SmsText
    client_id: Id | None = None
    # the number opted out: send this one message anyway (manual messages only)
    confirm_opted_out: bool = False


class SmsResendIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"confirm_opted_out": False}]})
    text: SmsText | None = None  # the text, corrected; absent: the same text
    confirm_opted_out: bool = False
    confirm_unknown: bool = False  # required for an SMS whose delivery is unknown


class SmsCountIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Привет!"}]})
    text: SmsText


class SmsQuery(Query):
    direction: Literal["in", "out"] | None = None
    state: Literal["queued", "sending", "sent", "delivered", "failed", "expired", "unknown",
                   "received", "incomplete"] | None = None
    client_id: Id | None = None
    number: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=40),
                      AfterValidator(_has_digits)] = None
    modem: Annotated[str | None, StringConstraints(max_length=64)] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0


class OptOutIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"number": "+79161234567", "opted_out": True}]})
    number: Number
    # false takes the number off the list again
    opted_out: bool = True

"""Request bodies and query strings of the campaigns API (the same rules as ui/api/models.py);
the campaign service checks the rest (template fields, time zone, window)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from callcenter.sms.campaign_template import MAX_TEMPLATE
from callcenter.sms.campaigns import MAX_NAME, MAX_PER_MINUTE
from ui.api.models import Body, Id, Query

Clock = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5)]


class AudienceIn(Body):
    # only clients of this manager (a manager's own campaigns always are)
    manager_id: Id | None = None
    search: Annotated[str, StringConstraints(max_length=200)] = ""
    # custom field name → the value it must have
    custom: Annotated[dict[Annotated[str, StringConstraints(max_length=40)],
                           Annotated[str, StringConstraints(max_length=200)]],
                      Field(max_length=10, default_factory=dict)]
    client_ids: Annotated[list[Id], Field(max_length=10000, default_factory=list)]


class CampaignIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Winter offer", "template": "Hello {contact.first_name|there}, 10% off at"
        " {client.name} until Friday. Reply STOP to unsubscribe.",
        "audience": {"custom": {"segment": "retail"}}, "per_minute": 20,
        "window_start": "10:00", "window_end": "20:00"}]})
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=MAX_NAME)]
    template: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEMPLATE)]
    audience: AudienceIn = AudienceIn()
    per_minute: Annotated[int, Field(ge=0, le=MAX_PER_MINUTE)] | None = None
    time_zone: Annotated[str, StringConstraints(max_length=64)] | None = None
    window_start: Clock | None = None
    window_end: Clock | None = None


class CampaignUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"template": "Hello {contact.first_name|there}! Reply STOP to unsubscribe.",
         "per_minute": 10}]})
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=MAX_NAME)] | None = None
    template: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEMPLATE)] | None = None
    audience: AudienceIn | None = None
    per_minute: Annotated[int, Field(ge=0, le=MAX_PER_MINUTE)] | None = None
    time_zone: Annotated[str, StringConstraints(max_length=64)] | None = None
    window_start: Clock | None = None
    window_end: Clock | None = None


class ProgressQuery(Query):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0

"""Request models of the administration routes (users, audit log, routing)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from callcenter.users.service import EXTENSION
from ui.api.models import ABSENT, Body, Id, Password, Query, When

Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class AuditQuery(Query):
    actor_id: Annotated[Id | None, Field(description="the user who made the change")] = None
    actor: Annotated[Label | None, Field(description='login at the time, or "cli"')] = None
    target_kind: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=40),
                           Field(description="user, client, contact, phone, task, ...")] = None
    target_id: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=80)
                         ] = None
    action: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=40)
                      ] = None
    since: When | None = None
    until: When | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0


class PasswordReset(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"password": "new-password-1", "one_time": True}]})
    password: Password
    one_time: Annotated[bool, Field(description="the user must choose their own password at"
                                                " the next login")] = False


class HandoverIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"to_user": 3}]})
    to_user: Annotated[Id, Field(description="who takes over the open tasks and clients")]


RouteValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=80)]


class GroupIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Front desk", "members": [2], "dids": ["+7 495 111-00-00"],
         "queues": ["sales"], "lines": ["office"]}]})
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    members: Annotated[list[Id], Field(default_factory=list, max_length=500,
                                       description="secretaries' user ids")]
    dids: Annotated[list[RouteValue], Field(default_factory=list, max_length=200,
                                            description="numbers dialled, any form")]
    queues: Annotated[list[RouteValue], Field(default_factory=list, max_length=200)]
    lines: Annotated[list[RouteValue], Field(default_factory=list, max_length=200)]


class HoursIn(Body):
    model_config = ConfigDict(strict=False, json_schema_extra={"examples": [
        {"timezone": "Europe/Moscow", "week": {"mon": [["09:00", "18:00"]]},
         "holidays": ["2026-12-31"]}]})
    timezone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
    week: Annotated[dict[str, list[list[str]]], Field(default_factory=dict)]
    holidays: Annotated[list[str], Field(default_factory=list, max_length=366)]


class RoutingSettingsIn(Body):
    """Left out: unchanged; null: back to the configuration file (region) or no hours."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"default_region": "DE"}]})
    default_region: Annotated[str | None, StringConstraints(strip_whitespace=True,
                                                            max_length=2)] = ABSENT
    hours: HoursIn | None = ABSENT


class ExtensionIn(Body):
    extension: Annotated[str, StringConstraints(pattern=rf"^{EXTENSION.pattern}$"),
                         Field(description="2 to 6 digits")]
    user_id: Id | None


class ExtensionsIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"extensions": [{"extension": "101", "user_id": 2}]}]})
    extensions: Annotated[list[ExtensionIn], Field(max_length=1000)]

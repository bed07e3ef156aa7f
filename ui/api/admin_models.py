"""Request models of the administration routes (users, audit log, routing)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from ui.api.models import Body, Id, Password, Query, When

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
    model_config = ConfigDict(json_schema_extra={"examples": [{"password": "new-password-1"}]})
    password: Password


class HandoverIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"to_user": 3}]})
    to_user: Annotated[Id, Field(description="who takes over the open tasks and clients")]

"""Tasks: callbacks for missed calls and reminders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.clients import reject_unknown, text_field
from callcenter.errors import PermissionDenied, ValidationError
from callcenter.models import Role, Task, TaskKind, User
from callcenter.services import Services
from ui.api.clients import managers_restricted, visible_client
from ui.api.common import current_user, int_param, json_body, ok, path_id, services


def _when(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{field} must be a date-time like 2026-11-22T15:00:00+03:00",
                              field=field) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() in {"1", "true", "yes"}:
        return True
    if raw.lower() in {"0", "false", "no"}:
        return False
    raise ValidationError(f"query parameter {name} must be true or false", field=name)


def can_see_task(svc: Services, user: User, task: Task, client_manager: int | None) -> bool:
    if not managers_restricted(svc, user):
        return True
    return task.assignee_id == user.id or (client_manager == user.id)


async def list_tasks(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    mine = _bool_param(request, "mine")
    assignee = user.id if mine else int_param(request, "assignee_id", high=2**62)
    if managers_restricted(svc, user):
        assignee = user.id
    tasks = await svc.store.list_tasks(
        done=_bool_param(request, "done"),
        assignee_id=assignee,
        client_id=int_param(request, "client_id", high=2**62),
        limit=int_param(request, "limit", 100, low=1, high=1000) or 100,
    )
    if mine and user.role is Role.SECRETARY:
        # The secretaries' group tasks belong to every secretary.
        group = await svc.store.list_tasks(done=_bool_param(request, "done"), limit=1000)
        tasks += [t for t in group if t.assignee_role is Role.SECRETARY and t.assignee_id is None]
    return ok(tasks)


async def create_task(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    reject_unknown(data, {"title", "kind", "due_at", "assignee_id", "client_id", "phone"}, "")
    try:
        kind = TaskKind(data.get("kind", "reminder"))
    except ValueError:
        raise ValidationError("kind must be callback or reminder", field="kind") from None
    assignee = data.get("assignee_id", user.id)
    if assignee is not None:
        if not isinstance(assignee, int) or isinstance(assignee, bool):
            raise ValidationError("assignee_id must be a user id", field="assignee_id")
        await svc.store.get_user(assignee)
        if managers_restricted(svc, user) and assignee != user.id:
            raise PermissionDenied("a manager can only create tasks for themselves")
    client_id = data.get("client_id")
    if client_id is not None:
        if not isinstance(client_id, int) or isinstance(client_id, bool):
            raise ValidationError("client_id must be a client id", field="client_id")
        await visible_client(svc, user, client_id)
    task = await svc.store.create_task(
        kind, text_field(data, "title", required=True), due_at=_when(data.get("due_at"), "due_at"),
        assignee_id=assignee, client_id=client_id, phone=text_field(data, "phone") or None,
    )
    return ok(task, 201)


async def update_task(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    task = await svc.store.get_task(path_id(request))
    manager = None
    if task.client_id is not None:
        manager = (await svc.store.get_client(task.client_id)).manager_id
    if not can_see_task(svc, user, task, manager):
        raise PermissionDenied("this task belongs to someone else")
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    reject_unknown(data, {"title", "due_at", "done", "assignee_id"}, "")
    changes: dict[str, Any] = {}
    if "title" in data:
        changes["title"] = text_field(data, "title", required=True)
    if "due_at" in data:
        changes["due_at"] = _when(data["due_at"], "due_at")
    if "done" in data:
        if not isinstance(data["done"], bool):
            raise ValidationError("done must be true or false", field="done")
        changes["done"] = data["done"]
    if "assignee_id" in data:
        if managers_restricted(svc, user):
            raise PermissionDenied("a manager cannot reassign tasks")
        if data["assignee_id"] is not None:
            await svc.store.get_user(int(data["assignee_id"]))
        changes["assignee_id"] = data["assignee_id"]
    return ok(await svc.store.update_task(task.id, **changes))

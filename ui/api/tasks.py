"""Tasks: callbacks for missed calls and reminders."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.audit import snapshots as snap
from callcenter.errors import PermissionDenied
from callcenter.models import Role, Task, User
from callcenter.services import Services
from ui.api.audit import record
from ui.api.clients import managers_restricted, visible_client
from ui.api.common import body_of, current_user, ok, path_id, query_of, services
from ui.api.models import TaskCreate, TasksQuery, TaskUpdate


def can_see_task(svc: Services, user: User, task: Task, client_manager: int | None) -> bool:
    if not managers_restricted(svc, user):
        return True
    return task.assignee_id == user.id or (client_manager == user.id)


async def list_tasks(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    q = query_of(request, TasksQuery)
    assignee = user.id if q.mine else q.assignee_id
    if managers_restricted(svc, user):
        assignee = user.id
    tasks = await svc.store.list_tasks(
        done=q.done, assignee_id=assignee, client_id=q.client_id, limit=q.limit,
    )
    if q.mine and user.role is Role.SECRETARY:
        # The secretaries' group tasks belong to every secretary.
        group = await svc.store.list_tasks(done=q.done, limit=1000)
        tasks += [t for t in group if t.assignee_role is Role.SECRETARY and t.assignee_id is None]
    return ok(tasks)


async def create_task(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = await body_of(request, TaskCreate)
    # Left out means "mine"; an explicit null is a task for nobody in particular.
    assignee = data.assignee_id if "assignee_id" in data.model_fields_set else user.id
    if assignee is not None:
        await svc.store.get_user(assignee)
        if managers_restricted(svc, user) and assignee != user.id:
            raise PermissionDenied("a manager can only create tasks for themselves")
    if data.client_id is not None:
        await visible_client(svc, user, data.client_id)
    async with svc.store.atomic():
        task = await svc.store.create_task(
            data.kind, data.title, due_at=data.due_at,
            assignee_id=assignee, client_id=data.client_id, phone=data.phone or None,
        )
        await record(request, user, "create", "task", task.id, None, snap.task(task))
    return ok(task, 201)


async def update_task(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = await body_of(request, TaskUpdate)
    task = await svc.store.get_task(path_id(request))
    manager = None
    if task.client_id is not None:
        manager = (await svc.store.get_client(task.client_id)).manager_id
    if not can_see_task(svc, user, task, manager):
        raise PermissionDenied("this task belongs to someone else")
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    if "assignee_id" in changes:
        if managers_restricted(svc, user):
            raise PermissionDenied("a manager cannot reassign tasks")
        if changes["assignee_id"] is not None:
            await svc.store.get_user(changes["assignee_id"])
    async with svc.store.atomic():
        updated = await svc.store.update_task(task.id, **changes)
        await record(request, user, "update", "task", task.id, snap.task(task), snap.task(updated))
    return ok(updated)

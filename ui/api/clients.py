"""Clients, contacts, phones, custom fields, notes and caller-ID lookup."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.audit import snapshots as snap
from callcenter.errors import PermissionDenied
from callcenter.models import Client, Contact, InteractionKind, Role, User
from callcenter.services import Services
from ui.api.audit import record
from ui.api.common import body_of, current_user, ok, path_id, query_of, services
from ui.api.models import (
    ClientCreate,
    ClientsQuery,
    ClientUpdate,
    ContactIn,
    ContactUpdate,
    CustomFieldIn,
    InteractionsQuery,
    LookupQuery,
    NoteIn,
    PhoneIn,
)


def managers_restricted(svc: Services, user: User) -> bool:
    return user.role is Role.MANAGER and not svc.config.console.managers_see_all_clients


async def visible_client(svc: Services, user: User, client_id: int) -> Client:
    client = await svc.store.get_client(client_id)
    if managers_restricted(svc, user) and client.manager_id != user.id:
        raise PermissionDenied("this client belongs to another manager")
    return client


async def list_clients(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    q = query_of(request, ClientsQuery)
    clients = await svc.store.list_clients(
        search=q.search,
        manager_id=user.id if managers_restricted(svc, user) else q.manager_id,
        limit=q.limit, offset=q.offset,
    )
    return ok(clients)


async def create_client(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = (await body_of(request, ClientCreate)).model_dump(exclude_unset=True)
    if managers_restricted(svc, user):
        data.setdefault("manager_id", user.id)
        if data["manager_id"] != user.id:
            raise PermissionDenied("a manager can only create clients of their own")
    async with svc.store.atomic():
        client = await svc.clients.create_client(data)
        await record(request, user, "create", "client", client.id, None,
                     snap.client_created(client))
    return ok(client, 201)


async def get_client(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(await visible_client(services(request), user, path_id(request)))


async def update_client(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = (await body_of(request, ClientUpdate)).model_dump(exclude_unset=True)
    if managers_restricted(svc, user) and data.get(
        "manager_id", user.id
    ) != user.id:
        raise PermissionDenied("a manager cannot hand a client to someone else")
    async with svc.store.atomic():  # the before, the change and its entry: one transaction
        before = await visible_client(svc, user, path_id(request))
        client = await svc.clients.update_client(path_id(request), data)
        await record(request, user, "update", "client", client.id, snap.client(before),
                     snap.client(client))
    return ok(client)


async def delete_client(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    store = services(request).store
    async with store.atomic():
        before = await store.get_client(path_id(request))
        await store.delete_client(before.id)
        await record(request, user, "delete", "client", before.id,
                     snap.client_created(before), None)
    return ok({"deleted": path_id(request)})


async def add_contact(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = (await body_of(request, ContactIn)).model_dump(exclude_unset=True)
    await visible_client(svc, user, path_id(request))
    async with svc.store.atomic():
        contact = await svc.clients.add_contact(path_id(request), data)
        await record(request, user, "create", "contact", contact.id, None, snap.contact(contact))
    return ok(contact, 201)


async def _contact_owner_check(svc: Services, user: User, contact_id: int) -> Contact:
    contact = await svc.store.get_contact(contact_id)
    await visible_client(svc, user, contact.client_id)
    return contact


async def update_contact(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = (await body_of(request, ContactUpdate)).model_dump(exclude_unset=True)
    async with svc.store.atomic():
        before = await _contact_owner_check(svc, user, path_id(request))
        contact = await svc.clients.update_contact(path_id(request), data)
        await record(request, user, "update", "contact", contact.id, snap.contact(before),
                     snap.contact(contact))
    return ok(contact)


async def delete_contact(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    async with svc.store.atomic():
        before = await _contact_owner_check(svc, user, path_id(request))
        await svc.store.delete_contact(path_id(request))
        await record(request, user, "delete", "contact", before.id, snap.contact(before), None)
    return ok({"deleted": path_id(request)})


async def add_phone(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = (await body_of(request, PhoneIn)).model_dump(exclude_unset=True)
    await _contact_owner_check(svc, user, path_id(request))
    async with svc.store.atomic():
        phone = await svc.clients.add_phone(path_id(request), data)
        await record(request, user, "create", "phone", phone.id, None, snap.phone(phone))
    return ok(phone, 201)


async def delete_phone(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    phone = await svc.store.get_phone(path_id(request))
    await _contact_owner_check(svc, user, phone.contact_id)
    async with svc.store.atomic():
        await svc.store.delete_phone(phone.id)
        await record(request, user, "delete", "phone", phone.id, snap.phone(phone), None)
    return ok({"deleted": phone.id})


async def list_custom_fields(request: Request) -> JSONResponse:
    await current_user(request)
    return ok(await services(request).store.list_custom_fields())


async def create_custom_field(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    data = (await body_of(request, CustomFieldIn)).model_dump(exclude_unset=True)
    svc = services(request)
    async with svc.store.atomic():
        created = await svc.clients.create_custom_field(data)
        await record(request, user, "create", "custom_field", created.id, None,
                     snap.custom_field(created))
    return ok(created, 201)


async def delete_custom_field(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    store = services(request).store
    async with store.atomic():
        found = [f for f in await store.list_custom_fields() if f.id == path_id(request)]
        await store.delete_custom_field(path_id(request))
        await record(request, user, "delete", "custom_field", path_id(request),
                     snap.custom_field(found[0]) if found else None, None)
    return ok({"deleted": path_id(request)})


async def list_interactions(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    q = query_of(request, InteractionsQuery)
    await visible_client(svc, user, path_id(request))
    return ok(await svc.store.list_interactions(path_id(request), q.limit))


async def add_note(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    text = (await body_of(request, NoteIn)).text
    await visible_client(svc, user, path_id(request))
    async with svc.store.atomic():
        note = await svc.store.add_interaction(
            InteractionKind.NOTE, datetime.now(UTC), text, client_id=path_id(request),
            user_id=user.id,
        )
        await record(request, user, "create", "note", note.id, None,
                     {"client_id": note.client_id, "text": note.summary})
    return ok(note, 201)


async def lookup(request: Request) -> JSONResponse:
    """Who is this number? The same matching the screen-pop uses."""
    user = await current_user(request)
    svc = services(request)
    match = svc.matcher.match(query_of(request, LookupQuery).number)
    restricted = managers_restricted(svc, user)
    candidates = [c for c in match.candidates if not restricted or c.manager_id == user.id]
    return ok({
        "number": {"raw": match.number.raw, "kind": match.number.kind,
                   "e164": match.number.e164},
        "withheld": match.withheld,
        "user": match.user,
        "candidates": candidates,
        "tie": len(candidates) > 1,
    })

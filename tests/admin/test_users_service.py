"""The users service against a real store: rules that need concurrency or several steps."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.audit import CLI, AuditService
from callcenter.models import Role
from callcenter.users.model import LastAdmin
from callcenter.users.service import UserService


@pytest.fixture
def users(store) -> UserService:
    return UserService(store, AuditService(store))


async def test_two_admins_demoting_each_other_at_once(users: UserService, store) -> None:
    a = await store.create_user("a", "A", Role.ADMIN)
    b = await store.create_user("b", "B", Role.ADMIN)
    results = await asyncio.gather(
        users.update(CLI, a.id, {"role": "manager"}),
        users.update(CLI, b.id, {"role": "manager"}), return_exceptions=True)
    assert sum(isinstance(r, LastAdmin) for r in results) == 1, results
    assert await store.enabled_admins() == 1


async def test_no_admin_yet_does_not_block_edits(users: UserService, store) -> None:
    olga = await store.create_user("olga", "Olga", Role.SECRETARY)
    assert (await users.update(CLI, olga.id, {"name": "Olga P."})).name == "Olga P."

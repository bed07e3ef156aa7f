"""The users service against a real store: rules that need concurrency or several steps."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.audit import CLI, AuditService
from callcenter.errors import ValidationError
from callcenter.models import Role
from callcenter.store.base import ClientInput
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


class FailingAudit(AuditService):
    async def record_by(self, *args, **kwargs):  # type: ignore[override]
        raise RuntimeError("the audit log is full")


async def test_a_change_whose_audit_entry_fails_is_not_made(store) -> None:
    users = UserService(store, FailingAudit(store))
    olga = await store.create_user("olga", "Olga", Role.SECRETARY)
    with pytest.raises(RuntimeError):
        await users.update(CLI, olga.id, {"name": "Changed"})
    with pytest.raises(RuntimeError):
        await users.set_password(CLI, olga.id, "Some-Pa55word-123")
    after = await store.get_user(olga.id)
    assert after.name == "Olga" and await store.session_epoch(olga.id) == 0
    assert (await store.user_by_login("olga"))[1] is None  # no password set
    with pytest.raises(RuntimeError):
        await users.create(CLI, "ivan", "Ivan", "secretary", None, "Some-Pa55word-123", "en")
    assert await store.user_by_login("ivan") is None


async def test_assign_extensions_refuses_two_for_one_user(users: UserService, store) -> None:
    olga = await store.create_user("olga", "Olga", Role.SECRETARY, "101")
    ivan = await store.create_user("ivan", "Ivan", Role.SECRETARY, "102")
    with pytest.raises(ValidationError, match="two extensions"):
        await users.assign_extensions(CLI, {"103": olga.id, "104": olga.id})
    # a swap is one transaction: both moved
    changed = await users.assign_extensions(CLI, {"101": ivan.id, "102": olga.id})
    assert {u.login: u.extension for u in changed if u.extension} == {"ivan": "101",
                                                                      "olga": "102"}
    assert (await store.get_user(olga.id)).extension == "102"


async def test_assign_extensions_is_all_or_nothing(store) -> None:
    class FailSecond(AuditService):
        calls = 0

        async def record_by(self, *args, **kwargs):  # type: ignore[override]
            FailSecond.calls += 1
            if FailSecond.calls == 2:
                raise RuntimeError("disk full")
            return await super().record_by(*args, **kwargs)

    users = UserService(store, FailSecond(store))
    olga = await store.create_user("olga", "Olga", Role.SECRETARY)
    ivan = await store.create_user("ivan", "Ivan", Role.SECRETARY)
    with pytest.raises(RuntimeError):
        await users.assign_extensions(CLI, {"101": olga.id, "102": ivan.id})
    assert [u.extension for u in await store.list_users()] == [None, None]


async def test_clients_go_only_to_a_manager_or_an_admin(users: UserService, store) -> None:
    maria = await store.create_user("maria", "Maria", Role.MANAGER)
    sec = await store.create_user("sec", "Sec", Role.SECRETARY)
    boss = await store.create_user("boss", "Boss", Role.ADMIN)
    client = await store.create_client(ClientInput(name="Acme", manager_id=maria.id))
    with pytest.raises(ValidationError, match="secretary"):
        await users.hand_over(CLI, maria.id, sec.id)
    assert (await store.get_client(client.id)).manager_id == maria.id
    done = await users.hand_over(CLI, maria.id, boss.id)
    assert done.client_ids == (client.id,)
    # without clients a secretary may take the open tasks
    assert (await users.hand_over(CLI, maria.id, sec.id)).client_ids == ()

"""Adding, changing, disabling users, password resets and hand-overs, each audited.

The REST API and the ``callcenter user`` commands both come here, so they share one
validation (an enabled admin always remains) and write the same audit entries.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.audit import Actor, AuditService, changed_only
from callcenter.errors import ValidationError
from callcenter.models import Role, User
from callcenter.passwords import hash_password_async
from callcenter.store.base import Store
from callcenter.users.model import Handover

EXTENSION = re.compile(r"[0-9]{2,6}")
LOGIN = re.compile(r"\S{1,64}")
LANGUAGES = ("en", "ru")  # the console's translations (ui/static/i18n)
FIELDS = {"name", "role", "extension", "language", "active"}


def snapshot(user: User) -> dict[str, Any]:
    """What the audit log keeps of a user (never a password hash)."""
    return {"login": user.login, "name": user.name, "role": user.role.value,
            "extension": user.extension, "language": user.language, "active": user.active}


def _check(changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    if "role" in out:
        try:
            out["role"] = Role(out["role"])
        except ValueError:
            *first, last = [r.value for r in Role]
            raise ValidationError(f"role must be {', '.join(first)} or {last}",
                                  field="role") from None
    if "extension" in out:
        ext = out["extension"] or None
        if ext is not None and not EXTENSION.fullmatch(ext):
            raise ValidationError('extension must be 2 to 6 digits, such as "101"',
                                  field="extension")
        out["extension"] = ext
    if "language" in out and out["language"] not in LANGUAGES:
        raise ValidationError(f"language must be {' or '.join(LANGUAGES)}", field="language")
    if "name" in out and not str(out["name"]).strip():
        raise ValidationError("name must not be empty", field="name")
    if "active" in out:
        out["active"] = int(bool(out["active"]))
    return out


class UserService:
    def __init__(self, store: Store, audit: AuditService) -> None:
        self._store = store
        self._audit = audit
        # Called after a committed change of a user's role or access (the routing table
        # counts only enabled secretaries); set by the composition root.
        self.on_change: Callable[[], Awaitable[None]] | None = None

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def create(self, who: Actor, login: str, name: str, role: Role | str,
                     extension: str | None, password: str, language: str) -> User:
        if not LOGIN.fullmatch(login):
            raise ValidationError("login must be at most 64 characters without spaces",
                                  field="login")
        checked = _check({"role": role, "extension": extension, "language": language,
                          "name": name})
        password_hash = await hash_password_async(password)  # slow: outside the transaction
        async with self._store.atomic():
            user = await self._store.create_user(
                login, checked["name"], checked["role"], checked["extension"], password_hash,
                checked["language"])
            await self._audit.record_by(who, "create", "user", user.id, None,
                                        {**snapshot(user), "password": "set"})
        await self._changed()
        return user

    async def update(self, who: Actor, user_id: int, changes: dict[str, Any]) -> User:
        """Name, role, extension, language, active. Demoting or disabling the last enabled
        admin is refused (``LastAdmin``); disabling ends the user's sessions. The change and
        its audit entry are one transaction."""
        unknown = set(changes) - FIELDS
        if unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(unknown))} here")
        checked = _check(changes)
        async with self._store.atomic():
            before = await self._store.get_user(user_id)
            await self._store.update_user_keeping_admin(user_id, **checked)
            after = await self._store.get_user(user_id)
            if "active" in checked and before.active != after.active:
                await self._store.end_sessions(user_id)
            b, a = changed_only(snapshot(before), snapshot(after))
            if a:
                action = "update"
                if set(a) == {"active"}:
                    action = "enable" if after.active else "disable"
                await self._audit.record_by(who, action, "user", user_id,
                                            {"login": before.login, **b}, a)
        if before.role is not after.role or before.active != after.active:
            await self._changed()
        return after

    async def set_password(self, who: Actor, user_id: int, password: str, *,
                           reset: bool = True, one_time: bool = False) -> User:
        """A new password; every session of the user ends. ``reset``: an admin sets it;
        ``one_time``: the user must choose their own at the next login. A user's own new
        password ends that duty."""
        password_hash = await hash_password_async(password)  # slow: outside the transaction
        async with self._store.atomic():
            user = await self._store.get_user(user_id)
            await self._store.update_user(user_id, password_hash=password_hash,
                                          must_change_password=int(reset and one_time))
            await self._store.end_sessions(user_id)
            after: dict[str, Any] = {"login": user.login, "password": "new"}
            if reset:
                after["one_time"] = one_time
            await self._audit.record_by(who, "reset-password" if reset else "change-password",
                                        "user", user_id,
                                        {"login": user.login, "password": "old"}, after)
            return await self._store.get_user(user_id)

    async def hand_over(self, who: Actor, from_user: int, to_user: int) -> Handover:
        """The open tasks and the clients of one user to another, in one transaction with
        its audit entry. The target is checked inside it: enabled, and a manager or an admin
        when there are clients (a secretary manages none)."""
        if from_user == to_user:
            raise ValidationError("hand over to another user", field="to_user")
        async with self._store.atomic():
            target = await self._store.get_user(to_user)
            if not target.active:
                raise ValidationError(f"{target.login} is disabled: enable them first or "
                                      "choose someone else", field="to_user")
            source = await self._store.get_user(from_user)

            async def audit(done: Handover) -> None:
                if done.client_ids and target.role is Role.SECRETARY:
                    raise ValidationError(
                        f"{target.login} is a secretary and cannot manage clients: hand "
                        "them to a manager or an admin", field="to_user")
                await self._audit.record_by(
                    who, "handover", "user", from_user,
                    {"login": source.login, "tasks": list(done.task_ids),
                     "clients": list(done.client_ids)},
                    {"to_user": to_user, "to_login": target.login,
                     "tasks": list(done.task_ids), "clients": list(done.client_ids)})

            return await self._store.hand_over(from_user, to_user, audit)

    async def assign_extensions(self, who: Actor, mapping: dict[str, int | None]) -> list[User]:
        """Extensions to users (None: to nobody), as imported from the PBX's endpoint list.
        An extension another user held is taken from them first; one user gets at most one
        extension. The whole mapping is one transaction (each change audited)."""
        for ext in mapping:
            if not EXTENSION.fullmatch(ext):
                raise ValidationError(f'extension {ext[:10]!r} must be 2 to 6 digits',
                                      field="extensions")
        wanted: dict[int, str] = {}
        for ext, uid in mapping.items():
            if uid is None:
                continue
            if uid in wanted:
                raise ValidationError(f"user {uid} is given two extensions ({wanted[uid]} and"
                                      f" {ext}): a user has one", field="extensions")
            wanted[uid] = ext
        changed: list[User] = []
        async with self._store.atomic():
            users = {u.id: u for u in await self._store.list_users()}
            for uid in wanted:
                if uid not in users:
                    raise ValidationError(f"user {uid} does not exist", field="extensions")
            holder = {u.extension: u.id for u in users.values() if u.extension}
            # First free what moves (a swap of 101 and 102 must not collide), then assign.
            for ext, uid in mapping.items():
                old = holder.get(ext)
                if old is not None and old != uid:
                    user = await self.update(who, old, {"extension": None})
                    users[old] = user
                    changed.append(user)
            for uid, ext in wanted.items():
                if users[uid].extension != ext:
                    user = await self.update(who, uid, {"extension": ext})
                    users[uid] = user
                    changed.append(user)
        return changed

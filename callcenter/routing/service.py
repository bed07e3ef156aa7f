"""Routing settings: secretary groups, the default region, office hours, the extension map.

Every change is audited and takes effect at once: the groups are compiled into a new
:class:`RoutingTable` (read by the screen-pop path without I/O), the region is set on the
phones configuration the matcher and the client forms read, and the hours on the call log's
callback rule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers

from callcenter.audit import Actor, AuditService
from callcenter.calls.visibility import can_see_event
from callcenter.config import PhonesConfig
from callcenter.errors import ValidationError
from callcenter.models import Role, User
from callcenter.routing.endpoints import EndpointSource, is_extension
from callcenter.routing.hours import OfficeHours
from callcenter.routing.table import Group, RoutingTable
from callcenter.store.base import Store

log = logging.getLogger(__name__)

REGION = "phones.default_region"
HOURS = "office.hours"
MAX_ROUTES = 200  # DIDs, queues or lines of one group
ENDPOINTS_TIMEOUT = 10.0


def group_json(g: Group) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "members": list(g.members), "dids": list(g.dids),
            "queues": list(g.queues), "lines": list(g.lines)}


def valid_region(region: str) -> str:
    region = region.strip().upper()
    if not (len(region) == 2 and region.isalpha()
            and phonenumbers.country_code_for_region(region)):
        raise ValidationError(f"{region[:10]!r} is not a country code such as RU or DE",
                              field="default_region")
    return region


async def effective_region(store: Store, phones: PhonesConfig) -> str:
    """The default region in force: the one an admin stored, else the file's. For commands
    that run without the routing service (``callcenter import``)."""
    stored = (await store.get_settings()).get(REGION)
    return str(stored) if stored else phones.default_region


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    default_region: str
    default_region_source: str  # "database" (stored by an admin) or "config" (the file's)
    hours: dict[str, Any] | None  # OfficeHours.to_json(), None: no office hours


class RoutingService:
    def __init__(self, store: Store, audit: AuditService, phones: PhonesConfig) -> None:
        self._store = store
        self._audit = audit
        self._phones = phones
        self._toml_region = phones.default_region
        self.table = RoutingTable.empty()
        self.hours: OfficeHours | None = None
        self._region_set = False  # a stored region wins over the file's
        # The lines that can list their endpoints; set by the composition root.
        self.sources: Callable[[], Mapping[str, EndpointSource]] = dict

    # -- the hot paths (no I/O) ------------------------------------------------------------

    def can_see_event(self, user: User, data: dict[str, Any], managers_see_all: bool) -> bool:
        table = self.table
        if not table.of_user:
            return can_see_event(user, data, managers_see_all)
        return table.can_see_event(user, data, managers_see_all)

    def callback_due(self, at: datetime) -> datetime:
        hours = self.hours
        return at if hours is None else hours.callback_due(at)

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Read groups and settings (at start-up); a stored setting wins over the file."""
        settings = await self._store.get_settings()
        region = settings.get(REGION)
        if region:
            self._phones.default_region = region
            self._region_set = True
        hours = settings.get(HOURS)
        if hours:
            try:
                self.hours = OfficeHours.from_json(hours)
            except ValidationError as exc:
                log.error("stored office hours are invalid (%s): callbacks are due at once",
                          exc.message)
        await self._rebuild()

    async def _rebuild(self) -> list[Group]:
        groups = await self._store.list_groups()
        self.table = await self._build(groups)
        return groups

    async def _build(self, groups: list[Group]) -> RoutingTable:
        secretaries = {u.id for u in await self._store.list_users()
                       if u.active and u.role is Role.SECRETARY}
        return RoutingTable.build(groups, secretaries)

    async def rebuild(self) -> None:
        """After a user's role or access changed: a group left without an enabled secretary
        no longer claims its calls."""
        await self._rebuild()

    # -- groups ----------------------------------------------------------------------------

    async def groups(self) -> list[Group]:
        return await self._store.list_groups()

    async def save_group(self, who: Actor, group_id: int | None, name: str, members: list[int],
                         dids: list[str], queues: list[str], lines: list[str]) -> Group:
        name = name.strip()
        if not name:
            raise ValidationError("name must not be empty", field="name")
        for field_name, values in (("dids", dids), ("queues", queues), ("lines", lines)):
            if len(values) > MAX_ROUTES:
                raise ValidationError(f"{field_name} has more than {MAX_ROUTES} items",
                                      field=field_name)
        bad = [d for d in dids if not any(ch.isdigit() for ch in d)]
        if bad:
            raise ValidationError(f"DID {bad[0][:40]!r} has no digits", field="dids")
        for uid in members:
            user = await self._store.get_user(uid)
            if user.role is not Role.SECRETARY:
                raise ValidationError(f"{user.login} is a {user.role.value}: only secretaries"
                                      " belong to secretary groups", field="members")
        async with self._store.atomic():
            before = next((g for g in await self._store.list_groups() if g.id == group_id),
                          None)
            gid = await self._store.save_group(group_id, name, members, dids, queues, lines)
            groups = await self._store.list_groups()
            after = next(g for g in groups if g.id == gid)
            await self._audit.record_by(who, "create" if before is None else "update", "group",
                                        gid, None if before is None else group_json(before),
                                        group_json(after))
            table = await self._build(groups)
        self.table = table  # swapped once committed
        return after

    async def delete_group(self, who: Actor, group_id: int) -> None:
        async with self._store.atomic():
            before = next((g for g in await self._store.list_groups() if g.id == group_id),
                          None)
            await self._store.delete_group(group_id)
            await self._audit.record_by(who, "delete", "group", group_id,
                                        group_json(before) if before else None, None)
            table = await self._build(await self._store.list_groups())
        self.table = table

    # -- settings --------------------------------------------------------------------------

    def settings(self) -> RoutingSettings:
        return RoutingSettings(self._phones.default_region,
                               "database" if self._region_set else "config",
                               self.hours.to_json() if self.hours else None)

    async def update_settings(self, who: Actor, changes: Mapping[str, Any]) -> None:
        """``default_region`` and/or ``hours``: every value is validated before anything is
        written; then all are stored with their audit entries in one transaction, and take
        effect once it committed."""
        unknown = set(changes) - {"default_region", "hours"}
        if unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(unknown))} here")
        region_sent, hours_sent = "default_region" in changes, "hours" in changes
        region = changes.get("default_region")
        value = valid_region(region) if region else None
        data = changes.get("hours")
        hours = OfficeHours.from_json(data) if data is not None else None
        new_region = value or self._toml_region
        # Stored or not is a change too (a stored region survives a new file's region).
        region_changed = region_sent and (new_region != self._phones.default_region
                                          or (value is not None) != self._region_set)
        async with self._store.atomic():
            if region_changed:
                await self._store.set_setting(REGION, value)
                await self._audit.record_by(who, "update", "setting", REGION,
                                            {"value": self._phones.default_region},
                                            {"value": new_region})
            if hours_sent:
                before = self.hours.to_json() if self.hours else None
                after = hours.to_json() if hours else None
                if before != after:
                    await self._store.set_setting(HOURS, after)
                    await self._audit.record_by(who, "update", "setting", HOURS,
                                                {"value": before}, {"value": after})
        if region_sent:
            self._phones.default_region = new_region
            self._region_set = value is not None
        if hours_sent:
            self.hours = hours

    async def set_region(self, who: Actor, region: str | None) -> None:
        """A region stored here wins over the file's; None goes back to the file's. An
        unchanged region writes nothing."""
        await self.update_settings(who, {"default_region": region})

    async def set_hours(self, who: Actor, data: Mapping[str, Any] | None) -> None:
        await self.update_settings(who, {"hours": data})

    # -- extensions ------------------------------------------------------------------------

    async def endpoints(self) -> list[dict[str, Any]]:
        """Every line's extension endpoints with their state and the user mapped to each."""
        users = {u.extension: u for u in await self._store.list_users() if u.extension}
        out: list[dict[str, Any]] = []
        for line, source in self.sources().items():
            try:
                async with asyncio.timeout(ENDPOINTS_TIMEOUT):
                    found = await source.endpoints()
            except Exception as exc:  # one line down must not hide the others
                log.warning("line %s: cannot list endpoints: %r", line, exc)
                out.append({"line": line, "error": f"cannot list endpoints: {exc}"[:200]})
                continue
            for name, state in found:
                if is_extension(name):
                    user = users.get(name)
                    out.append({"line": line, "name": name, "state": state,
                                "user_id": user.id if user else None,
                                "login": user.login if user else None})
        return out
